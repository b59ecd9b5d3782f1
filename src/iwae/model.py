"""The paper's generative models and recognition networks (section 5, "Architectures").

1 stochastic layer:  q: x(784) -200-200-> z(50)            p: z -200-200-> x (Bernoulli)
2 stochastic layers: q: x -200-200-> h1(100) -100-100-> h2(50)
                     p: h2 -100-100-> h1 (Gaussian) -200-200-> x (Bernoulli); prior N(0, I) on the top.
Deterministic layers are tanh. Gaussian heads: mean linear, sigma = exp(linear).

One class holds one model or a stack of M models trained together (``members=M``): a stack's
parameters carry a leading model dimension and its layers are batched matrix products, so every
tensor below may carry a leading ``[M]``; the densities are written once, in ``log_weights``.

``log_weights(x, k)`` returns log w = log p(x, h) - log q(h | x) for k samples, shape [k, batch]
([M, k, batch] for a stack). The deterministic part of q(h1 | x) is computed once per data point,
not once per sample: the same function as replicating x k times, at about half the cost.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

X_DIM = 784
INITS = ("authors", "seeded")
AUTHORS_SEED = 123  # yburda/iwae nnet.Linear.random: a fresh RandomState(123) for every layer


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


class Linear(nn.Module):
    """x W^T + b for one model (weight [out, in]) or a stack of M models (weight [M, out, in]).

    A stack's input carries the model dimension first: [M, ..., in] -> [M, ..., out].
    """

    def __init__(self, n_in: int, n_out: int, members: int | None = None):
        super().__init__()
        lead = () if members is None else (members,)
        self.n_in, self.n_out = n_in, n_out
        self.weight = nn.Parameter(torch.zeros(*lead, n_out, n_in))
        self.bias = nn.Parameter(torch.zeros(*lead, n_out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.weight.dim() == 2:
            return F.linear(x, self.weight, self.bias)
        if self.weight.shape[0] == 1:  # a stack of one: its member's product is faster than a batched one
            return F.linear(x, self.weight.view(self.n_out, self.n_in), self.bias.view(self.n_out))
        rows = x.reshape(x.shape[0], -1, self.n_in)  # [M, N, in]
        out = torch.baddbmm(self.bias.unsqueeze(1), rows, self.weight.transpose(1, 2))
        return out.view(*x.shape[:-1], self.n_out)


class MLP(nn.Module):
    """in -> hidden -> hidden, tanh after each layer."""

    def __init__(self, n_in: int, n_hidden: int, members: int | None = None):
        super().__init__()
        self.l1 = Linear(n_in, n_hidden, members)
        self.l2 = Linear(n_hidden, n_hidden, members)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.l2(torch.tanh(self.l1(x))))


class GaussianLayer(nn.Module):
    """A diagonal Gaussian whose mean and log-sigma are linear in an MLP of the input.

    The two linear heads are stored as one [2*n_out, n_hidden] matrix (one matmul instead of two);
    each half is initialised as the separate layer of the published code is.
    """

    def __init__(self, n_in: int, n_hidden: int, n_out: int, members: int | None = None):
        super().__init__()
        self.n_out = n_out
        self.mlp = MLP(n_in, n_hidden, members)
        self.head = Linear(n_hidden, 2 * n_out, members)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """-> (mean, log_sigma), each [..., n_out]."""
        return self.head(self.mlp(x)).split(self.n_out, dim=-1)


class BernoulliLayer(nn.Module):
    def __init__(self, n_in: int, n_hidden: int, n_out: int, members: int | None = None):
        super().__init__()
        self.mlp = MLP(n_in, n_hidden, members)
        self.head = Linear(n_hidden, n_out, members)

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


def _fix_value(value: torch.Tensor, gradient_from: torch.Tensor) -> torch.Tensor:
    """``value`` exactly, with the gradient of ``gradient_from`` (which must equal it mathematically)."""
    return value.detach() + (gradient_from - gradient_from.detach())


class IWAEModel(nn.Module):
    """Generative model p(x, h) and recognition model q(h | x) of the paper, 1 or 2 stochastic layers.

    ``members=None`` is one model; ``members=M`` a stack of M models of the same architecture
    (see ``stack``/``member``). Parameters start at zero: initialise with ``initialise``.
    """

    def __init__(self, config: ModelConfig, members: int | None = None):
        super().__init__()
        self.config = config
        self.members = members
        sizes = config.layer_sizes
        # recognition model, bottom-up: q(h1|x), q(h2|h1)
        n_in = [config.x_dim] + [s for _, s in sizes[:-1]]
        self.q_layers = nn.ModuleList(GaussianLayer(i, hid, out, members) for i, (hid, out) in zip(n_in, sizes))
        # generative model, top-down: p(h1|h2) (2 layers only), then p(x|h1)
        self.p_layers = nn.ModuleList(
            GaussianLayer(sizes[j + 1][1], sizes[j + 1][0], sizes[j][1], members) for j in range(len(sizes) - 1)
        )
        self.p_x = BernoulliLayer(sizes[0][1], sizes[0][0], config.x_dim, members)

    @property
    def latent_sizes(self) -> list[int]:
        return [s for _, s in self.config.layer_sizes]

    def generative_parameters(self) -> list[nn.Parameter]:
        """theta: the parameters of p (the prior has none)."""
        return list(self.p_layers.parameters()) + list(self.p_x.parameters())

    def recognition_parameters(self) -> list[nn.Parameter]:
        """phi: the parameters of q."""
        return list(self.q_layers.parameters())

    def log_weights(
        self,
        x: torch.Tensor,
        k: int,
        generator: torch.Generator | None = None,
        noise: list[torch.Tensor] | None = None,
        active: list[torch.Tensor] | None = None,
        q_fixed: bool | torch.Tensor = False,
        with_log_q: bool = False,
    ):
        """log w_k = log p(x, h_k) - log q(h_k | x) for k samples h_k ~ q(h | x).

        x: [B, 784] binary ([M, B, 784] for a stack).  Returns [k, B] ([M, k, B]).
        noise: optional standard-normal draws, one [k, B, d_l] ([M, k, B, d_l]) tensor per
            stochastic layer (bottom first); drawn from ``generator`` when not given.
        active: optional boolean masks [d_l] per layer; inactive units are removed from the model:
            held at 0 (their prior mean) and left out of every density term.
        q_fixed: hold q's parameters fixed inside log q (the samples still depend on them): the
            value is unchanged, the gradient w.r.t. q's parameters is the path derivative only
            (STL, DReG). A bool, or for a stack a bool tensor [M] choosing per member.
        with_log_q: also return log q(stop(h_k) | x) with q's parameters live ([k, B]): the
            recognition term of reweighted wake-sleep.

        Every latent layer has exactly one Gaussian density in p and one in q, so their
        -d/2 log(2 pi) constants cancel and are never computed.
        """
        lead = x.shape[:-2]  # () or (M,)
        batch = x.shape[-2]
        if noise is None:
            noise = [
                torch.randn(*lead, k, batch, d, generator=generator, device=x.device, dtype=x.dtype)
                for d in self.latent_sizes
            ]
        masks = [None] * len(noise) if active is None else [a.to(x.dtype) for a in active]
        per_member = isinstance(q_fixed, torch.Tensor)
        if per_member:
            choose = q_fixed.view(-1, 1, 1, 1)

        def unit_sum(terms: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
            return (terms if mask is None else terms * mask).sum(-1)

        samples, log_w, log_q_stopped = [], 0.0, 0.0  # log q(stop(h) | x), q's parameters live (with_log_q)
        for layer, (eps, mask) in enumerate(zip(noise, masks)):
            if layer == 0:  # [.., B, d1], computed once and broadcast over the k samples
                mean, log_sigma = (t.unsqueeze(-3) for t in self.q_layers[0](x))
            else:  # [.., k, B, d_l]
                mean, log_sigma = self.q_layers[layer](samples[-1])
            h = torch.addcmul(mean, torch.exp(log_sigma), eps)  # [.., k, B, d_l]
            samples.append(h if mask is None else h * mask)
            # -log q(h_l | .) = 1/2 eps^2 + log sigma (+ constant)
            minus_log_q = 0.5 * eps.square() + log_sigma
            if per_member or q_fixed:
                # the same value, with q's parameters held fixed: 1/2 ((h - mean)/sigma)^2 + log sigma
                path = _fix_value(minus_log_q, 0.5 * ((h - mean.detach()) * torch.exp(-log_sigma.detach())).square()
                                  + log_sigma.detach())
                minus_log_q = torch.where(choose, path, minus_log_q) if per_member else path
            log_w = log_w + unit_sum(minus_log_q, mask)
            if with_log_q:
                if layer > 0:  # q(h_l | stop(h_{l-1})): the parents held fixed too
                    mean, log_sigma = self.q_layers[layer](samples[-2].detach())
                z = (h.detach() - mean) * torch.exp(-log_sigma)
                log_q_stopped = log_q_stopped - unit_sum(0.5 * z.square() + log_sigma, mask)
        # generative model: N(0, I) prior on the top layer, then down to x
        log_w = log_w - unit_sum(0.5 * samples[-1].square(), masks[-1])
        for j in reversed(range(len(self.p_layers))):
            p_mean, p_log_sigma = self.p_layers[j](samples[j + 1])
            z = (samples[j] - p_mean) * torch.exp(-p_log_sigma)
            log_w = log_w - unit_sum(0.5 * z.square() + p_log_sigma, masks[j])
        log_w = log_w + bernoulli_log_prob(x.unsqueeze(-3), self.p_x(samples[0]))
        return (log_w, log_q_stopped) if with_log_q else log_w

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
        return f"config={asdict(self.config)}, members={self.members}"


# ----------------------------------------------------------------------------- initialisation
def _authors_weight(n_in: int, n_out: int) -> torch.Tensor:
    """nnet.Linear.random(n_in, n_out) of yburda/iwae: RandomState(123).uniform(-s, s, (n_in, n_out)),
    s = sqrt(6 / (n_in + n_out)), drawn in float64, stored as float32; transposed to torch's [out, in]."""
    scale = np.sqrt(6.0 / (n_in + n_out))
    w = np.random.RandomState(AUTHORS_SEED).uniform(low=-scale, high=scale, size=(n_in, n_out))
    return torch.from_numpy(w.astype(np.float32).T.copy())


def _linears(model: IWAEModel):
    """(linear layer, heads stored in it) in the order the layers are built: q bottom-up, p top-down."""
    for layer in [*model.q_layers, *model.p_layers, model.p_x]:
        yield layer.mlp.l1, 1
        yield layer.mlp.l2, 1
        yield layer.head, 2 if isinstance(layer, GaussianLayer) else 1


@torch.no_grad()
def initialise(model: IWAEModel, scheme: str, output_bias: torch.Tensor, seed: int = 0) -> IWAEModel:
    """Set the initial weights of one model (not a stack); biases zero, p(x|h)'s bias ``output_bias``.

    ``authors``: as the published code draws them. Every layer gets a fresh RandomState(123), so
        layers of the same shape, and the mean and log-sigma heads of a Gaussian layer, start equal,
        and the seed does not change the initial weights.
    ``seeded``: Glorot-uniform from a torch generator seeded by ``seed``, every layer independent
        (the head's two halves included): for studies of the spread over initialisations.
    """
    if scheme not in INITS:
        raise ValueError(f"unknown init {scheme!r}; expected one of {INITS}")
    if model.members is not None:
        raise ValueError("initialise one model, then stack the members (iwae.model.stack)")
    generator = torch.Generator().manual_seed(seed)
    for linear, heads in _linears(model):
        n_out = linear.n_out // heads  # a Gaussian head stacks the mean and log-sigma layers
        if scheme == "authors":
            linear.weight.copy_(torch.cat([_authors_weight(linear.n_in, n_out)] * heads))
        else:
            bound = math.sqrt(6.0 / (linear.n_in + n_out))
            linear.weight.uniform_(-bound, bound, generator=generator)
        linear.bias.zero_()
    model.p_x.head.bias.copy_(output_bias)
    return model


def output_bias_from_data(train_x: torch.Tensor) -> torch.Tensor:
    """Logit of the training-set mean pixel clipped to [0.001, 0.999], computed as the published code
    does (NumPy, float32: -log(1/clip(mean) - 1)), so the initial output bias is bit-identical to it."""
    mean = np.mean(train_x.detach().cpu().numpy().astype(np.float32), axis=0)
    return torch.from_numpy(-np.log(1.0 / np.clip(mean, 0.001, 0.999) - 1.0).astype(np.float32))


# ----------------------------------------------------------------------------- stacks
@torch.no_grad()
def stack(models: list[IWAEModel]) -> IWAEModel:
    """One stacked model whose member m has the parameters of ``models[m]``."""
    stacked = IWAEModel(models[0].config, members=len(models)).to(next(models[0].parameters()).device)
    for name, p in stacked.named_parameters():
        p.copy_(torch.stack([dict(m.named_parameters())[name] for m in models]))
    return stacked

