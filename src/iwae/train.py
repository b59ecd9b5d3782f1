"""Training with the paper's schedule: one loop, for one model or a stack of M models trained together.

A run trains M >= 1 *members* that share the data set, the architecture, K, the schedule and the
optimiser, and may differ in objective and seed (and, for Table 2, in the model they continue).
They are one stacked model (``iwae.stack``) with one optimiser update for all; a single model is the
M = 1 case. Each member draws everything random from its own generator seeded by its seed, in the
same order whatever M is, and its loss depends on its own parameters only, so every member ends where
training it alone would (tested; on a long run float rounding makes the two drift apart as two seeds
do: docs/family).

``Run.steps`` is the loop, top to bottom: epochs, steps, finite checks, checkpoints, stage snapshots.
It yields after every step, so that ``train_together`` can run several stacks in one process (on
CUDA each on its own stream, side by side on the GPU); ``train`` runs one. What is on disk
(checkpoints, model files) is ``iwae.checkpoint``'s. A killed run started again ends with exactly the
parameters of an uninterrupted run on the CPU.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import Callable

import torch

from iwae import checkpoint
from iwae import data as data_mod
from iwae.config import TrainConfig, check_stack
from iwae.runtime import code_version, device_name, machine_load, peak_memory_mb
from iwae.schedule import epoch_plan, schedule
from iwae.stack import build, resolve_step_mode


FIRST_CHECKPOINT_S = 60.0  # the first checkpoint of a run after at most this (then every checkpoint_minutes)


class NonFiniteLoss(RuntimeError):
    pass


class Interrupted(RuntimeError):
    """Training stopped on request (e.g. SIGTERM from a scheduler) after saving a checkpoint."""


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


class Run:
    """One stack trained with the paper's schedule: set up (data, members, resume), ``steps``, ``finish``."""

    def __init__(self, cfgs: list[TrainConfig], data_dir: str | os.PathLike, outs: list, device: torch.device,
                 step_mode: str = "auto", checkpoint_minutes: float = 10.0, check_every: int = 500,
                 progress: bool = True, together: int = 1, until_stage: int | None = None):
        check_stack(cfgs)
        if len(cfgs) != len(outs):
            raise ValueError(f"{len(cfgs)} members but {len(outs)} output folders")
        self.cfgs, self.outs, self.device = cfgs, [Path(o) for o in outs], device
        self.step_mode, self.together = resolve_step_mode(step_mode, device, cfgs[0].optimizer), together
        self.checkpoint_minutes, self.check_every = checkpoint_minutes, check_every
        self.process_members = len(cfgs)  # members trained in this process (train_together counts them all)
        cfg0 = cfgs[0]
        splits, self.manifest = data_mod.load(cfg0.dataset, data_dir)
        train_x = (splits.train[: cfg0.train_subset] if cfg0.train_subset else splits.train).to(device)
        self.plan = epoch_plan(schedule(cfg0.stages, cfg0.epoch_scale))  # [(stage, lr)] per epoch
        stages = sorted({stage for stage, _ in self.plan})
        if until_stage is not None and until_stage not in stages:
            raise ValueError(f"--until-stage {until_stage} is not one of the run's stages {stages}")
        # the epoch this process trains up to: the end of the schedule, or of stage ``until_stage`` (a pipeline
        # trains the stages as a chain of jobs, each resuming the checkpoint the one before left at its end)
        self.end = len(self.plan) if until_stage is None else 1 + self._stage_last_epoch(until_stage)
        for o in self.outs:
            o.mkdir(parents=True, exist_ok=True)
        self.ckpt = self.outs[0] / checkpoint.CHECKPOINT  # one for the whole stack, in the first member's folder
        self._start(train_x)
        if self.epoch > self.end:
            stage = self.plan[self.end - 1][0]
            raise RuntimeError(
                f"{self.ckpt} is at epoch {self.epoch}, past the end of stage {stage} (epoch {self.end}), so stage "
                f"{stage}'s snapshot cannot be written again from it (it was deleted after it was written). Restore "
                f"it from a copy, or delete the checkpoint and the stages/ folders to train the run again.")
        self._write_missing_snapshots()
        self.stack.use(self.step_mode)  # after any state is loaded: a recorded step replays on these buffers
        self.log = _EpochLog(progress, len(self.plan), self.epoch, f"{cfg0.dataset} L{cfg0.n_layers} k={cfg0.k} "
                             + ",".join(f"{c.objective}/s{c.seed}" for c in cfgs))

    def _start(self, train_x: torch.Tensor) -> None:
        """Where the run starts, the one place that decides it: its checkpoint (a resumed run); else the models its
        members continue (``init_from``: their weights, and for Table 2 their optimiser and random state); else the
        initial weights of ``init``."""
        cfgs = self.cfgs
        continued = checkpoint.continued_states(cfgs)  # read first: a bad init_from fails before the stack is built
        self.stack = build(cfgs, train_x, lr=self.plan[0][1])  # initial weights, or the init_from models' weights
        self.epoch, self.first_step, self.elapsed, self.histories = 0, 0, 0.0, [[] for _ in cfgs]
        self.epoch_time = 0.0  # the training time of the epoch under way (restored with a mid-epoch checkpoint)
        if self.ckpt.exists():
            self.epoch, self.first_step, self.elapsed, self.histories, self.epoch_time = checkpoint.restore(
                self.ckpt, self.stack, cfgs, self.outs)
            print(f"resuming {self.ckpt} ({len(cfgs)} member(s)) from epoch {self.epoch}, step {self.first_step} "
                  f"({self.elapsed:.0f} s trained)", flush=True)
            return
        done = [str(p) for c, o in zip(cfgs, self.outs) for p in checkpoint.snapshots(o)
                if checkpoint.trained_as(p, c)]  # this configuration's snapshots (another budget's are overwritten)
        if done:
            raise RuntimeError(
                f"{self.ckpt} is missing but stage snapshots of this run exist ({', '.join(done)}): starting afresh "
                f"would train them again. Restore the checkpoint from a copy if there is one (the CPU paper-budget "
                f"run keeps one in docs/paper-cpu/state); to train the run again from its start, delete those "
                f"stages/ folders first.")
        print(f"starting afresh: no checkpoint {self.ckpt} ({len(cfgs)} member(s), {len(self.plan)} epochs)",
              flush=True)
        for o in self.outs:
            checkpoint.drop_kept(o)  # an older run's kept snapshots
        if continued:
            checkpoint.continue_training(self.stack, continued)

    @property
    def finished(self) -> bool:
        """Whether the whole schedule is trained (not only up to ``until_stage``)."""
        return self.epoch == len(self.plan)

    def _stage_last_epoch(self, stage: int) -> int:
        return max(i for i, (st, _) in enumerate(self.plan) if st == stage)

    def _write_missing_snapshots(self) -> None:
        """The snapshots of every stage the checkpoint is past, where missing: put back from their kept copies (a
        scheduler removes a killed job's outputs, and Snakemake removes them again before it runs the job anew), or,
        resumed exactly at a stage's end, written from the state (its checkpoint may have been saved just before the
        kill). A snapshot that neither gives stops the run before it trains: a pipeline would otherwise find the
        output missing after all the training and remove the rest."""
        for stage in sorted({stage for stage, _ in self.plan[: self.epoch]}):
            last = self._stage_last_epoch(stage)
            if last >= self.epoch:
                continue  # the stage the checkpoint is in
            at_its_end = last == self.epoch - 1 and not self.first_step
            for m, o in enumerate(self.outs):
                path = checkpoint.snapshot(o, stage)
                if checkpoint.put_back(path, self.cfgs[m]):
                    continue
                if not at_its_end:
                    raise RuntimeError(
                        f"{path} is missing and neither its kept copy ({checkpoint.kept_copy(path)}) nor the "
                        f"checkpoint {self.ckpt} (epoch {self.epoch}, past the end of stage {stage}) can give it back. "
                        f"Restore it from a copy, or delete the checkpoint and the stages/ folders to train the run "
                        f"again.")
                checkpoint.write_model(path, self.stack, m, self.metadata(m), final=False)
                checkpoint.keep(path)

    def missing_snapshots(self) -> list[Path]:
        """The stage snapshots of a finished schedule that are not on disk (none, unless something removed them)."""
        stages = sorted({stage for stage, _ in self.plan})
        return [p for o in self.outs for p in (checkpoint.snapshot(o, st) for st in stages) if not p.exists()]

    def steps(self, should_stop=lambda: False):
        """The loop: every remaining step up to ``self.end`` (the schedule's end, or ``until_stage``'s), yielding
        after each. ``should_stop()`` is polled after every step; when it says so, a checkpoint is written and
        ``Interrupted`` raised."""
        st, n = self.stack, self.stack.n_batches
        clock = dict(last=time.monotonic(), every=min(FIRST_CHECKPOINT_S, self.checkpoint_minutes * 60))

        def save_due(stop: bool) -> bool:
            """A stop asked for, or the time for a checkpoint (the first one early: a kill soon after the start
            loses little; then every checkpoint_minutes)."""
            return stop or time.monotonic() - clock["last"] > clock["every"]

        def saved() -> None:
            clock.update(last=time.monotonic(), every=self.checkpoint_minutes * 60)

        for epoch in range(self.epoch, self.end):
            stage, lr = self.plan[epoch]
            st.start_epoch(lr, self.first_step)
            # a resumed epoch goes on from its time before the stop; saving is not counted (other stacks' steps in
            # the same process are: train_together)
            self.clock, self.epoch_time = time.perf_counter(), (self.epoch_time if self.first_step else 0.0)
            for s in range(self.first_step, n):
                st.step()
                yield
                if (s + 1) % self.check_every == 0:
                    self._check_finite(epoch, s + 1)
                stop = should_stop()
                if s + 1 < n and save_due(stop):
                    self._check_finite(epoch, s + 1)
                    self._tick()
                    self._save(epoch, s + 1, stop)
                    saved()
            if self.device.type == "cuda":
                torch.cuda.synchronize(self.device)
            self._check_finite(epoch, n)
            self._tick()
            means = (st.partial.sum(1) / (n * self.cfgs[0].batch_size)).tolist()
            load = machine_load()  # at the epoch's end: whether the machine was shared while it trained
            for m, history in enumerate(self.histories):
                history.append(dict(epoch=epoch, stage=stage, lr=lr, train_objective=means[m], seconds=self.epoch_time,
                                    **(load or {})))
            self.log.epoch(epoch, stage, lr, [-v for v in means], self.epoch_time, n)
            st.partial.zero_()
            self.first_step = 0
            stage_ends = epoch + 1 == len(self.plan) or self.plan[epoch + 1][0] != stage
            if stage_ends:  # a snapshot of every member, loadable as a model (learning curves, the SNR experiment)
                for m, o in enumerate(self.outs):
                    path = checkpoint.snapshot(o, stage)
                    checkpoint.write_model(path, st, m, self.metadata(m), final=False)
                    checkpoint.keep(path)
            stop = should_stop()
            self.epoch = epoch + 1
            if epoch + 1 < len(self.plan) and (stage_ends or save_due(stop)):
                self._save(epoch + 1, 0, stop)
                saved()

    def _tick(self) -> None:
        """Add the training time since the last tick to the epoch's and the run's."""
        now = time.perf_counter()
        self.epoch_time += now - self.clock
        self.elapsed += now - self.clock
        self.clock = now

    def _save(self, epoch: int, step: int, stop: bool) -> None:
        """A checkpoint to resume at (epoch, step); its writing is not counted as training time."""
        checkpoint.save(self.ckpt, self.stack, self.cfgs, self.outs, self.histories, epoch, step, self.elapsed,
                        self.epoch_time if step else 0.0)
        self.clock = time.perf_counter()
        if stop:
            raise Interrupted(f"stopped at epoch {epoch}, step {step}; checkpoint saved in {self.ckpt}")

    def save_end(self) -> None:
        """A checkpoint of the finished schedule (resuming from it only writes the models)."""
        self._save(len(self.plan), 0, stop=False)

    def _check_finite(self, epoch: int, upto: int) -> None:
        bad = torch.nonzero(~torch.isfinite(self.stack.partial[:, :upto]))
        if len(bad):
            m, s = (int(v) for v in bad[0])
            stage, lr = self.plan[epoch]
            raise NonFiniteLoss(
                f"non-finite loss at epoch {epoch} (stage {stage}, lr {lr:g}), step {s} of {self.stack.n_batches}, "
                f"member {self.outs[m]} ({self.cfgs[m].objective}, seed {self.cfgs[m].seed}). The last good "
                f"checkpoint is kept" + (f" in {self.ckpt}" if self.ckpt.exists() else
                                         " (none yet: the run had not saved one)")
                + ". Fix: check the data and the config (learning rate, K); a re-run resumes from that checkpoint.")

    def metadata(self, m: int) -> dict:
        """What member m's model file records about its training so far."""
        epochs, n = len(self.histories[m]), len(self.cfgs)
        return dict(
            train_config=asdict(self.cfgs[m]), model_config=asdict(self.stack.model.config), data=self.manifest,
            history=list(self.histories[m]), epochs=epochs, updates=epochs * self.stack.n_batches,
            # wall-clock of the stack's training; with train_together, of the process it shares with other stacks
            train_seconds=self.elapsed, train_seconds_per_member=self.elapsed / self.process_members,
            seconds_per_epoch=self.elapsed / max(epochs, 1),
            stack_size=n, stack=[dict(objective=c.objective, seed=c.seed) for c in self.cfgs],
            trained_together_with=self.together - 1,  # other stacks in the same process (train_together)
            device=device_name(self.device), peak_memory_mb=peak_memory_mb(self.device), code_version=code_version(),
            torch_version=torch.__version__, train_path=f"stacked {self.step_mode}",
        )

    def finish(self, keep_checkpoint: bool = False) -> list[dict]:
        """Every member's model.pt and train.json; the checkpoint goes (unless ``keep_checkpoint``). -> the
        members' metadata."""
        self.log.close()
        metas = []
        for m, o in enumerate(self.outs):
            meta = self.metadata(m)
            checkpoint.write_model(o / "model.pt", self.stack, m, meta, final=True)
            (o / "train.json").write_text(json.dumps(meta, indent=2))
            metas.append(meta)
        if not keep_checkpoint:
            self.ckpt.unlink(missing_ok=True)
        return metas


def train(cfgs: TrainConfig | list[TrainConfig], data_dir: str | os.PathLike, outs: str | os.PathLike | list,
          device: torch.device, progress: bool = True, should_stop=lambda: False, checkpoint_minutes: float = 10.0,
          step_mode: str = "auto", check_every: int = 500):
    """Train the members ``cfgs`` (one or a list) as one stack; write ``model.pt`` in each of ``outs``.

    Returns each member's metadata (a dict for a single config, else a list). Checkpoints are written
    at the end of every stage, every ``checkpoint_minutes`` (0: after every step) and when
    ``should_stop()`` (polled after every step) returns True, after which ``Interrupted`` is raised
    (the CLI wires it to SIGTERM/SIGINT). A non-finite loss, read from a device buffer every
    ``check_every`` steps and at each epoch's end, stops the run with its epoch and step.
    step_mode: one of ``iwae.stack.STEP_MODES`` (``auto``: ``iwae.stack.resolve_step_mode``).
    """
    single = isinstance(cfgs, TrainConfig)
    cfgs, outs = ([cfgs], [outs]) if single else (list(cfgs), list(outs))
    run = Run(cfgs, data_dir, outs, device, step_mode, checkpoint_minutes, check_every, progress)
    metas = train_together([run], should_stop)[0]  # the CLI's path, with one stack
    return metas[0] if single else metas


def side_streams(devices: list[torch.device]) -> list:
    """One CUDA stream per stack trained together (None on the CPU), each waiting for the work queued so far on
    its device's current stream (the stacks' set-up), so that the stacks' small kernels can run side by side."""
    lanes = []
    for device in devices:
        lane = torch.cuda.Stream(device) if device.type == "cuda" else None
        if lane is not None:
            lane.wait_stream(torch.cuda.current_stream(device))
        lanes.append(lane)
    return lanes


def on(lane):
    """Run the block on ``lane`` (a stream of ``side_streams``; None: as it is)."""
    return torch.cuda.stream(lane) if lane is not None else contextlib.nullcontext()


def in_turn(stacks) -> Callable[[], None]:
    """One round of ``stacks`` taking turns, each stepping once on its own stream: what ``train_together`` does
    between its checks (the benchmarks time it)."""
    lanes = side_streams([st.device for st in stacks])

    def round_() -> None:
        for st, lane in zip(stacks, lanes):
            with on(lane):
                st.step()

    return round_


def train_together(runs: list[Run], should_stop=lambda: False) -> list[list[dict]]:
    """Several stacks in one process, taking turns step by step; on CUDA each replays on its own stream, so
    that the GPU runs their small kernels side by side. Each ends as trained alone, and writes its models and a
    checkpoint of its end as soon as it ends (a scheduler removes a failed job's outputs: a re-run resumes a
    finished stack at its end, not from its last stage). A stack that stops (a non-finite loss, or
    ``should_stop``) leaves its checkpoint and the others go on; then the errors are raised together, as a
    ``NonFiniteLoss`` if any stack had one (a re-run would not get past it), else as ``Interrupted``. Any other
    error stops all at once, every stack keeping its checkpoint. The checkpoints go when all have ended.
    -> each run's members' metadata ([] for a run that stopped at its ``until_stage``)."""
    for r in runs:  # the process's wall-clock is shared by all its members
        r.process_members = sum(len(x.cfgs) for x in runs)
    lanes = side_streams([r.device for r in runs])
    loops = {i: r.steps(should_stop) for i, r in enumerate(runs)}
    metas: list[list[dict]] = [[] for _ in runs]
    errors: dict[int, Exception] = {}
    while loops:
        for i in list(loops):
            with on(lanes[i]):
                try:
                    next(loops[i])
                except StopIteration:
                    del loops[i]
                    if runs[i].finished:
                        runs[i].save_end()
                        metas[i] = runs[i].finish(keep_checkpoint=True)
                    # else: trained up to its until_stage, whose end the checkpoint holds (the next job resumes it)
                except (Interrupted, NonFiniteLoss) as e:
                    errors[i] = e
                    del loops[i]
    if errors:
        kind = NonFiniteLoss if any(isinstance(e, NonFiniteLoss) for e in errors.values()) else Interrupted
        raise kind("; ".join(str(e) for e in errors.values()))
    for r in runs:
        if r.finished:
            if missing := r.missing_snapshots():  # never the case; if it were, the checkpoint stays to mend it
                raise RuntimeError(f"trained to the end but {', '.join(map(str, missing))} are missing; the checkpoint "
                                   f"{r.ckpt} and the kept copies stay: run the same command again.")
            r.ckpt.unlink(missing_ok=True)
            for o in r.outs:
                checkpoint.drop_kept(o)
    return metas
