"""Everything a run keeps on disk: the format, atomic saves, a stack's checkpoint, the model files, and loading a model.

Files (``torch.save`` dicts, always read onto the CPU):
- ``checkpoint.pt``, in a stack's first member's folder while it trains: ``format``, ``stack`` (the member
  folders), ``epoch``, ``step``, ``elapsed`` and ``members``, each member in a single model's layout
  (``state_dict``, ``optimizer``, ``generator``, ``partial``, ``order``, ``train_config``, ``history``);
- ``model.pt`` in each member's folder: ``state_dict``, ``model_config``, ``metadata`` and ``training_state``
  (optimiser state, generator state, epochs: what Table 2 continues);
- ``stages/stage<i>.pt``: a snapshot at the end of stage i, a model file without ``training_state``;
- ``checkpoint-stages/stage<i>.pt``, beside ``stages/`` while the member trains: the snapshot's kept copy (a hard
  link where the file system allows), in a folder no pipeline declares. Snakemake removes a job's declared outputs
  when the job fails or is killed and again before it runs it anew, so the snapshots of the stages a killed
  whole-schedule job had finished would be gone when it resumes; the resumed run puts them back from these copies.

The trainer only says "save now", "resume if there is a checkpoint" and "write the models"; evaluation,
figures and the SNR experiment read models with ``load_model``, which imports no training code (the stack
passed to the save functions is used through its attributes only).
"""

from __future__ import annotations

import os
import shutil
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from iwae.model import IWAEModel, ModelConfig

if TYPE_CHECKING:
    from iwae.config import TrainConfig
    from iwae.stack import Stack

CHECKPOINT = "checkpoint.pt"
KEPT = "checkpoint-stages"  # a training member's kept copies of its stage snapshots (see the module's docstring)
# Raised whenever what a checkpoint holds changes (3: per-member files, optimiser state by parameter
# name in Theano's order with the pending gradient, one generator per member).
FORMAT = 3


def save_atomic(obj, path: Path) -> None:
    """``torch.save`` to a temporary file, then renamed: a reader never sees half a file."""
    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def read(path: str | os.PathLike) -> dict:
    """Any file of this module, onto the CPU. A RuntimeError that tells apart, each with its fix: a path that does
    not exist (or is a folder), a file that is not one ``torch.save`` wrote, and a corrupt or truncated one."""
    p = Path(path)
    if not p.exists():
        raise RuntimeError(f"{path}: no such file. Check the path: `iwae train --out RUN` writes RUN/model.pt, and the "
                           f"stage snapshots in RUN/stages/stage<i>.pt.")
    if p.is_dir():
        raise RuntimeError(f"{path} is a folder; give the model file in it (e.g. {p / 'model.pt'}).")
    with open(p, "rb") as f:
        head = f.read(4)
    if len(head) < 4:
        raise RuntimeError(f"{path} is empty or truncated ({p.stat().st_size} bytes). Restore it from a copy, or delete "
                           f"it and train its run again.")
    if not (head.startswith(b"PK") or head.startswith(b"\x80")):  # torch.save's zip, or its older pickle format
        raise RuntimeError(f"{path} is not a model file: torch.save did not write it (it starts with {head!r}). "
                           f"Give a model.pt (or stages/stage<i>.pt) written by `iwae train`.")
    try:
        return torch.load(p, map_location="cpu", weights_only=False)
    except Exception as e:
        fix = ("It is the checkpoint of an interrupted run: restore it from a copy if there is one; else delete it and "
               "the run's stages/ folders to train that run again from its start." if p.name == CHECKPOINT else
               "Restore it from a copy, or delete it and train its run again.")
        raise RuntimeError(f"{path} is corrupt or truncated ({type(e).__name__}: {e}). {fix}") from e


def load_model(path: str | os.PathLike, device: str | torch.device = "cpu") -> IWAEModel:
    """The trained model stored at ``path`` (a ``model.pt`` or stage snapshot of ``iwae train``), in eval mode;
    ``model.metadata`` holds its training config, protocol and history."""
    blob = read(path)
    if not isinstance(blob, dict) or "model_config" not in blob:
        what = (f"the checkpoint of a run in training (epoch {blob.get('epoch')}): evaluate its stage snapshots "
                f"(stages/stage<i>.pt), or write its models as they are now with `iwae peek {path} --out "
                f"<model.pt, one per member>`, or wait for its model.pt" if isinstance(blob, dict) and "members" in blob
                else f"a {type(blob).__name__} without a model's config: give a model.pt written by `iwae train`")
        raise RuntimeError(f"{path} is not a model file: it holds {what}.")
    model = IWAEModel(ModelConfig(**blob["model_config"]))
    model.load_state_dict(blob["state_dict"])
    model.metadata = blob.get("metadata", {})
    return model.to(device).eval()


# ----------------------------------------------------------------------------- a member <-> its stack
def member_state_dict(model: IWAEModel, m: int) -> dict[str, torch.Tensor]:
    """The state dict of member m of a stack, in the layout of one model (what ``model.pt`` holds)."""
    return {name: t[m].detach().cpu().clone() for name, t in model.state_dict().items()}


def _member_tensors(st: Stack, flat: torch.Tensor, m: int) -> dict[str, torch.Tensor]:
    return {name: t[m].detach().cpu().clone() for name, t in st.params.views(flat).items()}


def optimiser_state(st: Stack, m: int) -> dict:
    """Member m's optimiser state, each tensor in its model's layout."""
    s = st.opt.state()
    return dict(variant=s["variant"], t=s["t"], m=_member_tensors(st, s["m"], m), v=_member_tensors(st, s["v"], m),
                pending=None if s["pending"] is None else _member_tensors(st, s["pending"], m))


def _settled(state: dict, betas) -> dict:
    """An optimiser state with its pending moment update applied (see FlatAdam.settle)."""
    if state["pending"] is None:
        return state
    b1, b2 = betas
    g = state["pending"]
    return dict(state, m={n: b1 * t + (1 - b1) * g[n] for n, t in state["m"].items()},
                v={n: b2 * t + (1 - b2) * g[n].square() for n, t in state["v"].items()}, pending=None)


@torch.no_grad()
def _load_optimiser(st: Stack, states: list[dict]) -> None:
    """The members' optimiser states (each in a model's layout) as the stack's."""
    ts = {s["t"] for s in states}
    if len(ts) != 1:
        raise RuntimeError(f"the members' optimiser states are at different steps {sorted(ts)}; train them "
                           f"in separate runs")
    if len({s["pending"] is None for s in states}) > 1:
        states = [_settled(s, st.opt.betas) for s in states]  # all in the settled form
    flat = {key: torch.zeros_like(st.params.flat) for key in ("m", "v", "pending")}
    for m, s in enumerate(states):
        for key in ("m", "v") + (("pending",) if s["pending"] is not None else ()):
            for name, t in st.params.views(flat[key]).items():
                t[m].copy_(s[key][name])
    st.opt.load(dict(variant=states[0]["variant"], t=ts.pop(), m=flat["m"], v=flat["v"],
                     pending=flat["pending"] if states[0]["pending"] is not None else None))


# ----------------------------------------------------------------------------- a stack's checkpoint
def save(path: Path, st: Stack, cfgs: list[TrainConfig], outs: list[Path], histories: list[list], epoch: int,
         step: int, elapsed: float, epoch_seconds: float = 0.0) -> None:
    """The whole stack's training state, resumable with ``restore`` (every member in a single model's layout);
    ``epoch_seconds``: the training time of the unfinished epoch so far (``step`` > 0), so that the epoch's
    recorded seconds after a resume are the whole epoch's."""
    members = [dict(state_dict=member_state_dict(st.model, m), optimizer=optimiser_state(st, m),
                    generator=st.gens[m].get_state(), partial=st.partial[m].cpu(), order=st.order[m].cpu(),
                    train_config=asdict(c), history=histories[m]) for m, c in enumerate(cfgs)]
    save_atomic(dict(format=FORMAT, stack=[str(o) for o in outs], members=members, epoch=epoch, step=step,
                     elapsed=elapsed, epoch_seconds=epoch_seconds), path)


@torch.no_grad()
def restore(path: Path, st: Stack, cfgs: list[TrainConfig], outs: list[Path]) -> tuple[int, int, float, list, float]:
    """Load the checkpoint at ``path`` into ``st``; -> (epoch, step, elapsed seconds, histories, the unfinished
    epoch's seconds so far: 0 in checkpoints written before they were kept). Refuses, with the fix, a checkpoint
    of another format, configuration or stack."""
    ck = read(path)
    found = ck.get("format", 1)
    if found != FORMAT:
        raise RuntimeError(
            f"{path} was written by an {'older' if found < FORMAT else 'newer'} iwae version "
            f"(checkpoint format {found}; this version reads {FORMAT}); delete it to start this "
            f"run afresh, or resume it with the version that wrote it."
        )
    if ck["stack"] != [str(o) for o in outs] or [m["train_config"] for m in ck["members"]] != [asdict(c) for c in cfgs]:
        raise RuntimeError(
            f"{path} belongs to a different configuration or stack (members {ck['stack']}: "
            f"{[m['train_config'] for m in ck['members']]}); run the command that wrote it to resume it, or move it "
            f"away or delete it to start this run afresh."
        )
    for m, state in enumerate(ck["members"]):
        for name, t in st.model.state_dict().items():
            t[m].copy_(state["state_dict"][name])
        st.gens[m].set_state(state["generator"])
        st.partial[m].copy_(state["partial"])
        st.order[m].copy_(state["order"])
    _load_optimiser(st, [state["optimizer"] for state in ck["members"]])
    return (ck["epoch"], ck["step"], ck["elapsed"], [state["history"] for state in ck["members"]],
            ck.get("epoch_seconds", 0.0))


def continued_states(cfgs: list[TrainConfig]) -> list[dict] | None:
    """Table 2 as the authors ran it: the training state (optimiser, generator) of each member's ``init_from``
    model, or None where no member continues one. Refuses, with the fix, a model that holds no such state and a
    stack in which only some members continue."""
    states = [read(c.init_from).get("training_state") if c.init_from and c.continue_state else None for c in cfgs]
    for c, state in zip(cfgs, states):
        if c.init_from and c.continue_state and (state is None or state["optimizer"]["variant"] != c.optimizer):
            raise RuntimeError(f"{c.init_from} holds no {c.optimizer!r} optimiser state to continue; continue it "
                               f"with a fresh optimiser (`iwae train --fresh-optimizer`; continue_state: false in a config), "
                               f"or retrain it with this version")
    if any(states) and not all(states):
        raise ValueError("either every member of a stack continues a model's training state or none does")
    return states if all(states) else None


def continue_training(st: Stack, states: list[dict]) -> None:
    """Start ``st`` from the training states of ``continued_states`` (optimiser and random state)."""
    for m, state in enumerate(states):
        st.gens[m].set_state(state["generator"])
    _load_optimiser(st, [state["optimizer"] for state in states])


def trained_as(path: Path, cfg: TrainConfig) -> bool:
    """Whether the model file at ``path`` was written by a run of configuration ``cfg`` (False if unreadable)."""
    try:
        return read(path).get("metadata", {}).get("train_config") == asdict(cfg)
    except RuntimeError:
        return False


# ----------------------------------------------------------------------------- kept copies of stage snapshots
def snapshot(member: Path, stage: int) -> Path:
    """The snapshot of ``member`` (its output folder) at the end of ``stage``: ``<member>/stages/stage<i>.pt``."""
    return Path(member) / "stages" / f"stage{stage}.pt"


def stage_files(folder: Path, suffix: str) -> list[Path]:
    """``folder``'s files ``stage<i><suffix>`` (any number of digits: a schedule of 10 stages or more), in the order
    of their stages."""
    def stage(p: Path) -> str:
        return p.name[len("stage"):-len(suffix)]

    found = Path(folder).glob(f"stage[0-9]*{suffix}")
    return sorted((p for p in found if stage(p).isdigit()), key=lambda p: int(stage(p)))


def snapshots(member: Path) -> list[Path]:
    """The stage snapshots ``member`` has written so far, in the order of their stages."""
    return stage_files(Path(member) / "stages", ".pt")


def kept_copy(snapshot: Path) -> Path:
    """Where the kept copy of the stage snapshot ``<member>/stages/stage<i>.pt`` lives while its member trains."""
    return snapshot.parent.parent / KEPT / snapshot.name


def _link_or_copy(src: Path, dst: Path) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    dst.unlink(missing_ok=True)
    try:
        os.link(src, dst)  # no second copy of the bytes
    except OSError:
        shutil.copy2(src, dst)


def keep(snapshot: Path) -> None:
    """Keep a copy of a just-written stage snapshot where no scheduler removes it."""
    _link_or_copy(snapshot, kept_copy(snapshot))


def put_back(snapshot: Path, cfg: TrainConfig) -> bool:
    """A missing stage snapshot put back from its kept copy, if that copy was written by configuration ``cfg``.
    -> whether the snapshot is there now."""
    if snapshot.exists():
        return True
    kept = kept_copy(snapshot)
    if kept.exists() and trained_as(kept, cfg):
        _link_or_copy(kept, snapshot)
        return True
    return False


def drop_kept(member: Path) -> None:
    """A member's kept copies, once it has finished training (or before it starts afresh: an older run's)."""
    shutil.rmtree(Path(member) / KEPT, ignore_errors=True)


# ----------------------------------------------------------------------------- a run in training, as it is now
def member_folders(path: Path, ck: dict) -> list[Path]:
    """The member folders of the stack whose checkpoint is at ``path``: the checkpoint lies in the first member's
    folder; another member is where the stack names it, an absolute folder as it is if it exists, else relative to
    the first member's (wherever the run was moved, whatever folder the caller runs in)."""
    path = Path(path)
    first = Path(ck["stack"][0])
    return [path.parent if m == 0 else Path(o) if Path(o).is_absolute() and Path(o).is_dir()
            else Path(os.path.normpath(path.parent / os.path.relpath(o, first)))  # not where the caller runs
            for m, o in enumerate(ck["stack"])]


def _stage_of(train_config: dict, epoch: int) -> int:
    """The stage the schedule of ``train_config`` trains epoch ``epoch`` (0-based) in (the last one past its end)."""
    from iwae.schedule import epoch_plan, schedule

    plan = epoch_plan(schedule(train_config["stages"], train_config["epoch_scale"]))
    return plan[min(epoch, len(plan) - 1)][0]


def models_so_far(path: str | os.PathLike) -> list[dict]:
    """The models of a run in training as its checkpoint at ``path`` holds them: one model file's content per
    member (``write_model``'s layout, without the training state), so that a long stage can be evaluated before it
    ends. Their metadata is the member's latest stage snapshot's (data, device, code) with the training so far
    (history, epochs, updates, seconds) and ``in_training``: the checkpoint's epoch and step and the stage that
    epoch is in (a model between stage ends: its epochs are the finished ones, the step the minibatches of the next
    one). Refuses, with the fix, a file that is no checkpoint and a member without a stage snapshot yet."""
    ck = read(path)
    if not isinstance(ck, dict) or "members" not in ck:
        raise RuntimeError(f"{path} is not the checkpoint of a run in training; a model file (model.pt or "
                           f"stages/stage<i>.pt) is read by `iwae evaluate` as it is.")
    found = ck.get("format", 1)
    if found != FORMAT:
        raise RuntimeError(f"{path} was written in checkpoint format {found}; this version reads {FORMAT}: use the "
                           f"version that wrote it.")
    blobs = []
    for folder, state in zip(member_folders(path, ck), ck["members"]):
        done = snapshots(folder)
        if not done:
            raise RuntimeError(f"{folder} has no stage snapshot yet (stages/stage<i>.pt), whose record of the data "
                               f"and device the model file takes: wait for its first stage's end (1 epoch).")
        latest = read(done[-1])
        base = latest["metadata"]
        history = list(state["history"])
        epochs = len(history)
        per_epoch = base["updates"] // max(base["epochs"], 1)  # minibatches per epoch
        share = base["train_seconds_per_member"] / base["train_seconds"] if base["train_seconds"] else 1.0
        metadata = dict(base, train_config=state["train_config"], history=history, epochs=epochs,
                        updates=epochs * per_epoch + ck["step"], train_seconds=ck["elapsed"],
                        train_seconds_per_member=ck["elapsed"] * share,
                        seconds_per_epoch=ck["elapsed"] / max(epochs, 1),
                        in_training=dict(checkpoint=str(path), epoch=ck["epoch"], step=ck["step"],
                                         stage=_stage_of(state["train_config"], ck["epoch"])))
        blobs.append(dict(state_dict=state["state_dict"], model_config=latest["model_config"], metadata=metadata))
    return blobs


# ----------------------------------------------------------------------------- model files
def write_model(path: Path, st: Stack, m: int, metadata: dict, final: bool) -> None:
    """Member m as a model file: ``model.pt`` (``final``: with its training state, for Table 2) or a stage snapshot."""
    blob = dict(state_dict=member_state_dict(st.model, m), model_config=asdict(st.model.config), metadata=metadata)
    if final:
        blob["training_state"] = dict(optimizer=optimiser_state(st, m), generator=st.gens[m].get_state(),
                                      epochs=metadata["epochs"])
    path.parent.mkdir(parents=True, exist_ok=True)
    save_atomic(blob, path)
