"""Where a long run stands: each model's stage, epoch and speed (from its checkpoint, snapshots or model file), and
the projected finish of its training and evaluation (``status``; ``make cpu-paper-status``)."""

from __future__ import annotations

import functools
import os
import statistics
import time
from dataclasses import dataclass
from pathlib import Path

from iwae.longrun import CODE, PIPELINE_LOG, processes_in

REPO = Path(__file__).resolve().parents[2]  # the checkout (its config, where a run has no pinned code)


@dataclass
class Model:
    """One model of the run: where it stands and how fast it trains."""
    folder: Path
    name: str
    epochs_done: int
    epochs_total: int | None
    stage: int | None
    seconds_per_epoch: float | None
    trained_seconds: float
    state: str  # finished | training | waiting
    stages: list[int] | None = None  # the schedule's stages
    job: str | None = None  # the models of one stack train in one job (its checkpoint's path); None: a job of its own
    budget: str | None = None  # the budget it trains under, as its training config records it

    @property
    def remaining_s(self) -> float | None:
        if self.state == "finished":
            return 0.0
        if self.seconds_per_epoch is None or self.epochs_total is None:
            return None
        return (self.epochs_total - self.epochs_done) * self.seconds_per_epoch


def read_or_none(path: Path) -> dict | None:
    """The file ``checkpoint.read`` reads at ``path``, or None where it cannot. A file unchanged since its last read
    (the same size and time) is not read again: ``status`` reads a stack's checkpoint for each of its members."""
    try:
        st = Path(path).stat()
    except OSError:
        return None
    return _read(str(path), st.st_size, st.st_mtime_ns)


@functools.lru_cache(maxsize=4)
def _read(path: str, size: int, mtime_ns: int) -> dict | None:
    from iwae import checkpoint

    try:
        return checkpoint.read(path)
    except RuntimeError:
        return None


def stacks(results: Path) -> dict[str, Path]:
    """The models that train in a stack with others: {name: the stack's checkpoint}. A stack's checkpoint lies in
    its first member's folder and names every member's folder (results/<dataset>/L<layers>/<objective>-k<K>/seed<S>)."""
    from iwae import checkpoint

    out, root = {}, Path(results).resolve()
    for path in sorted(Path(results).rglob("checkpoint.pt")):
        blob = read_or_none(path)
        if blob and len(blob.get("stack") or []) > 1:  # where its members are: the checkpoint's one reading of that
            out.update({Path(os.path.relpath(f.resolve(), root)).as_posix(): path
                        for f in checkpoint.member_folders(path, blob)})
    return out


def latest(folder: Path, stack: Path | None = None) -> tuple[Path | None, list, dict | None]:
    """The furthest record of the model in run folder ``folder``: its model.pt, else its checkpoint (or ``stack``,
    the checkpoint of the stack it trains in), else its latest stage snapshot; -> (that file, the training
    history, the training config), (None, [], None) for none."""
    from iwae import checkpoint

    for src in [folder / "model.pt", stack or folder / "checkpoint.pt",
                *reversed(checkpoint.snapshots(folder))]:
        blob = read_or_none(src) if src.exists() else None
        if blob is None:
            continue
        if "members" in blob:  # a checkpoint: this model's member of it
            me = folder.resolve()
            folders = [f.resolve() for f in checkpoint.member_folders(src, blob)] if blob.get("stack") else []
            if folders and me not in folders:
                continue  # a stack without this model: not its record
            member = blob["members"][folders.index(me) if folders else 0]
        else:
            member = blob["metadata"]
        return src, member["history"], member["train_config"]
    return None, [], None


def model_status(folder: Path, results: Path, stack: Path | None = None) -> Model:
    """Where the model in run folder ``folder`` stands, from its checkpoint (or ``stack``: the checkpoint of the
    stack it trains in), snapshots or model file."""
    from iwae.schedule import epoch_plan, schedule

    name = str(folder.relative_to(results))
    src, history, cfg = latest(folder, stack)
    state = "waiting" if src is None else "finished" if src.name == "model.pt" else "training"
    total = len(epoch_plan(schedule(cfg["stages"], cfg["epoch_scale"]))) if cfg else None
    recent = [h["seconds"] for h in history[-50:] if h.get("seconds")]
    return Model(folder=folder, name=name, epochs_done=len(history), epochs_total=total,
                 stage=history[-1]["stage"] if history else None,
                 seconds_per_epoch=statistics.median(recent) if recent else None,
                 trained_seconds=sum(h.get("seconds", 0.0) for h in history), state=state,
                 stages=list(cfg["stages"]) if cfg else None,
                 job=str(stack) if stack and state != "finished" else None, budget=cfg.get("budget") if cfg else None)


def run_folders(workdir: Path) -> list[Path]:
    """The Table 1 run folders of a run (results/<dataset>/L<layers>/<objective>-k<K>/seed<S>)."""
    return sorted(p for p in (Path(workdir) / "results").glob("*/L[12]/*-k*/seed*") if p.is_dir())


def project(models: list[Model], cores: int, expected: list[str] | None = None,
            rates: dict[str, float] | None = None) -> tuple[float | None, list[str]]:
    """The seconds until every model has trained, on ``cores`` one-thread jobs: each unfinished model's remaining
    epochs at its own speed, or, before it starts, at the speed of a started model of the same layers and K (or
    ``rates[name]``, seconds per epoch), shared out longest first onto the cores. ``expected``: the run's models
    (names), to count those with no folder yet. -> (seconds or None when a speed is unknown, notes)."""
    by_cell: dict[str, list[float]] = {}
    for m in models:
        if m.seconds_per_epoch:
            by_cell.setdefault(_cell(m.name), []).append(m.seconds_per_epoch)
    known = {m.name: m for m in models}
    notes, loads, jobs = [], [], set()
    total_epochs = next((m.epochs_total for m in models if m.epochs_total), None)
    for name in list(dict.fromkeys([*(expected or []), *known])):
        m = known.get(name)
        if m is not None and (m.state == "finished" or m.job in jobs):
            continue  # finished, or in a stack whose job is counted already (its members train together)
        if m is not None and m.job:
            jobs.add(m.job)
        rate = (m.seconds_per_epoch if m and m.seconds_per_epoch else None) or (
            statistics.median(by_cell[_cell(name)]) if _cell(name) in by_cell else None) or (rates or {}).get(name)
        todo = (m.epochs_total - m.epochs_done) if m and m.epochs_total else total_epochs
        if rate is None or todo is None:
            notes.append(f"{name}: speed unknown until " + ("its first epoch ends" if m and m.state == "training"
                                                             else "it starts"))
            continue
        loads.append(rate * todo)
    if notes:
        return None, notes
    lanes = [0.0] * max(cores, 1)
    for load in sorted(loads, reverse=True):
        lanes[lanes.index(min(lanes))] += load
    return max(lanes), notes


def bench_rates(csv: Path, names: list[str], mode: str = "eager", batches: int = 2980) -> dict[str, float]:
    """Seconds per epoch of one model alone on one thread (``benchmarks/bench_cpu_paper.py``'s CSV), for models not
    yet started: {name: seconds}, for the names whose layers and K the CSV measured."""
    import pandas as pd

    if not Path(csv).exists():
        return {}
    t = pd.read_csv(csv)
    t = t[(t.setting == "alone") & (t["mode"] == mode) & (t.threads == 1) & t.cell.str.endswith(" one")]
    ms = {row.cell.split(" one")[0]: row.ms_per_step for row in t.itertuples()}  # "L1 K=5": ms
    out = {}
    for name in names:
        _, layers, run, _ = name.split("/")
        key = f"{layers} K={run.rsplit('-k', 1)[1]}"
        if key in ms:
            out[name] = ms[key] * batches / 1e3
    return out


def _trains(cmd: str, name: str) -> bool:
    """Whether the command line ``cmd`` trains model ``name``: a job of its own names its folder, a stack's job
    the folders' pattern (results/<dataset>/L<layers>/{objective}-k<K>/seed{seed}) and its objectives and seeds."""
    if f"results/{name}" in cmd:
        return True
    dataset, layers, run, seed = name.split("/")
    objective, k = run.rsplit("-k", 1)
    words = cmd.split()

    def listed(flag: str, value: str) -> bool:
        return flag in words[:-1] and value in words[words.index(flag) + 1].split(",")

    return (f"results/{dataset}/{layers}/{{objective}}-k{k}/seed{{seed}}" in cmd
            and listed("--objectives", objective) and listed("--seeds", seed.removeprefix("seed")))


def _cell(name: str) -> str:
    """'mnist/L1/iwae-k5/seed0' -> 'mnist/L1/k5' (models of one cell train at the same speed)."""
    dataset, layers, run, _ = name.split("/")
    return f"{dataset}/{layers}/k{run.rsplit('-k', 1)[1]}"


def _hms(seconds: float) -> str:
    h, rem = divmod(int(seconds), 3600)
    return f"{h} h {rem // 60:02d} min"


def run_config(workdir: Path, repo: Path) -> tuple[dict, Path]:
    """The run's config (config/config.yaml of its pinned code, or of the checkout ``repo``) and its folder."""
    import yaml

    folder = (Path(workdir) / CODE if (Path(workdir) / CODE).is_dir() else Path(repo)) / "config"
    return yaml.safe_load((folder / "config.yaml").read_text()), folder


def expected_models(workdir: Path, budget: str, repo: Path) -> list[str]:
    """The models (names as in ``status``) a run of ``budget`` trains, from the run's pinned config (or the
    checkout's)."""
    from iwae import pipeline

    config, folder = run_config(workdir, repo)
    if budget not in config["budgets"]:
        raise SystemExit(f"budget {budget!r} is not one of {sorted(config['budgets'])} in {folder}")
    config["budget"] = budget
    return [r.removeprefix("results/") for r in pipeline.runs(config)]


def evaluation_load(workdir: Path, models: list[str], stages: list[int],
                    stage_snapshots: bool = True) -> tuple[float, int, str, float]:
    """(seconds, jobs, basis, longest: the longest job's seconds) of the evaluations still to run: each stage
    snapshot but the last (where the budget evaluates them: ``stage_snapshots``), and each final model, at the
    median measured time of the run's stage evaluations (a final evaluation, on more test images, at its own
    measured median once one has run, else 5x a stage's: 10,000 + 1,000 against 2,000 + 1,000 images at K=5000,
    rounded up)."""
    from iwae import checkpoint

    root = Path(workdir) / "benchmarks" / "rules" / "evaluate"

    def seconds(files):
        out = []
        for f in files:
            try:
                out.append(float(f.read_text().splitlines()[1].split("\t")[0]))
            except (OSError, IndexError, ValueError):
                pass
        return out

    stage_s = seconds(p for folder in sorted({f.parent for f in root.rglob("stage*.tsv")})
                      for p in checkpoint.stage_files(folder, ".tsv"))
    final_s = seconds(p for p in root.rglob("*.tsv") if not p.name.startswith("stage"))
    if not (stage_s if stage_snapshots else final_s):
        return 0.0, 0, "evaluations not counted (none has run yet)", 0.0
    per_stage = statistics.median(stage_s) if stage_s else 0.0
    per_final = statistics.median(final_s) if final_s else 5 * per_stage
    todo_stage = todo_final = 0
    for name in models:
        folder = Path(workdir) / "results" / name
        if stage_snapshots:
            todo_stage += sum(not (folder / "stages" / f"stage{s}.metrics.json").exists() for s in stages[:-1])
        todo_final += not (folder / "metrics.json").exists()
    basis = (f"{todo_stage} stage and {todo_final} final evaluations at {per_stage / 60:.0f} and "
             f"{per_final / 60:.0f} min each ({'measured' if final_s else 'the final ones estimated'})"
             if stage_snapshots else
             f"{todo_final} evaluation{'s' * (todo_final != 1)} at {per_final / 60:.0f} min each (measured)")
    longest = per_final if todo_final else per_stage if todo_stage else 0.0
    return todo_stage * per_stage + todo_final * per_final, todo_stage + todo_final, basis, longest


def evaluations_wall(seconds: float, longest: float, cores: int) -> float:
    """Wall-clock seconds of evaluations totalling ``seconds`` on ``cores`` one-thread jobs: the work spread over
    the cores, but never less than the longest job (one evaluation does not split across cores)."""
    return max(seconds / max(cores, 1), longest)


def status(workdir: Path, cores: int = 2, expected: list[str] | None = None, rates: dict | None = None,
           repo: Path | None = None) -> str:
    """Each model's stage, epoch and speed, what runs, and the projected finish of training and evaluation (the
    stage snapshots' evaluations counted where the run's budget, in its pinned config or ``repo``'s, has them)."""
    workdir = Path(workdir)
    results = workdir / "results"
    stacked = stacks(results)
    models = [model_status(f, results, stacked.get(str(f.relative_to(results)))) for f in run_folders(workdir)]
    named = {m.name for m in models}
    waiting = [n for n in (expected or []) if n not in named]
    lines = [f"run folder {workdir} ({time.strftime('%Y-%m-%d %H:%M')}):"]
    running = processes_in(workdir)
    lines.append(f"  pipeline: {'running' if any('snakemake' in c for _, c in running) else 'not running'}"
                 + (f" ({len(running)} process(es))" if running else "") + f"; log {workdir / PIPELINE_LOG}")
    for m in models:
        speed = f"{m.seconds_per_epoch:.1f} s/epoch" if m.seconds_per_epoch else "speed unknown"
        where = f"stage {m.stage}, " if m.stage is not None else ""
        state = m.state
        if state == "training" and not any(_trains(cmd, m.name) for _, cmd in running):
            state = "paused (its job waits for a core or for the pipeline; it resumes from its checkpoint)"
        lines.append(f"  {m.name}: {state}, {where}epoch {m.epochs_done}/{m.epochs_total or '?'}, {speed}, "
                     f"{_hms(m.trained_seconds)} trained")
    lines += [f"  {n}: waiting (not started)" for n in waiting]
    seconds, notes = project(models, cores, expected, rates)
    lines += [f"  {n}" for n in notes]
    if seconds is not None:
        stages = next((m.stages for m in models if m.stages), list(range(8)))
        budget = next((m.budget for m in models if m.budget), None)
        snapshots = (run_config(workdir, repo or REPO)[0]["budgets"].get(budget) or {}).get("eval_stages", True)
        eval_s, jobs, basis, longest = evaluation_load(workdir, [m.name for m in models] + waiting, stages,
                                                       snapshots)
        eval_wall = evaluations_wall(eval_s, longest, cores)
        total = seconds + eval_wall
        finish = time.strftime("%Y-%m-%d %H:%M", time.localtime(time.time() + total))
        lines.append(f"  projected: training {_hms(seconds)} on {cores} one-thread jobs, then evaluations "
                     f"{_hms(eval_wall)} on {cores} core{'s' * (cores != 1)} ({basis}; one job per core); "
                     f"done in {_hms(total)} of running ({finish} if it "
                     f"runs without a stop)")
    return "\n".join(lines)

