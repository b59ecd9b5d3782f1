"""The training objectives and gradient estimators of the IWAE family: one registry.

An entry turns log weights ``log_w`` [.., K, B] into
- ``value``: the bound it trains, per data point (the training curves show it), whose gradient
  w.r.t. the generative parameters theta is the estimator's;
- ``phi``: a surrogate whose gradient w.r.t. the recognition parameters phi is the estimator's, or
  None where that is the value's too (then one backward pass serves both; otherwise the trainer
  runs one for theta and one for phi),
and says what the forward pass must provide: ``q_fixed`` (log q with q's parameters held fixed, so
that the phi-gradient is the path derivative through the samples only) and ``needs_log_q``
(log q of the stopped samples, for wake-phi). Every surrogate is maximised. A new objective is a new
entry here and a name in the config; the trainer does not change.

Names: ``vae``, ``iwae``, ``iwae_stl``, ``iwae_dreg``, ``rws``, ``rws_dreg``, ``miwae_m<M>``,
``piwae_m<M>``, ``ciwae_b<beta>`` (e.g. ``miwae_m8``, ``ciwae_b0.5``); K is the number of samples
per data point (M x K' for MIWAE(M, K') and PIWAE(M, K')).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Callable

import torch

from iwae.bounds import elbo, iwae_bound, normalised_weights

Surrogate = Callable[[torch.Tensor, "torch.Tensor | None"], torch.Tensor]


@dataclass(frozen=True)
class Objective:
    name: str
    summary: str  # one line for the README and --help
    reference: str
    value: Callable[[torch.Tensor], torch.Tensor]
    phi: Surrogate | None = None  # None: the value's gradient is phi's too
    q_fixed: bool = False
    needs_log_q: bool = False
    max_layers: int = 2  # estimators written for one stochastic layer refuse two
    groups: int = 1  # K must be a multiple of this (MIWAE/PIWAE's M)

    def phi_surrogate(self, log_w: torch.Tensor, log_q: torch.Tensor | None, value: torch.Tensor) -> torch.Tensor:
        """The surrogate for the recognition gradient, given the ``value`` already computed from log_w."""
        return value if self.phi is None else self.phi(log_w, log_q)

    def check(self, k: int, n_layers: int) -> None:
        """Raise ValueError, naming the fix, for a K or architecture this estimator does not support."""
        if n_layers > self.max_layers:
            raise ValueError(
                f"objective {self.name!r} is written for one stochastic layer (its estimator is not correct for "
                f"{n_layers}); use layers: [1] for it, or iwae/rws for 2-layer models")
        if k % self.groups:
            raise ValueError(f"objective {self.name!r} splits K into {self.groups} groups: K={k} is not a multiple "
                             f"of {self.groups}; choose K = {self.groups} x (samples per group)")


def _weighted(coefficient: Callable[[torch.Tensor], torch.Tensor]) -> Surrogate:
    """sum_k stop(c_k) log w_k: the gradient sum_k c_k grad log w_k, for constant coefficients c."""
    return lambda log_w, log_q: (coefficient(normalised_weights(log_w)) * log_w).sum(-2)


def _miwae(m: int):
    def bound(log_w, log_q=None):  # [.., M*K, B] -> M independent K-sample bounds, averaged
        return iwae_bound(log_w.unflatten(-2, (m, log_w.shape[-2] // m))).mean(-2)
    return bound


def _ciwae(beta: float):
    return lambda log_w: beta * elbo(log_w) + (1 - beta) * iwae_bound(log_w)


def _wake_phi(log_w, log_q):
    """sum_k stop(w~_k) log q(stop(z_k) | x): reweighted wake-sleep's recognition update."""
    return (normalised_weights(log_w) * log_q).sum(-2)


_FIXED: dict[str, Objective] = {
    "vae": Objective("vae", "K-sample average of ELBO terms (the paper's VAE)", "Kingma & Welling 2014",
                     elbo),
    "iwae": Objective("iwae", "the K-sample importance weighted bound L_K", "Burda et al. 2016",
                      iwae_bound),
    "iwae_stl": Objective(
        "iwae_stl", "IWAE, recognition gradient sum_k w~_k grad log w_k with q's parameters fixed in log q",
        "Roeder et al. 2017 (sticking the landing)", iwae_bound, q_fixed=True, max_layers=1),
    "iwae_dreg": Objective(
        "iwae_dreg", "IWAE, doubly reparameterised recognition gradient sum_k w~_k^2 grad log w_k",
        "Tucker et al. 2018", iwae_bound, phi=_weighted(lambda w: w.square()), q_fixed=True, max_layers=1),
    "rws": Objective("rws", "reweighted wake-sleep: IWAE for p, wake-phi sum_k w~_k grad log q(stop z_k) for q",
                     "Bornschein & Bengio 2015", iwae_bound, phi=_wake_phi, needs_log_q=True),
    "rws_dreg": Objective(
        "rws_dreg", "RWS with the doubly reparameterised wake-phi gradient sum_k (w~_k - w~_k^2) grad log w_k",
        "Tucker et al. 2018", iwae_bound, phi=_weighted(lambda w: w - w.square()), q_fixed=True,
        max_layers=1),
}
_PATTERNS = {
    r"miwae_m(\d+)": lambda m: Objective(
        f"miwae_m{m}", f"MIWAE({m}, K/{m}): the average of {m} independent K/{m}-sample IWAE bounds",
        "Rainforth et al. 2018", _miwae(int(m)), groups=int(m)),
    r"piwae_m(\d+)": lambda m: Objective(
        f"piwae_m{m}", f"PIWAE({m}, K/{m}): p trained on the K-sample IWAE bound, q on MIWAE({m}, K/{m})",
        "Rainforth et al. 2018", iwae_bound, phi=_miwae(int(m)), groups=int(m)),
    r"ciwae_b([01](?:\.\d+)?)": lambda b: Objective(
        f"ciwae_b{b}", f"CIWAE({b}): {b} x ELBO + (1 - {b}) x IWAE bound on the same K samples",
        "Rainforth et al. 2018", _ciwae(float(b))),
}
@lru_cache(maxsize=None)
def get(name: str) -> Objective:
    """The registry entry of ``name``; ValueError naming the valid names otherwise."""
    if name in _FIXED:
        return _FIXED[name]
    for pattern, make in _PATTERNS.items():
        match = re.fullmatch(pattern, name)
        if match:
            obj = make(match.group(1))
            if obj.groups < 1 or (name.startswith("ciwae") and not 0 <= float(match.group(1)) <= 1):
                break
            return obj
    raise ValueError(
        f"unknown objective {name!r}; expected one of {sorted(_FIXED)} or miwae_m<M>, piwae_m<M> (M >= 1), "
        f"ciwae_b<beta> (0 <= beta <= 1), e.g. miwae_m8, ciwae_b0.5")


def describe() -> str:
    """The registry in words, one objective a line (name: summary; reference): what `iwae train --help` lists. The
    families with a parameter are shown at one value (miwae_m<M>, piwae_m<M>, ciwae_b<beta>)."""
    shown = [*_FIXED.values(), get("miwae_m8"), get("piwae_m8"), get("ciwae_b0.5")]
    return "\n".join(f"  {o.name}: {o.summary} ({o.reference})" for o in shown)


def objective(name: str, log_w: torch.Tensor) -> torch.Tensor:
    """The per-data-point value of the training objective ``name``, to be maximised. [.., K, B] -> [.., B]."""
    return get(name).value(log_w)
