"""The plain reference the benchmarks measure against: the obvious eager PyTorch a researcher writes.

x is replicated K times, densities come from torch.distributions, the layers are nn.Sequential,
the published Adam update is a loop over parameters, evaluation loops over test images one at a
time. It computes the same objective as the package (the benchmarks check that), only slower.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.distributions import Bernoulli, Normal


def mlp(n_in, n_hidden):
    return nn.Sequential(nn.Linear(n_in, n_hidden), nn.Tanh(), nn.Linear(n_hidden, n_hidden), nn.Tanh())


class PlainGaussian(nn.Module):
    def __init__(self, n_in, n_hidden, n_out):
        super().__init__()
        self.net = mlp(n_in, n_hidden)
        self.mean = nn.Linear(n_hidden, n_out)
        self.log_sigma = nn.Linear(n_hidden, n_out)

    def forward(self, h):
        h = self.net(h)
        return Normal(self.mean(h), torch.exp(self.log_sigma(h)))


class PlainIWAE(nn.Module):
    def __init__(self, n_layers):
        super().__init__()
        self.n_layers = n_layers
        if n_layers == 1:
            self.q = nn.ModuleList([PlainGaussian(784, 200, 50)])
            self.p = nn.ModuleList([])
            self.px = nn.Sequential(mlp(50, 200), nn.Linear(200, 784))
        else:
            self.q = nn.ModuleList([PlainGaussian(784, 200, 100), PlainGaussian(100, 100, 50)])
            self.p = nn.ModuleList([PlainGaussian(50, 100, 100)])
            self.px = nn.Sequential(mlp(100, 200), nn.Linear(200, 784))

    def log_weights(self, x, k, noise=None):
        xk = x.unsqueeze(0).repeat(k, 1, 1)  # [K, B, 784]
        h, log_q, hs = xk, 0.0, []
        for i, layer in enumerate(self.q):
            q = layer(h)
            h = q.rsample() if noise is None else q.loc + q.scale * noise[i]
            log_q = log_q + q.log_prob(h).sum(-1)
            hs.append(h)
        log_p = Normal(torch.zeros_like(hs[-1]), torch.ones_like(hs[-1])).log_prob(hs[-1]).sum(-1)
        for j in reversed(range(len(self.p))):
            log_p = log_p + self.p[j](hs[j + 1]).log_prob(hs[j]).sum(-1)
        log_p = log_p + Bernoulli(logits=self.px(hs[0])).log_prob(xk).sum(-1)
        return log_p - log_q

    def loss(self, x, k, objective, noise=None):
        log_w = self.log_weights(x, k, noise)
        if objective == "iwae":
            return -(torch.logsumexp(log_w, 0) - math.log(k)).sum()
        return -log_w.mean(0).sum()

    def load_from(self, fast):
        """Copy the weights of an ``iwae.model.IWAEModel`` (its stacked mean/log-sigma heads are split)."""
        def gauss(dst, src):
            dst.net[0].load_state_dict(src.mlp.l1.state_dict())
            dst.net[2].load_state_dict(src.mlp.l2.state_dict())
            w, b = src.head.weight.detach(), src.head.bias.detach()
            d = src.n_out
            dst.mean.weight.data, dst.mean.bias.data = w[:d].clone(), b[:d].clone()
            dst.log_sigma.weight.data, dst.log_sigma.bias.data = w[d:].clone(), b[d:].clone()

        for a, b in zip(self.q, fast.q_layers):
            gauss(a, b)
        for a, b in zip(self.p, fast.p_layers):
            gauss(a, b)
        self.px[0][0].load_state_dict(fast.p_x.mlp.l1.state_dict())
        self.px[0][2].load_state_dict(fast.p_x.mlp.l2.state_dict())
        self.px[1].load_state_dict(fast.p_x.head.state_dict())
        return self


class PlainAdamTorchOrder:
    """Adam with the published constants (beta1 0.99, v starting at ones, eps 1e-4 outside the bias correction)
    in torch's order -- moments first, then the parameters -- one parameter at a time: what a researcher
    writes. The package's default runs Theano's order (tested against the authors' update in test_authors.py)."""

    def __init__(self, params, lr=1e-3, b1=0.99, b2=0.999, eps=1e-4):
        self.params = list(params)
        self.lr, self.b1, self.b2, self.eps, self.t = lr, b1, b2, eps, 0
        self.m = [torch.zeros_like(p) for p in self.params]
        self.v = [torch.ones_like(p) for p in self.params]

    @torch.no_grad()
    def step(self):
        self.t += 1
        step = self.lr * math.sqrt(1 - self.b2**self.t) / (1 - self.b1**self.t)
        for p, m, v in zip(self.params, self.m, self.v):
            g = p.grad
            m.mul_(self.b1).add_((1 - self.b1) * g)
            v.mul_(self.b2).add_((1 - self.b2) * g * g)
            p.sub_(step * m / (v.sqrt() + self.eps))

    def zero_grad(self):
        for p in self.params:
            p.grad = None


@torch.no_grad()
def per_image_log_likelihood(model: PlainIWAE, x: torch.Tensor, k: int) -> torch.Tensor:
    """The common evaluation loop: one test image at a time, its K samples in one batch."""
    out = []
    for i in range(x.shape[0]):
        log_w = model.log_weights(x[i : i + 1], k)  # [K, 1]
        out.append(torch.logsumexp(log_w, 0) - math.log(k))
    return torch.cat(out)
