"""The IWAE bound and the ELBO: the one place where they are computed.

Both take log importance weights ``log_w`` of shape ``[..., K, batch]`` with
``log_w[k, b] = log p(x_b, z_kb) - log q(z_kb | x_b)`` (a stack of models adds a leading [M]) and
return one value per data point (shape ``[..., batch]``). Weights are never exponentiated outside
``logsumexp``. The training objectives built from them are in ``iwae.objectives``.
"""

from __future__ import annotations

import math

import torch


def iwae_bound(log_w: torch.Tensor) -> torch.Tensor:
    """L_K = log (1/K) sum_k w_k, computed as logsumexp_k(log w_k) - log K.  [.., K, B] -> [.., B]."""
    k = log_w.shape[-2]
    return torch.logsumexp(log_w, dim=-2) - math.log(k)


def elbo(log_w: torch.Tensor) -> torch.Tensor:
    """The K-sample average of ELBO terms, (1/K) sum_k log w_k (the paper's "VAE at K").  [.., K, B] -> [.., B]."""
    return log_w.mean(dim=-2)


def normalised_weights(log_w: torch.Tensor) -> torch.Tensor:
    """w~_k = w_k / sum_j w_j over the K axis, as constants (no gradient).  [.., K, B] -> [.., K, B]."""
    return torch.softmax(log_w.detach(), dim=-2)

