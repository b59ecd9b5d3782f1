"""The members of a run trained together: their stacked model, optimiser, generators, and the one step.

``Stack.step`` updates every member once -- minibatch selection, binarisation, sample noise, forward,
backward (one pass, or one for the generative and one for the recognition parameters where an
estimator needs different surrogates for them), the optimiser -- without a host synchronisation.
Each member draws from its own generator in a fixed order (binarisation, then noise per layer) and
its loss depends on its own parameters only: a member's trajectory does not depend on the other
members (up to float rounding: see docs/family on chaos).

There is one step; these are ways of running it (``STEP_MODES``):
- ``eager``: its operations launched one after another (CPU and CUDA);
- ``captured``: recorded once as a CUDA graph and replayed (``iwae.graphs``; CUDA only);
- ``compiled``: the forward, the backward and the optimiser update compiled by ``torch.compile``
  (inductor fuses the elementwise chains into fewer, larger kernels); the random draws stay eager;
- ``fused``: compiled, then captured as a CUDA graph (CUDA only);
- ``auto``: captured on CUDA (measured on an H200 and an H100: 2-12x faster than eager, docs/gpu), eager
  elsewhere, and eager for the optimisers other than the published one (the other ways run the published
  update only). ``compiled`` and ``fused`` are not defaults: ``compiled`` is tested against eager on the CPU,
  ``fused`` on CUDA (``tests/test_gpu.py``); neither is yet timed on a GPU.
The epoch loop is in ``iwae.train``; what a checkpoint holds of a stack is in ``iwae.checkpoint``.
"""

from __future__ import annotations

import torch

from iwae import checkpoint, graphs, objectives
from iwae.config import TrainConfig, check_stack
from iwae.model import IWAEModel, ModelConfig, initialise, output_bias_from_data, stack
from iwae.optim import FlatAdam, FlatParameters

STEP_MODES = ("auto", "eager", "captured", "compiled", "fused")
CUDA_ONLY = ("captured", "fused")


def resolve_step_mode(step_mode: str, device: torch.device, optimizer: str = "published") -> str:
    """The way ``step_mode`` runs on ``device`` (``auto`` resolved; see the module docstring). Every way but
    eager runs the optimiser as ``FlatAdam.step_graphable``, the published update only: the other
    ``optimizer`` variants run eager (``auto``) or are refused."""
    if step_mode not in STEP_MODES:
        raise ValueError(f"step_mode must be one of {STEP_MODES}, got {step_mode!r}")
    if step_mode == "auto":
        published = optimizer == "published"
        return "captured" if published and device.type == "cuda" and graphs.supported() else "eager"
    if step_mode in CUDA_ONLY and device.type != "cuda":
        raise ValueError(f"step_mode {step_mode!r} records a CUDA graph and needs a CUDA device; use 'eager', "
                         f"'compiled' or 'auto'")
    if step_mode != "eager" and optimizer != "published":
        raise ValueError(f"step_mode {step_mode!r} runs the published Adam update only; optimizer {optimizer!r} "
                         f"needs step_mode 'eager' (or 'auto', which chooses it)")
    return step_mode


def initial_model(cfg: TrainConfig, output_bias: torch.Tensor) -> IWAEModel:
    """One member's starting point: the initial weights of ``cfg.init``, or the model it continues."""
    model = IWAEModel(ModelConfig(cfg.n_layers))
    if cfg.init_from:
        model.load_state_dict(checkpoint.read(cfg.init_from)["state_dict"])
        return model
    return initialise(model, cfg.init, output_bias, seed=cfg.seed)


def build(cfgs: list[TrainConfig], train_x: torch.Tensor, lr: float = 1e-3) -> Stack:
    """The stack of ``cfgs`` at their starting points, training on ``train_x`` ([N, 784] grey levels, on the
    training device; the output bias of the authors' initialisation is computed from it)."""
    check_stack(cfgs)
    output_bias = output_bias_from_data(train_x)
    return Stack(cfgs, [initial_model(c, output_bias) for c in cfgs], train_x, lr)


class Stack:
    def __init__(self, cfgs: list[TrainConfig], models: list[IWAEModel], train_x: torch.Tensor, lr: float):
        """cfgs: the members' TrainConfigs (sharing all but objective, seed, init_from); models: their starting
        points; train_x: [N, 784] grey levels on the training device. ``use(mode)`` chooses how steps run."""
        device = train_x.device
        cfg0 = cfgs[0]
        self.cfgs, self.device = cfgs, device
        self.n_members, self.batch, self.k = len(cfgs), cfg0.batch_size, cfg0.k
        self.n_train = train_x.shape[0]
        self.n_batches = self.n_train // self.batch
        self.train_x = train_x
        self.gens = [torch.Generator(device=device).manual_seed(c.seed) for c in cfgs]
        self.model = stack(models).to(device)
        self.params = FlatParameters(self.model)  # one buffer for all members' parameters, one for gradients
        self.opt = FlatAdam(self.params, lr=lr, variant=cfg0.optimizer)
        self.theta, self.phi = self.model.generative_parameters(), self.model.recognition_parameters()
        self.fixed_order = cfg0.data_order == "fixed"

        # per-step buffers, kept in place (a CUDA graph replays on the same memory)
        m = self.n_members
        self.order = torch.arange(self.n_train, device=device).expand(m, self.n_train).clone()  # [M, N] row order
        self.step_in_epoch = torch.zeros((), dtype=torch.long, device=device)
        self.rows_base = torch.arange(self.batch, device=device)
        self.uniform = torch.empty(m, self.batch, train_x.shape[1], device=device)
        self.noise = [torch.empty(m, self.k, self.batch, d, device=device) for d in self.model.latent_sizes]
        self.partial = torch.zeros(m, self.n_batches, device=device)  # per-step objective of the current epoch

        # the members grouped by objective; values come back in group order, ``self.member_of`` puts them back
        objs = [objectives.get(c.objective) for c in cfgs]
        groups: dict[str, tuple] = {}
        for i, o in enumerate(objs):
            groups.setdefault(o.name, (o, []))[1].append(i)
        self.by_objective = [(o, None if len(ms) == m else torch.tensor(ms, device=device)) for o, ms in groups.values()]
        order = [i for _, ms in groups.values() for i in ms]
        self.member_of = None if order == list(range(m)) else torch.tensor(order, device=device).argsort()
        q_fixed = [o.q_fixed for o in objs]
        self.q_fixed = q_fixed[0] if len(set(q_fixed)) == 1 else torch.tensor(q_fixed, device=device)
        self.needs_log_q = any(o.needs_log_q for o in objs)
        self.split_backward = any(o.phi is not None for o in objs)  # theta and phi take different surrogates

        self.mode = "eager"
        self.t_device = None  # the optimiser's step count on the device (every mode but eager)
        self._forward, self._update, self._run = self._forward_eager, self.opt.step, self._step

    # ------------------------------------------------------------------ the step
    def _draw(self) -> None:
        """Each member's draws from its own generator, in a fixed order: binarisation, then noise per layer."""
        for m, g in enumerate(self.gens):
            torch.rand(self.uniform.shape[1:], generator=g, device=self.device, out=self.uniform[m])
            for buf in self.noise:
                torch.randn(buf.shape[1:], generator=g, device=self.device, out=buf[m])

    def _forward_eager(self, step_in_epoch: torch.Tensor, uniform: torch.Tensor, noise: list[torch.Tensor]):
        """-> (theta surrogate, phi surrogate or 0, per-member values [M, B]), summed over the minibatch."""
        rows = self.rows_base + step_in_epoch * self.batch  # [B]
        if self.fixed_order:
            grey = self.train_x.index_select(0, rows)  # [B, 784], the same rows for every member
        else:
            grey = self.train_x[self.order.index_select(1, rows)]  # [M, B, 784]
        x = (uniform < grey).to(self.train_x.dtype)  # [M, B, 784]: a fresh binarisation of the minibatch
        out = self.model.log_weights(x, self.k, noise=noise, q_fixed=self.q_fixed, with_log_q=self.needs_log_q)
        log_w, log_q = out if self.needs_log_q else (out, None)  # [M, K, B]
        theta_total = phi_total = 0.0
        values = []
        for obj, idx in self.by_objective:
            pick = (lambda t: t) if idx is None else (lambda t: t.index_select(0, idx))
            value = obj.value(pick(log_w))  # [m, B]
            theta_total = theta_total + value.sum()  # gradients summed over the minibatch
            if self.split_backward:
                surrogate = obj.phi_surrogate(pick(log_w), None if log_q is None else pick(log_q), value)
                phi_total = phi_total + surrogate.sum()
            values.append(value.detach())
        values = torch.cat(values) if self.member_of is None else torch.cat(values).index_select(0, self.member_of)
        return theta_total, phi_total, values

    def _step(self) -> None:
        """One update of every member; no host synchronisation (a CUDA graph can record it)."""
        self._draw()
        theta_total, phi_total, values = self._forward(self.step_in_epoch, self.uniform, self.noise)
        self.params.zero_grad()
        if self.split_backward:
            torch.autograd.backward(-theta_total, inputs=self.theta, retain_graph=True)
            torch.autograd.backward(-phi_total, inputs=self.phi)
        else:
            (-theta_total).backward()
        self.partial.index_copy_(1, self.step_in_epoch.view(1), values.sum(-1, keepdim=True))
        self._update()
        self.step_in_epoch.add_(1).remainder_(self.n_batches)

    def step(self) -> None:
        """One training step of every member, run the way ``use`` chose."""
        self._run()
        if self.t_device is not None:
            self.opt.t += 1  # the host's count kept in line with the device's

    # ------------------------------------------------------------------ ways of running it
    def use(self, mode: str) -> None:
        """Run the following steps ``eager``, ``captured``, ``compiled`` or ``fused`` (``resolve_step_mode``'s
        names). Call it once, after any state is loaded (a recording replays on the buffers of that moment)."""
        mode = resolve_step_mode(mode, self.device, self.opt.variant)
        if mode == "eager":
            return
        self.opt.settle()  # the device-side update runs in Theano's order directly (no pending gradient)
        self.t_device = torch.tensor(float(self.opt.t), device=self.device)
        self.opt.lr_tensor = torch.tensor(self.opt.lr, device=self.device)
        self._update = lambda: self.opt.step_graphable(self.t_device)
        if mode in ("compiled", "fused"):
            # every stack compiles the same methods for its own model: allow one compilation per stack (past the
            # limit torch would fall back to eager without a word)
            torch._dynamo.config.recompile_limit = max(torch._dynamo.config.recompile_limit, 64)
            self._forward = torch.compile(self._forward_eager, dynamic=False)
            self._update = torch.compile(self._update, dynamic=False)
        if mode in ("captured", "fused"):
            self._run = graphs.CapturedStep(self._step, self.gens, self.device)
        self.mode = mode

    def start_epoch(self, lr: float, first_step: int) -> None:
        self.opt.lr = lr
        if not self.fixed_order and first_step == 0:
            for m, g in enumerate(self.gens):  # a new order of the rows, from the member's generator
                self.order[m].copy_(torch.randperm(self.n_train, generator=g, device=self.device))
        self.step_in_epoch.fill_(first_step)
