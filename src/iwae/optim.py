"""Adam exactly as the published IWAE code (yburda/iwae) ran it.

Differences from ``torch.optim.Adam`` (all on purpose, to match Table 1's code):
- beta1 = 0.99 by default (the paper's text says 0.9);
- the second moment starts at ONES, not zeros;
- eps = 1e-4 is added to sqrt(v) (no bias correction inside the square root);
- the step size is lr * sqrt(1 - beta2**t) / (1 - beta1**t);
- one optimiser state is kept across all stages (only ``lr`` changes).
The update uses the ``torch._foreach_*`` kernels, one call per operation for all parameters.
"""

from __future__ import annotations

import math

import torch


class PublishedAdam(torch.optim.Optimizer):
    def __init__(self, params, lr: float = 1e-3, betas=(0.99, 0.999), eps: float = 1e-4):
        if lr <= 0 or eps <= 0 or not all(0 <= b < 1 for b in betas):
            raise ValueError(f"bad PublishedAdam settings lr={lr} betas={betas} eps={eps}")
        super().__init__(params, dict(lr=lr, betas=tuple(betas), eps=eps))

    def _init_state(self, p: torch.Tensor) -> dict:
        state = self.state[p]
        if not state:
            state["step"] = 0
            state["m"] = torch.zeros_like(p)
            state["v"] = torch.ones_like(p)
        return state

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            params = [p for p in group["params"] if p.grad is not None]
            if not params:
                continue
            beta1, beta2 = group["betas"]
            states = [self._init_state(p) for p in params]
            grads = [p.grad for p in params]
            ms = [s["m"] for s in states]
            vs = [s["v"] for s in states]
            for s in states:
                s["step"] += 1
            t = states[0]["step"]
            # m <- b1 m + (1-b1) g ;  v <- b2 v + (1-b2) g^2
            torch._foreach_lerp_(ms, grads, 1 - beta1)
            torch._foreach_mul_(vs, beta2)
            torch._foreach_addcmul_(vs, grads, grads, value=1 - beta2)
            step_size = group["lr"] * math.sqrt(1 - beta2**t) / (1 - beta1**t)
            denom = torch._foreach_sqrt(vs)
            torch._foreach_add_(denom, group["eps"])
            torch._foreach_addcdiv_(params, ms, denom, value=-step_size)
        return loss


def make_optimizer(name: str, params, lr: float) -> torch.optim.Optimizer:
    """``published`` (default, the code behind Table 1) or ``paper_text`` (torch Adam, beta1=0.9)."""
    if name == "published":
        return PublishedAdam(params, lr=lr)
    if name == "paper_text":
        return torch.optim.Adam(params, lr=lr, betas=(0.9, 0.999), eps=1e-4)
    raise ValueError(f"unknown optimizer {name!r}; expected 'published' or 'paper_text'")


def flatten_parameters(module: torch.nn.Module) -> torch.nn.Parameter:
    """Put all of ``module``'s parameters, and their gradients, into two contiguous buffers.

    Each parameter becomes a view of one flat parameter, and its ``.grad`` a view of the flat
    gradient, which backward() accumulates into in place. The optimiser then updates one tensor
    with a handful of kernels instead of ~6 per parameter (the step of a small model is bound by
    kernel launches). Call after moving the module to its device; clear gradients with
    ``flat.grad.zero_()``, never by setting them to None (that would detach the views).
    """
    params = [p for p in module.parameters() if p.requires_grad]
    flat = torch.nn.Parameter(torch.cat([p.detach().reshape(-1) for p in params]))
    flat.grad = torch.zeros_like(flat)
    offset = 0
    for p in params:
        n = p.numel()
        p.data = flat.data[offset : offset + n].view_as(p)
        p.grad = flat.grad[offset : offset + n].view_as(p)
        offset += n
    return flat
