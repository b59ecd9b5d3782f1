"""The members of a run trained together: their stacked model, optimiser, generators, and the one step.

``Stack.step`` updates every member once -- minibatch selection, binarisation, sample noise, forward,
backward (one pass, or one for the generative and one for the recognition parameters where an
estimator needs different surrogates for them), the optimiser -- without a host synchronisation,
so that on CUDA it can be recorded as a graph and replayed (``step_mode="captured"``). Each member
draws from its own generator in a fixed order (binarisation, then noise per layer) and its loss
depends on its own parameters only: a member's trajectory does not depend on the other members.
The epoch loop, checkpoints and outputs are in ``iwae.train``.
"""

from __future__ import annotations

import torch

from iwae import objectives
from iwae.model import IWAEModel, member_state_dict, stack
from iwae.optim import FlatParameters, PublishedAdam


class Stack:
    def __init__(self, cfgs: list, models: list[IWAEModel], train_x: torch.Tensor, lr: float):
        """cfgs: the members' TrainConfigs (sharing all but objective, seed, init_from); models: their starting
        points; train_x: [N, 784] grey levels on the training device. ``capture()`` switches to a CUDA graph."""
        device = train_x.device
        cfg0 = cfgs[0]
        self.cfgs, self.device = cfgs, device
        self.n_members, self.batch, self.k = len(cfgs), cfg0.batch_size, cfg0.k
        self.n_train = train_x.shape[0]
        self.n_batches = self.n_train // self.batch
        self.train_x = train_x
        self.objs = [objectives.get(c.objective) for c in cfgs]
        self.gens = [torch.Generator(device=device).manual_seed(c.seed) for c in cfgs]
        self.model = stack(models).to(device)
        self.params = FlatParameters(self.model)  # one buffer for all members' parameters, one for gradients
        self.opt = PublishedAdam(self.params, lr=lr, variant=cfg0.optimizer)
        self.theta, self.phi = self.model.generative_parameters(), self.model.recognition_parameters()
        self.fixed_order = cfg0.data_order == "fixed"

        # per-step buffers, kept in place (a CUDA graph replays on the same memory)
        m = self.n_members
        self.order = torch.arange(self.n_train, device=device).expand(m, self.n_train).clone()  # [M, N] row order
        self.step_in_epoch = torch.zeros((), dtype=torch.long, device=device)
        self.rows_base = torch.arange(self.batch, device=device)
        self.uniform = torch.empty(m, self.batch, train_x.shape[1], device=device)
        self.noise = [torch.empty(m, self.k, self.batch, d, device=device) for d in self.model.latent_sizes]
        self.member_values = torch.empty(m, self.batch, device=device)
        self.partial = torch.zeros(m, self.n_batches, device=device)  # per-step objective of the current epoch
        members_of: dict[str, tuple] = {}
        for i, o in enumerate(self.objs):
            members_of.setdefault(o.name, (o, []))[1].append(i)
        self.by_objective = [(o, None if len(ms) == m else torch.tensor(ms, device=device))
                             for o, ms in members_of.values()]
        q_fixed = [o.q_fixed for o in self.objs]
        self.q_fixed = q_fixed[0] if len(set(q_fixed)) == 1 else torch.tensor(q_fixed, device=device)
        self.needs_log_q = any(o.needs_log_q for o in self.objs)
        self.split_backward = any(o.phi is not None for o in self.objs)  # theta and phi take different surrogates
        self.t_device = None  # the optimiser's step count on the device (captured mode)
        self.run = self.step

    def step(self) -> None:
        """One update of every member; no host synchronisation (a CUDA graph can record it)."""
        rows = self.rows_base + self.step_in_epoch * self.batch  # [B]
        if self.fixed_order:
            grey = self.train_x.index_select(0, rows)  # [B, 784], the same rows for every member
        else:
            grey = self.train_x[self.order.index_select(1, rows)]  # [M, B, 784]
        for m, g in enumerate(self.gens):  # each member's draws, in a fixed order: binarisation, then noise
            torch.rand(self.uniform.shape[1:], generator=g, device=self.device, out=self.uniform[m])
            for buf in self.noise:
                torch.randn(buf.shape[1:], generator=g, device=self.device, out=buf[m])
        x = (self.uniform < grey).to(self.train_x.dtype)  # [M, B, 784]: a fresh binarisation of the minibatch
        out = self.model.log_weights(x, self.k, noise=self.noise, q_fixed=self.q_fixed, with_log_q=self.needs_log_q)
        log_w, log_q = out if self.needs_log_q else (out, None)  # [M, K, B]
        theta_total = phi_total = 0.0
        for obj, idx in self.by_objective:
            pick = (lambda t: t) if idx is None else (lambda t: t.index_select(0, idx))
            value = obj.value(pick(log_w))  # [m, B]
            theta_total = theta_total + value.sum()  # gradients summed over the minibatch
            if self.split_backward:
                surrogate = obj.phi_surrogate(pick(log_w), None if log_q is None else pick(log_q), value)
                phi_total = phi_total + surrogate.sum()
            if idx is None:
                self.member_values.copy_(value.detach())
            else:
                self.member_values.index_copy_(0, idx, value.detach())
        self.params.zero_grad()
        if self.split_backward:
            torch.autograd.backward(-theta_total, inputs=self.theta, retain_graph=True)
            torch.autograd.backward(-phi_total, inputs=self.phi)
        else:
            (-theta_total).backward()
        self.partial.index_copy_(1, self.step_in_epoch.view(1), self.member_values.sum(-1, keepdim=True))
        if self.t_device is None:
            self.opt.step()
        else:
            self.opt.step_graphable(self.t_device)
        self.step_in_epoch.add_(1).remainder_(self.n_batches)

    def capture(self) -> None:
        """From now on ``run`` replays a CUDA graph of ``step`` (after a few eager steps)."""
        from iwae.graphs import CapturedStep

        self.opt.settle()  # the graph runs the update in Theano's order directly (no pending gradient)
        self.t_device = torch.tensor(float(self.opt.t), device=self.device)
        self.opt.lr_tensor = torch.tensor(self.opt.lr, device=self.device)
        self.run = CapturedStep(self.step, self.gens, self.device)

    def advance(self) -> None:
        """One training step: ``run`` (eager or replayed), with the host's step count kept in line."""
        self.run()
        if self.t_device is not None:
            self.opt.t += 1

    def start_epoch(self, lr: float, first_step: int) -> None:
        self.opt.lr = lr
        if not self.fixed_order and first_step == 0:
            for m, g in enumerate(self.gens):  # a new order of the rows, from the member's generator
                self.order[m].copy_(torch.randperm(self.n_train, generator=g, device=self.device))
        self.step_in_epoch.fill_(first_step)

    # ------------------------------------------------------------------ one member's state, in a model's layout
    def _member_tensors(self, flat: torch.Tensor, m: int) -> dict[str, torch.Tensor]:
        return {name: t[m].detach().cpu().clone() for name, t in self.params.views(flat).items()}

    def member_state_dict(self, m: int) -> dict[str, torch.Tensor]:
        return member_state_dict(self.model, m)

    def optimiser_state(self, m: int) -> dict:
        s = self.opt.state()
        return dict(variant=s["variant"], t=s["t"], m=self._member_tensors(s["m"], m),
                    v=self._member_tensors(s["v"], m),
                    pending=None if s["pending"] is None else self._member_tensors(s["pending"], m))

    def member_state(self, m: int) -> dict:
        """Everything a checkpoint keeps of member m."""
        return dict(state_dict=self.member_state_dict(m), optimizer=self.optimiser_state(m),
                    generator=self.gens[m].get_state(), partial=self.partial[m].cpu(), order=self.order[m].cpu())

    @torch.no_grad()
    def load_member(self, m: int, state: dict) -> None:
        for name, t in self.model.state_dict().items():
            t[m].copy_(state["state_dict"][name])
        self.gens[m].set_state(state["generator"])
        self.partial[m].copy_(state["partial"])
        self.order[m].copy_(state["order"])

    @torch.no_grad()
    def load_optimiser(self, states: list[dict]) -> None:
        """The members' optimiser states (each in a model's layout) as the stack's."""
        ts = {s["t"] for s in states}
        if len(ts) != 1:
            raise RuntimeError(f"the members' optimiser states are at different steps {sorted(ts)}; train them "
                               f"in separate runs")
        if len({s["pending"] is None for s in states}) > 1:
            states = [dict(s, **_settled(s, self.opt.betas)) for s in states]  # all in the settled form
        flat = {key: torch.zeros_like(self.params.flat) for key in ("m", "v", "pending")}
        for m, s in enumerate(states):
            for key in ("m", "v") + (("pending",) if s["pending"] is not None else ()):
                for name, t in self.params.views(flat[key]).items():
                    t[m].copy_(s[key][name])
        self.opt.load(dict(variant=states[0]["variant"], t=ts.pop(), m=flat["m"], v=flat["v"],
                           pending=flat["pending"] if states[0]["pending"] is not None else None))


def _settled(state: dict, betas) -> dict:
    """An optimiser state with its pending moment update applied (see PublishedAdam.settle)."""
    if state["pending"] is None:
        return {}
    b1, b2 = betas
    g = state["pending"]
    return dict(m={n: b1 * t + (1 - b1) * g[n] for n, t in state["m"].items()},
                v={n: b2 * t + (1 - b2) * g[n].square() for n, t in state["v"].items()}, pending=None)
