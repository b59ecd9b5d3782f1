"""Adam exactly as the published IWAE code (yburda/iwae) ran it.

Differences from ``torch.optim.Adam`` (all on purpose, to match Table 1's code):
- beta1 = 0.99 by default (the paper's text says 0.9);
- the second moment starts at ONES, not zeros;
- eps = 1e-4 is added to sqrt(v) (no bias correction inside the square root);
- the step size is lr * sqrt(1 - beta2**t) / (1 - beta1**t);
- one optimiser state is kept across all stages (only ``lr`` changes).

The update itself is torch's own (fused, one kernel for all parameters, where the device has it):
torch computes p -= lr/(1-b1^t) * m / (sqrt(v)/sqrt(1-b2^t) + eps_t), which is the published
update when eps_t = eps / sqrt(1-b2^t); so each step sets eps_t and the state starts with v = 1.
"""

from __future__ import annotations

import math

import torch


class PublishedAdam(torch.optim.Adam):
    def __init__(self, params, lr: float = 1e-3, betas=(0.99, 0.999), eps: float = 1e-4, fused: bool = True):
        """fused: use torch's fused kernel (CPU and CUDA); False uses its foreach kernels."""
        if lr <= 0 or eps <= 0 or not all(0 <= b < 1 for b in betas):
            raise ValueError(f"bad PublishedAdam settings lr={lr} betas={betas} eps={eps}")
        super().__init__(params, lr=lr, betas=tuple(betas), eps=eps, fused=fused or None, foreach=not fused)
        for group in self.param_groups:
            group["published_eps"] = eps  # eps of the published update; group["eps"] is set per step
            # steps taken, kept on the host: torch's own count lives on the device with the fused
            # kernel, and reading it would stall every step. Every parameter gets a gradient at
            # every step here (one flat buffer), so the two counts agree.
            group["published_t"] = 0
            for p in group["params"]:
                # torch would start v at zeros on the first step; the published code starts it at ones
                step_device = p.device if fused else "cpu"
                self.state[p] = dict(
                    step=torch.zeros((), dtype=torch.float32, device=step_device),
                    exp_avg=torch.zeros_like(p, memory_format=torch.preserve_format),
                    exp_avg_sq=torch.ones_like(p, memory_format=torch.preserve_format),
                )

    @torch.no_grad()
    def step(self, closure=None):
        for group in self.param_groups:
            group["published_t"] += 1
            group["eps"] = group["published_eps"] / math.sqrt(1 - group["betas"][1] ** group["published_t"])
        return super().step(closure)


def make_optimizer(name: str, params, lr: float) -> torch.optim.Optimizer:
    """``published`` (default, the code behind Table 1) or ``paper_text`` (torch Adam, beta1=0.9)."""
    if name == "published":
        return PublishedAdam(params, lr=lr)
    if name == "paper_text":
        return torch.optim.Adam(params, lr=lr, betas=(0.9, 0.999), eps=1e-4, fused=True)
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
