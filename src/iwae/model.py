"""The paper's generative models and recognition networks (section 5, "Architectures").

1 stochastic layer:  q: x(784) -200-200-> z(50)            p: z -200-200-> x (Bernoulli)
2 stochastic layers: q: x -200-200-> h1(100) -100-100-> h2(50)
                     p: h2 -100-100-> h1 (Gaussian) -200-200-> x (Bernoulli); prior N(0, I) on the top.
Deterministic layers are tanh. Gaussian heads: mean linear, sigma = exp(linear).

``log_weights(x, k)`` returns log w = log p(x, h) - log q(h | x) for k samples, shape [k, batch].
The deterministic part of q(h1 | x) is computed once per data point, not once per sample: this is
the same function as replicating x k times, at about half the cost.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

X_DIM = 784


@dataclass(frozen=True)
class ModelConfig:
    n_layers: int = 1  # stochastic layers: 1 or 2
    x_dim: int = X_DIM

    def __post_init__(self):
        if self.n_layers not in (1, 2):
            raise ValueError(f"n_layers must be 1 or 2, got {self.n_layers}")

    @property
    def layer_sizes(self) -> list[tuple[int, int]]:
        """(hidden, stochastic) sizes of each stochastic layer, bottom to top."""
        return [(200, 50)] if self.n_layers == 1 else [(200, 100), (100, 50)]


def _glorot_(linear: nn.Linear, generator: torch.Generator | None, fan_out: int | None = None) -> None:
    """Glorot-uniform weights, zero bias (fan_out can be set for a head that stacks two outputs)."""
    fan_in = linear.in_features
    fan_out = linear.out_features if fan_out is None else fan_out
    bound = math.sqrt(6.0 / (fan_in + fan_out))
    nn.init.uniform_(linear.weight, -bound, bound, generator=generator)
    nn.init.zeros_(linear.bias)


class MLP(nn.Module):
    """in -> hidden -> hidden, tanh after each layer."""

    def __init__(self, n_in: int, n_hidden: int, generator: torch.Generator | None = None):
        super().__init__()
        self.l1 = nn.Linear(n_in, n_hidden)
        self.l2 = nn.Linear(n_hidden, n_hidden)
        _glorot_(self.l1, generator)
        _glorot_(self.l2, generator)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.l2(torch.tanh(self.l1(x))))


class GaussianLayer(nn.Module):
    """A diagonal Gaussian whose mean and log-sigma are linear in an MLP of the input.

    The two linear heads are stored as one [2*n_out, n_hidden] matrix (one matmul instead of two);
    each half is Glorot-initialised as the separate layer of the published code would be.
    """

    def __init__(self, n_in: int, n_hidden: int, n_out: int, generator: torch.Generator | None = None):
        super().__init__()
        self.n_out = n_out
        self.mlp = MLP(n_in, n_hidden, generator)
        self.head = nn.Linear(n_hidden, 2 * n_out)
        _glorot_(self.head, generator, fan_out=n_out)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """-> (mean, log_sigma), each [..., n_out]."""
        return self.head(self.mlp(x)).split(self.n_out, dim=-1)


class BernoulliLayer(nn.Module):
    def __init__(self, n_in: int, n_hidden: int, n_out: int, generator: torch.Generator | None = None):
        super().__init__()
        self.mlp = MLP(n_in, n_hidden, generator)
        self.head = nn.Linear(n_hidden, n_out)
        _glorot_(self.head, generator)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        """-> logits [..., n_out]."""
        return self.head(self.mlp(h))


def bernoulli_log_prob(x: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
    """sum_d x_d log sigmoid(l_d) + (1 - x_d) log sigmoid(-l_d); x broadcasts over leading dims."""
    return -F.binary_cross_entropy_with_logits(logits, x.expand_as(logits), reduction="none").sum(-1)


def gaussian_sample(mean: torch.Tensor, log_sigma: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    """One draw of N(mean, exp(log_sigma)^2), elementwise."""
    eps = torch.randn(mean.shape, generator=generator, device=mean.device, dtype=mean.dtype)
    return torch.addcmul(mean, torch.exp(log_sigma), eps)


class IWAEModel(nn.Module):
    """Generative model p(x, h) and recognition model q(h | x) of the paper, 1 or 2 stochastic layers."""

    def __init__(
        self, config: ModelConfig, output_bias: torch.Tensor | None = None, generator: torch.Generator | None = None
    ):
        """generator: the source of the Glorot-uniform initial weights (a seeded one makes them reproducible)."""
        super().__init__()
        self.config = config
        sizes = config.layer_sizes
        # recognition model, bottom-up: q(h1|x), q(h2|h1)
        n_in = [config.x_dim] + [s for _, s in sizes[:-1]]
        self.q_layers = nn.ModuleList(
            GaussianLayer(i, hid, out, generator) for i, (hid, out) in zip(n_in, sizes)
        )
        # generative model, top-down: p(h1|h2) (2 layers only), then p(x|h1)
        self.p_layers = nn.ModuleList(
            GaussianLayer(sizes[j + 1][1], sizes[j + 1][0], sizes[j][1], generator) for j in range(len(sizes) - 1)
        )
        self.p_x = BernoulliLayer(sizes[0][1], sizes[0][0], config.x_dim, generator)
        if output_bias is not None:
            with torch.no_grad():
                self.p_x.head.bias.copy_(output_bias)

    @property
    def latent_sizes(self) -> list[int]:
        return [s for _, s in self.config.layer_sizes]

    def log_weights(
        self,
        x: torch.Tensor,
        k: int,
        generator: torch.Generator | None = None,
        noise: list[torch.Tensor] | None = None,
        active: list[torch.Tensor] | None = None,
    ) -> torch.Tensor:
        """log w_k = log p(x, h_k) - log q(h_k | x) for k samples h_k ~ q(h | x).

        x: [B, 784] binary.  Returns [k, B].
        noise: optional standard-normal draws, one [k, B, d_l] tensor per stochastic layer (bottom
            first); drawn from ``generator`` when not given.
        active: optional boolean masks [d_l] per layer; inactive units are removed from the model:
            held at 0 (their prior mean) and left out of every density term.

        Every latent layer has exactly one Gaussian density in p and one in q, so their
        -d/2 log(2 pi) constants cancel and are never computed.
        """
        batch = x.shape[0]
        if noise is None:
            noise = [
                torch.randn(k, batch, d, generator=generator, device=x.device, dtype=x.dtype)
                for d in self.latent_sizes
            ]
        masks = [None] * len(noise) if active is None else [a.to(x.dtype) for a in active]

        def unit_sum(terms: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
            return (terms if mask is None else terms * mask).sum(-1)

        samples = []
        mean, log_sigma = self.q_layers[0](x)  # [B, d1]: computed once, broadcast over the k samples
        for layer, (eps, mask) in enumerate(zip(noise, masks)):
            if layer > 0:
                mean, log_sigma = self.q_layers[layer](samples[-1])  # [k, B, d_l]
            h = torch.addcmul(mean, torch.exp(log_sigma), eps)  # [k, B, d_l]
            samples.append(h if mask is None else h * mask)
            # -log q(h_l | .) = 1/2 eps^2 + log sigma (+ constant)
            minus_log_q = unit_sum(0.5 * eps.square() + log_sigma, mask)
            log_w = minus_log_q if layer == 0 else log_w + minus_log_q
        # generative model: N(0, I) prior on the top layer, then down to x
        log_w = log_w - unit_sum(0.5 * samples[-1].square(), masks[-1])
        for j in reversed(range(len(self.p_layers))):
            p_mean, p_log_sigma = self.p_layers[j](samples[j + 1])
            z = (samples[j] - p_mean) * torch.exp(-p_log_sigma)
            log_w = log_w - unit_sum(0.5 * z.square() + p_log_sigma, masks[j])
        return log_w + bernoulli_log_prob(x, self.p_x(samples[0]))

    @torch.no_grad()
    def posterior_means(self, x: torch.Tensor, generator: torch.Generator | None = None) -> list[torch.Tensor]:
        """E_q[h_l] per layer: layer 1 from x; layer l > 1 from ONE sample of h_{l-1}. Each [B, d_l]."""
        means, h = [], x
        for layer in self.q_layers:
            mean, log_sigma = layer(h)
            means.append(mean)
            h = gaussian_sample(mean, log_sigma, generator)
        return means

    @torch.no_grad()
    def sample_x_means(self, n: int, generator: torch.Generator | None = None, device=None) -> torch.Tensor:
        """Bernoulli means of p(x | h) for h drawn from the generative model.  -> [n, 784]."""
        h = torch.randn(n, self.latent_sizes[-1], generator=generator, device=device)
        for j in reversed(range(len(self.p_layers))):
            h = gaussian_sample(*self.p_layers[j](h), generator)
        return torch.sigmoid(self.p_x(h))

    def extra_repr(self) -> str:
        return f"config={asdict(self.config)}"


def output_bias_from_mean(mean_pixel: torch.Tensor) -> torch.Tensor:
    """Logit of the training-set mean pixel, clipped to [0.001, 0.999] (as the published code)."""
    p = mean_pixel.clamp(0.001, 0.999)
    return torch.log(p) - torch.log1p(-p)
