"""Training with the paper's schedule: one loop, for one model or a stack of M models trained together.

A run trains M >= 1 *members* that share the data set, the architecture, K, the schedule and the
optimiser, and may differ in objective and seed (and, for Table 2, in the model they continue).
They are one stacked model (parameters with a leading member dimension, batched matrix products)
with one optimiser update for all; a single run is the M = 1 case. Each member draws everything
random -- its minibatch order where reshuffled, binarisation and sample noise -- from its own
generator seeded by its seed, in the same order whatever M is, and its loss depends on its own
parameters only, so every member ends where training it alone would (tested).

The loop reads top to bottom: data, members, the stack (``iwae.stack``: model, optimiser, the
step), schedule, (resume), epochs, checkpoints. The run's ``checkpoint.pt`` lives in its first
member's folder (every member's state in a single model's layout); each member's folder finally
holds its ``model.pt``, ``train.json`` and ``stages/stage<i>.pt`` snapshots. A killed run started
again ends with exactly the parameters of an uninterrupted run on CPU.
"""

from __future__ import annotations

import json
import os
import sys
import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import torch

from iwae import data as data_mod
from iwae import graphs
from iwae import objectives
from iwae.model import IWAEModel, ModelConfig, initialise, output_bias_from_data
from iwae.optim import OPTIMIZERS
from iwae.stack import Stack
from iwae.runtime import code_version, device_name, peak_memory_mb
from iwae.schedule import epoch_plan, schedule

CHECKPOINT = "checkpoint.pt"
# Raised whenever what a checkpoint holds changes (3: per-member files, optimiser state by parameter
# name in Theano's order with the pending gradient, one generator per member).
CHECKPOINT_FORMAT = 3
DATA_ORDERS = ("fixed", "reshuffle")
STEP_MODES = ("auto", "eager", "captured")
MEMBER_FIELDS = ("objective", "seed", "init_from")  # what may differ between the members of a stack


@dataclass
class TrainConfig:
    """One model's training protocol. The defaults are the authors' procedure (yburda/iwae)."""

    dataset: str = "mnist"
    n_layers: int = 1
    objective: str = "iwae"
    k: int = 5
    seed: int = 0
    stages: list[int] | None = None  # None: all 8 stages (the paper)
    epoch_scale: float = 1.0  # epochs of stage i = round(3**i * epoch_scale), at least 1
    train_subset: int | None = None  # use only the first N training images (None: all)
    batch_size: int = 20
    optimizer: str = "published"  # Adam as optimizers.py ran it; or published_torch_order, paper_text
    init: str = "authors"  # authors: RandomState(123) per layer, as nnet.py; seeded: Glorot from the seed
    data_order: str = "fixed"  # fixed: minibatch i = rows 20i..20i+19 every epoch (the authors'); or reshuffle
    init_from: str | None = None  # a model.pt to continue from (the paper's Table 2)
    continue_state: bool = True  # with init_from: continue its optimiser state and random state (the authors')
    budget: str = "custom"  # the pipeline's name for this budget, recorded only

    def __post_init__(self):
        objectives.get(self.objective).check(self.k, self.n_layers)
        for name, value, allowed in (("optimizer", self.optimizer, OPTIMIZERS), ("data_order", self.data_order,
                                     DATA_ORDERS), ("init", self.init, ("authors", "seeded"))):
            if value not in allowed:
                raise ValueError(f"{name} must be one of {allowed}, got {value!r}")
        if self.k < 1:
            raise ValueError(f"k must be >= 1, got {self.k}")
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {self.batch_size}")
        if self.train_subset is not None and self.train_subset < self.batch_size:
            raise ValueError(f"train_subset ({self.train_subset}) must be at least batch_size ({self.batch_size})")
        schedule(self.stages, self.epoch_scale)  # validates stages and epoch_scale

    def shared(self) -> dict:
        """What every member of a stack must have in common."""
        return {k: v for k, v in asdict(self).items() if k not in MEMBER_FIELDS}


class NonFiniteLoss(RuntimeError):
    pass


class Interrupted(RuntimeError):
    """Training stopped on request (e.g. SIGTERM from a scheduler) after saving a checkpoint."""


def resolve_step_mode(step_mode: str, device: torch.device) -> str:
    """``eager`` or ``captured`` for ``step_mode`` on ``device``. ``auto`` is captured on CUDA (measured on an
    H200: 2-12x faster per step than eager, the same losses and parameters; docs/gpu) and eager elsewhere,
    or where this torch cannot record a step that draws from its own generators."""
    if step_mode not in STEP_MODES:
        raise ValueError(f"step_mode must be one of {STEP_MODES}, got {step_mode!r}")
    if step_mode == "auto":
        return "captured" if device.type == "cuda" and graphs.supported() else "eager"
    if step_mode == "captured" and device.type != "cuda":
        raise ValueError("step_mode 'captured' records a CUDA graph and needs a CUDA device; use 'eager' (or 'auto')")
    return step_mode


def _save_atomic(obj, path: Path) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def load_checkpoint_file(path: str | os.PathLike) -> dict:
    try:
        return torch.load(path, map_location="cpu", weights_only=False)
    except Exception as e:
        raise RuntimeError(
            f"{path}: cannot be loaded ({type(e).__name__}: {e}). If it is a checkpoint of an interrupted "
            f"run, delete it to start that run afresh."
        ) from e


def initial_model(cfg: TrainConfig, output_bias: torch.Tensor) -> IWAEModel:
    """One member's starting point: the initial weights of ``cfg.init``, or the model it continues."""
    model = IWAEModel(ModelConfig(cfg.n_layers))
    if cfg.init_from:
        model.load_state_dict(load_checkpoint_file(cfg.init_from)["state_dict"])
        return model
    return initialise(model, cfg.init, output_bias, seed=cfg.seed)


class _EpochLog:
    """A progress bar on a terminal; otherwise one plain line per epoch (logs stay readable)."""

    def __init__(self, enabled: bool, total: int, start: int, desc: str):
        self.bar = None
        self.enabled, self.total, self.desc = enabled, total, desc
        if enabled and sys.stderr.isatty():
            try:
                from tqdm import tqdm

                self.bar = tqdm(total=total, initial=start, desc=desc, unit="epoch", mininterval=2.0)
            except ImportError:  # tqdm is optional: a bare GPU node may lack it
                pass

    def epoch(self, epoch: int, stage: int, lr: float, losses: list[float], seconds: float, steps: int) -> None:
        loss = " ".join(f"{v:.2f}" for v in losses)
        if self.bar is not None:
            self.bar.update(1)
            self.bar.set_postfix_str(f"stage {stage}, loss {loss}, {steps / max(seconds, 1e-9):.0f} it/s")
        elif self.enabled:
            print(f"{self.desc}: epoch {epoch + 1}/{self.total} (stage {stage}, lr {lr:g}): train loss {loss} "
                  f"in {seconds:.1f} s ({1e3 * seconds / steps:.2f} ms/step)", flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def train(
    cfgs: TrainConfig | list[TrainConfig],
    data_dir: str | os.PathLike,
    outs: str | os.PathLike | list,
    device: torch.device,
    progress: bool = True,
    should_stop=lambda: False,
    checkpoint_minutes: float = 10.0,
    step_mode: str = "auto",
    check_every: int = 500,
):
    """Train the members ``cfgs`` (one or a list) as one stack; write ``model.pt`` in each of ``outs``.

    Returns each member's metadata (a dict for a single config, else a list). Checkpoints are written
    at the end of every stage, every ``checkpoint_minutes`` (0: after every step) and when
    ``should_stop()`` (polled after every step) returns True, after which ``Interrupted`` is raised
    (the CLI wires it to SIGTERM/SIGINT). A non-finite loss, read from a device buffer every
    ``check_every`` steps and at each epoch's end, stops the run with its epoch and step.
    step_mode: ``eager``, ``captured`` (CUDA only): the whole step recorded once as a CUDA graph
    and replayed, or ``auto`` (the default): captured on CUDA, eager elsewhere (see ``resolve_step_mode``).
    """
    single = isinstance(cfgs, TrainConfig)
    cfgs, outs = ([cfgs], [outs]) if single else (list(cfgs), list(outs))
    if len(cfgs) != len(outs) or not cfgs:
        raise ValueError(f"{len(cfgs)} members but {len(outs)} output folders")
    for c in cfgs[1:]:
        if c.shared() != cfgs[0].shared():
            diff = {k: (v, c.shared()[k]) for k, v in cfgs[0].shared().items() if c.shared()[k] != v}
            raise ValueError(f"members of one stack must share everything but {MEMBER_FIELDS}; they differ in {diff}")
    step_mode = resolve_step_mode(step_mode, device)
    cfg0, n_members = cfgs[0], len(cfgs)
    outs = [Path(o) for o in outs]
    for o in outs:
        o.mkdir(parents=True, exist_ok=True)

    # data
    splits, manifest = data_mod.load(cfg0.dataset, data_dir)
    train_x = splits.train[: cfg0.train_subset] if cfg0.train_subset else splits.train
    train_x = train_x.to(device)  # [N, 784] grey levels, kept on the device; binarised there every step

    # members: their starting points, then the stack (model, optimiser, generators, step) and the schedule
    continued = [load_checkpoint_file(c.init_from).get("training_state") if c.init_from and c.continue_state
                 else None for c in cfgs]
    for c, state in zip(cfgs, continued):
        if c.init_from and c.continue_state and (state is None or state["optimizer"]["variant"] != c.optimizer):
            raise RuntimeError(f"{c.init_from} holds no {c.optimizer!r} optimiser state to continue; continue it "
                               f"with continue_state=False (a fresh optimiser), or retrain it with this version")
    if any(continued) and not all(continued):
        raise ValueError("either every member of a stack continues a model's training state or none does")
    output_bias = output_bias_from_data(train_x)
    plan = epoch_plan(schedule(cfg0.stages, cfg0.epoch_scale))  # [(stage, lr)] per epoch
    st = Stack(cfgs, [initial_model(c, output_bias) for c in cfgs], train_x, lr=plan[0][1])
    n_batches = st.n_batches

    # resume: one checkpoint for the whole stack, in the first member's folder (written atomically)
    start_epoch, start_step, elapsed = 0, 0, 0.0
    histories = [[] for _ in cfgs]
    ckpt_path = outs[0] / CHECKPOINT
    if ckpt_path.exists():
        ck = _read_checkpoint(ckpt_path, cfgs, outs)
        for m, state in enumerate(ck["members"]):
            st.load_member(m, state)
        st.load_optimiser([state["optimizer"] for state in ck["members"]])
        start_epoch, start_step, elapsed = ck["epoch"], ck["step"], ck["elapsed"]
        histories = [state["history"] for state in ck["members"]]
        print(f"resuming {ckpt_path} ({n_members} member(s)) from epoch {start_epoch}, step {start_step} "
              f"({elapsed:.0f} s trained)", flush=True)
    elif all(continued):  # Table 2 as the authors ran it: the first run's optimiser and random state
        for m, state in enumerate(continued):
            st.gens[m].set_state(state["generator"])
        st.load_optimiser([state["optimizer"] for state in continued])

    def save_checkpoint(epoch: int, step_index: int) -> None:
        members = [dict(st.member_state(m), train_config=asdict(c), history=histories[m]) for m, c in enumerate(cfgs)]
        _save_atomic(dict(format=CHECKPOINT_FORMAT, stack=[str(o) for o in outs], members=members, epoch=epoch,
                          step=step_index, elapsed=elapsed), ckpt_path)

    def check_finite(epoch: int, upto: int) -> None:
        bad = torch.nonzero(~torch.isfinite(st.partial[:, :upto]))
        if len(bad):
            m, s = (int(v) for v in bad[0])
            raise NonFiniteLoss(
                f"non-finite loss at epoch {epoch} (stage {plan[epoch][0]}, lr {plan[epoch][1]:g}), step {s} "
                f"of {n_batches}, member {outs[m]} ({cfgs[m].objective}, seed {cfgs[m].seed}). The last good "
                f"checkpoint is kept" + (f" in {ckpt_path}" if ckpt_path.exists() else
                                         " (none yet: the run had not saved one)")
                + ". Fix: check the data and the config (learning rate, K); a re-run resumes from that checkpoint."
            )

    def member_meta(m: int, epochs_done: int) -> dict:
        """What a member's model.pt (or stage snapshot) records about its training."""
        return dict(
            train_config=asdict(cfgs[m]),
            model_config=asdict(st.model.config),
            data=manifest,
            history=list(histories[m]),
            epochs=epochs_done,
            updates=epochs_done * n_batches,
            train_seconds=elapsed,  # wall-clock of the whole stack
            train_seconds_per_member=elapsed / n_members,
            seconds_per_epoch=elapsed / max(len(histories[m]), 1),
            stack_size=n_members,
            stack=[dict(objective=c.objective, seed=c.seed) for c in cfgs],
            device=device_name(device),
            peak_memory_mb=peak_memory_mb(device),
            code_version=code_version(),
            torch_version=torch.__version__,
            train_path=f"stacked {step_mode}",
        )

    if step_mode == "captured":
        st.capture()  # a few eager steps, then the recorded step replayed

    log = _EpochLog(progress, len(plan), start_epoch,
                    f"{cfg0.dataset} L{cfg0.n_layers} k={cfg0.k} " + ",".join(f"{c.objective}/s{c.seed}" for c in cfgs))
    last_ckpt = time.monotonic()
    for epoch in range(start_epoch, len(plan)):
        stage, lr = plan[epoch]
        st.start_epoch(lr, start_step)
        t0, epoch_time = time.perf_counter(), 0.0  # training time only: checkpoints are not counted
        for s in range(start_step, n_batches):
            st.advance()
            if (s + 1) % check_every == 0:
                check_finite(epoch, s + 1)
            stop = should_stop()
            if (stop or time.monotonic() - last_ckpt > checkpoint_minutes * 60) and s + 1 < n_batches:
                check_finite(epoch, s + 1)
                dt = time.perf_counter() - t0
                epoch_time, elapsed = epoch_time + dt, elapsed + dt
                save_checkpoint(epoch, s + 1)
                t0 = time.perf_counter()
                last_ckpt = time.monotonic()
                if stop:
                    raise Interrupted(f"stopped at epoch {epoch}, step {s + 1}; checkpoint saved in {ckpt_path}")
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        check_finite(epoch, n_batches)
        dt = time.perf_counter() - t0
        epoch_time, elapsed = epoch_time + dt, elapsed + dt
        means = (st.partial.sum(1) / (n_batches * cfg0.batch_size)).tolist()
        for m in range(n_members):
            histories[m].append(dict(epoch=epoch, stage=stage, lr=lr, train_objective=means[m], seconds=epoch_time))
        log.epoch(epoch, stage, lr, [-v for v in means], epoch_time, n_batches)
        st.partial.zero_()
        start_step = 0
        stage_ends = epoch + 1 == len(plan) or plan[epoch + 1][0] != stage
        if stage_ends:  # a snapshot of every member, loadable as a model (learning curves, the SNR experiment)
            for m, o in enumerate(outs):
                (o / "stages").mkdir(exist_ok=True)
                _save_atomic(dict(state_dict=st.member_state_dict(m), model_config=asdict(st.model.config),
                                  metadata=member_meta(m, epoch + 1)), o / "stages" / f"stage{stage}.pt")
        if epoch + 1 < len(plan) and (stage_ends or time.monotonic() - last_ckpt > checkpoint_minutes * 60
                                      or should_stop()):
            save_checkpoint(epoch + 1, 0)
            last_ckpt = time.monotonic()
            if should_stop():
                raise Interrupted(f"stopped after epoch {epoch}; checkpoint saved in {ckpt_path}")
    log.close()

    metas = []
    for m, o in enumerate(outs):
        meta = member_meta(m, len(plan))
        training_state = dict(optimizer=st.optimiser_state(m), generator=st.gens[m].get_state(), epochs=len(plan))
        _save_atomic(dict(state_dict=st.member_state_dict(m), model_config=asdict(st.model.config), metadata=meta,
                          training_state=training_state), o / "model.pt")
        (o / "train.json").write_text(json.dumps(meta, indent=2))
        metas.append(meta)
    ckpt_path.unlink(missing_ok=True)
    return metas[0] if single else metas


def _read_checkpoint(path: Path, cfgs: list[TrainConfig], outs: list[Path]) -> dict:
    ck = load_checkpoint_file(path)
    found = ck.get("format", 1)
    if found != CHECKPOINT_FORMAT:
        raise RuntimeError(
            f"{path} was written by an {'older' if found < CHECKPOINT_FORMAT else 'newer'} iwae version "
            f"(checkpoint format {found}; this version reads {CHECKPOINT_FORMAT}); delete it to start this "
            f"run afresh, or resume it with the version that wrote it."
        )
    if ck["stack"] != [str(o) for o in outs] or [m["train_config"] for m in ck["members"]] != [asdict(c) for c in cfgs]:
        raise RuntimeError(
            f"{path} belongs to a different configuration or stack (members {ck['stack']}: "
            f"{[m['train_config'] for m in ck['members']]}); run the command that wrote it to resume it, or move it "
            f"away or delete it to start this run afresh."
        )
    return ck


def load_model(path: str | os.PathLike, device: str | torch.device = "cpu") -> IWAEModel:
    """The trained model stored at ``path`` (a ``model.pt`` written by ``iwae train``), in eval mode."""
    blob = load_checkpoint_file(path)
    if "model_config" not in blob:
        raise RuntimeError(f"{path} is not a finished model (no model_config); it may be a training checkpoint.")
    model = IWAEModel(ModelConfig(**blob["model_config"]))
    model.load_state_dict(blob["state_dict"])
    model.metadata = blob.get("metadata", {})
    return model.to(device).eval()


def config_fields() -> list[str]:
    return [f.name for f in fields(TrainConfig)]
