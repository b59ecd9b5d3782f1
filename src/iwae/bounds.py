"""The IWAE bound and the two training objectives: the one place where they are computed.

All functions take log importance weights ``log_w`` of shape ``[K, batch]`` with
``log_w[k, b] = log p(x_b, z_kb) - log q(z_kb | x_b)`` and return one value per data point
(shape ``[batch]``). Weights are never exponentiated outside ``logsumexp``.
"""

from __future__ import annotations

import math

import torch

OBJECTIVES = ("vae", "iwae")


def iwae_bound(log_w: torch.Tensor) -> torch.Tensor:
    """L_K = log (1/K) sum_k w_k, computed as logsumexp_k(log w_k) - log K.  [K, B] -> [B]."""
    k = log_w.shape[0]
    return torch.logsumexp(log_w, dim=0) - math.log(k)


def elbo(log_w: torch.Tensor) -> torch.Tensor:
    """The K-sample average of ELBO terms, (1/K) sum_k log w_k (the paper's "VAE at K").  [K, B] -> [B]."""
    return log_w.mean(dim=0)


def objective(name: str, log_w: torch.Tensor) -> torch.Tensor:
    """The per-data-point training objective ``name`` ("vae" or "iwae"), to be maximised."""
    if name == "iwae":
        return iwae_bound(log_w)
    if name == "vae":
        return elbo(log_w)
    raise ValueError(f"unknown objective {name!r}; expected one of {OBJECTIVES}")


def log_mean_exp_chunks(chunk_lse: list[torch.Tensor], k_total: int) -> torch.Tensor:
    """Combine per-chunk ``logsumexp`` values (each ``[B]``) over K samples into L_K."""
    return torch.logsumexp(torch.stack(chunk_lse, dim=0), dim=0) - math.log(k_total)
