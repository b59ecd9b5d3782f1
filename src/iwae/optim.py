"""Adam as the published IWAE code (yburda/iwae, optimizers.py) ran it, on one flat parameter buffer.

The published update, in Theano's order (every update is computed from the values before the step):
    t starts at 1;  alpha_t = lr * sqrt(1 - b2^t) / (1 - b1^t)
    theta_t = theta_{t-1} + alpha_t * m_{t-1} / (sqrt(v_{t-1}) + 1e-4)     (uses the OLD moments)
    m_t = b1 m_{t-1} + (1 - b1) g_t;   v_t = b2 v_{t-1} + (1 - b2) g_t^2;   m_0 = 0, v_0 = 1
with b1 = 0.99, b2 = 0.999 (the paper's text says b1 = 0.9). The first update does not move the
parameters; each later one uses the moments of the step before.

Speed: torch's fused Adam kernel (one kernel for all parameters, CPU and CUDA) updates the moments
first and then the parameters, i.e. it runs [moments(g), params] where Theano runs [params, moments(g)].
Over a run these are the same sequence shifted by one step, so ``step()`` feeds the kernel the
PREVIOUS step's gradient (kept in a second flat buffer; the two buffers swap roles each step, so
nothing is copied) with that step's bias corrections. torch's update is
p -= lr/(1-b1^t) * m / (sqrt(v)/sqrt(1-b2^t) + eps_t), the published one when eps_t = eps/sqrt(1-b2^t);
so eps_t is set per step and v starts at ones. ``step_graphable()`` is the same update written as
elementwise tensor operations with the step count and learning rate on the device (no host values
change between steps), for a CUDA graph or torch.compile. Both are tested against a NumPy transcription of optimizers.py.

Named alternatives: ``published_torch_order`` (the same constants, torch's order: this suite's
earlier default) and ``paper_text`` (torch's Adam with the paper's b1 = 0.9, v starting at zeros).
"""

from __future__ import annotations

import math

import torch

OPTIMIZERS = ("published", "published_torch_order", "paper_text")


class FlatParameters:
    """All of a module's parameters, and their gradients, in contiguous buffers.

    Each parameter becomes a view of one flat parameter ``flat``, and its ``.grad`` a view of the
    flat gradient ``flat.grad``, which backward() accumulates into in place. The optimiser then
    updates one tensor with one kernel instead of ~6 per parameter (the step of a small model is
    bound by kernel launches). There are two gradient buffers: ``swap_grads`` makes the other one
    the gradient (the published Adam keeps the previous step's gradient in it). Clear gradients
    with ``zero_grad()``, never by setting them to None.
    """

    def __init__(self, module: torch.nn.Module):
        self.named = [(n, p) for n, p in module.named_parameters() if p.requires_grad]
        self.flat = torch.nn.Parameter(torch.cat([p.detach().reshape(-1) for _, p in self.named]))
        self.offsets = []
        offset = 0
        for _, p in self.named:
            self.offsets.append((offset, p.numel(), p.shape))
            p.data = self.flat.data[offset : offset + p.numel()].view_as(p)
            offset += p.numel()
        self.grads = [torch.zeros_like(self.flat), torch.zeros_like(self.flat)]
        self._grad_views = [list(self.views(g).values()) for g in self.grads]
        self.current = 1
        self.swap_grads()

    def views(self, buffer: torch.Tensor) -> dict[str, torch.Tensor]:
        """``buffer`` (flat) cut into tensors shaped as the parameters, by name."""
        return {name: buffer[o : o + n].view(shape) for (name, _), (o, n, shape) in zip(self.named, self.offsets)}

    @property
    def other_grad(self) -> torch.Tensor:
        return self.grads[1 - self.current]

    def swap_grads(self) -> None:
        """Make the other gradient buffer the one backward() accumulates into."""
        self.current = 1 - self.current
        self.flat.grad = self.grads[self.current]
        for (_, p), view in zip(self.named, self._grad_views[self.current]):
            p.grad = view

    def zero_grad(self) -> None:
        self.flat.grad.zero_()


class FlatAdam:
    """Adam on ``FlatParameters`` in one of the ``OPTIMIZERS`` variants (see the module docstring): the
    published update by default, or the two named alternatives.

    State: the moments ``m``, ``v``, the number of completed steps ``t`` and, in Theano's order, the
    gradient of the last step whose moment update is still to come (``pending``, or None).
    """

    def __init__(self, params: FlatParameters, lr: float, variant: str = "published",
                 betas: tuple[float, float] | None = None, eps: float = 1e-4):
        if variant not in OPTIMIZERS:
            raise ValueError(f"unknown optimizer {variant!r}; expected one of {OPTIMIZERS}")
        betas = betas or ((0.9, 0.999) if variant == "paper_text" else (0.99, 0.999))
        if lr <= 0 or eps <= 0 or not all(0 <= b < 1 for b in betas):
            raise ValueError(f"bad Adam settings lr={lr} betas={betas} eps={eps}")
        self.params, self.variant, self.betas, self.eps = params, variant, betas, eps
        flat = params.flat
        self.torch_adam = torch.optim.Adam([flat], lr=lr, betas=betas, eps=eps, fused=True)
        v0 = torch.zeros_like if variant == "paper_text" else torch.ones_like  # published: v starts at ones
        self.torch_adam.state[flat] = dict(step=torch.zeros((), dtype=torch.float32, device=flat.device),
                                           exp_avg=torch.zeros_like(flat), exp_avg_sq=v0(flat))
        self.t = 0
        self.has_pending = False  # params.other_grad holds a gradient whose moment update is still to come
        self.lr_tensor: torch.Tensor | None = None  # set by step_graphable's users

    @property
    def m(self) -> torch.Tensor:
        return self.torch_adam.state[self.params.flat]["exp_avg"]

    @property
    def v(self) -> torch.Tensor:
        return self.torch_adam.state[self.params.flat]["exp_avg_sq"]

    @property
    def lr(self) -> float:
        return self.torch_adam.param_groups[0]["lr"]

    @lr.setter
    def lr(self, value: float) -> None:
        self.torch_adam.param_groups[0]["lr"] = value
        if self.lr_tensor is not None:
            self.lr_tensor.fill_(value)

    def _bias_step(self, t: int) -> None:
        """Make torch's kernel use step t's bias corrections (it increments its count first)."""
        group = self.torch_adam.param_groups[0]
        self.torch_adam.state[self.params.flat]["step"].fill_(t - 1)
        if self.variant != "paper_text":  # the published eps is added to sqrt(v) without bias correction
            group["eps"] = self.eps / math.sqrt(1 - self.betas[1] ** t)

    @torch.no_grad()
    def step(self) -> None:
        """One update with the gradient in ``params.flat.grad``."""
        flat = self.params.flat
        if self.variant != "published":
            self._bias_step(self.t + 1)
            self.torch_adam.step()
            self.t += 1
            return
        if not self.has_pending:  # first step (m = 0: nothing moves), or after a moment update was applied
            if self.t > 0:
                self._params_update(self._alpha(self.t + 1))
        else:  # [moments(g_{t-1}), params with alpha_t]: torch's kernel on the previous gradient
            self._bias_step(self.t + 1)
            flat.grad = self.params.other_grad
            self.torch_adam.step()
        self.params.swap_grads()  # this step's gradient waits; backward writes into the other buffer
        self.has_pending = True
        self.t += 1

    def _alpha(self, t):
        b1, b2 = self.betas
        return self.lr * math.sqrt(1 - b2**t) / (1 - b1**t)

    def _params_update(self, alpha) -> None:  # called under no_grad
        self.params.flat.sub_(alpha * self.m / (self.v.sqrt() + self.eps))

    def _moments_update(self, grad: torch.Tensor) -> None:
        b1, b2 = self.betas
        self.m.lerp_(grad, 1 - b1)
        self.v.mul_(b2).addcmul_(grad, grad, value=1 - b2)

    @torch.no_grad()
    def settle(self) -> None:
        """Apply the pending moment update, so that (m, v, t) is the published state after t steps.
        (``step`` then moves the parameters with these moments first, as Theano would.)"""
        if self.has_pending:
            self._moments_update(self.params.other_grad)
            self.has_pending = False

    @torch.no_grad()
    def step_graphable(self, t_tensor: torch.Tensor) -> None:
        """The published update in Theano's order as elementwise tensor operations, for a CUDA graph.

        ``t_tensor``: float32 device scalar, the completed steps (incremented here); the learning rate
        is ``self.lr_tensor`` (set it with ``self.lr = ...`` between replays). Needs a settled state.
        """
        b1, b2 = self.betas
        t = t_tensor + 1
        alpha = self.lr_tensor * torch.sqrt(1 - b2**t) / (1 - b1**t)
        self._params_update(alpha)
        self._moments_update(self.params.flat.grad)
        t_tensor.add_(1)

    def state(self) -> dict:
        """Flat tensors and counters (``load`` takes them back)."""
        return dict(variant=self.variant, t=self.t, m=self.m, v=self.v,
                    pending=self.params.other_grad if self.has_pending else None)

    @torch.no_grad()
    def load(self, state: dict) -> None:
        if state["variant"] != self.variant:
            raise ValueError(f"optimiser state of {state['variant']!r} cannot continue as {self.variant!r}")
        self.m.copy_(state["m"])
        self.v.copy_(state["v"])
        self.t = int(state["t"])
        self.has_pending = state["pending"] is not None
        if self.has_pending:
            self.params.other_grad.copy_(state["pending"])
