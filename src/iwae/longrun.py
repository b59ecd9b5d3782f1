"""A pipeline run that outlives a sitting: started or resumed in the background by one command, its progress and
projected finish, a lock left by a killed Snakemake removed safely, and its state kept in a folder to commit, so
that another machine resumes it where it stopped.

A run lives in a folder of its own (Snakemake's ``--directory``: results/, logs/, data/, .snakemake/ in it), so
that it never shares outputs with other runs of the working tree. Commands (``python -m iwae.longrun COMMAND``;
``make cpu-paper``, ``make cpu-paper-status``, ``make cpu-paper-stop``, ``make cpu-paper-save``):

- ``start``: the pipeline in the background (the same command resumes it: finished jobs are kept, a stopped
  training job resumes its checkpoint), or, when it runs already, its status. The run's code is pinned at its
  first start (a copy in the run folder, ``pinned_code``): work on the checkout beside it changes nothing it runs;
- ``status``: each model's stage and epoch, its speed, and the projected finish;
- ``stop``: SIGTERM to the pipeline: its training jobs checkpoint and exit;
- ``unlock``: remove the lock of a killed Snakemake, only when no Snakemake or job runs in the folder;
- ``save``: the run's state (stage snapshots, their metrics, the latest checkpoints, the final models without
  their optimiser state, logs) into a folder to commit, with the learning curve so far;
- ``restore``: that state back into a run folder that lacks it (a new machine), with the files' times in the
  order Snakemake needs to see the finished jobs as finished.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

PID_FILE = ".pipeline.pid"
PIPELINE_LOG = "logs/pipeline.log"
STATE_FILE = "state.json"


# ----------------------------------------------------------------------------- processes in a run folder
def _proc_entries():
    """(pid, cwd, command line) of every process this user can see (Linux /proc); none elsewhere."""
    proc = Path("/proc")
    if not proc.is_dir():
        return
    for entry in proc.iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cwd = os.readlink(entry / "cwd")
            cmd = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        yield int(entry.name), cwd, cmd


def _ancestors() -> set[int]:
    """This process's parents (the make or shell that runs it are not a pipeline in the folder)."""
    found, pid = set(), os.getppid()
    while pid > 1 and pid not in found:
        found.add(pid)
        try:
            pid = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            break
    return found


def processes_in(workdir: Path) -> list[tuple[int, str]]:
    """The Snakemake processes and the jobs (``iwae`` commands) running in ``workdir`` (their working folder, as
    Snakemake's jobs have): [(pid, command)]."""
    root = str(Path(workdir).resolve())
    mine = _ancestors()
    found = []
    for pid, cwd, cmd in _proc_entries():
        if cwd == root and pid not in mine and ("snakemake" in cmd or "iwae" in cmd):
            found.append((pid, cmd.strip()))
    pid = _pid_from_file(workdir)
    if pid and pid not in {p for p, _ in found}:
        found.append((pid, "snakemake (from " + PID_FILE + ")"))
    return found


def _pid_from_file(workdir: Path) -> int | None:
    try:
        pid = int((Path(workdir) / PID_FILE).read_text().strip())
        os.kill(pid, 0)
        return pid
    except (OSError, ValueError):
        return None


def locks(workdir: Path) -> list[Path]:
    """Snakemake's lock files in ``workdir`` (left behind when a Snakemake is killed)."""
    folder = Path(workdir) / ".snakemake" / "locks"
    return sorted(folder.glob("*.lock")) if folder.is_dir() else []


def unlock_if_stale(workdir: Path) -> str:
    """Remove Snakemake's locks in ``workdir`` when no Snakemake or job runs there (what ``snakemake --unlock``
    does); -> what was done, in a sentence."""
    held = locks(workdir)
    if not held:
        return "no lock"
    running = processes_in(workdir)
    if running:
        return (f"locked by a running pipeline (pids {', '.join(str(p) for p, _ in running)}): left alone; "
                f"stop it first (make cpu-paper-stop, or kill {running[0][0]})")
    for lock in held:
        lock.unlink(missing_ok=True)
    return (f"removed the lock of a Snakemake that was killed ({len(held)} lock file(s) in "
            f"{Path(workdir) / '.snakemake' / 'locks'}; no Snakemake runs there)")


def start(workdir: Path, snakemake_args: list[str], repo: Path) -> int:
    """The pipeline in ``workdir`` in the background, unless one runs there; -> the Snakemake pid."""
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    running = processes_in(workdir)
    if any("snakemake" in cmd for _, cmd in running):
        pid = next(p for p, cmd in running if "snakemake" in cmd)
        print(f"the pipeline runs already in {workdir} (pid {pid}); its log: {workdir / PIPELINE_LOG}")
        return pid
    if running:  # jobs of a Snakemake that died: let them checkpoint and end before their jobs start again
        print(f"jobs of a stopped pipeline still run in {workdir} (pids {[p for p, _ in running]}): stopping them "
              f"(they checkpoint first)")
        _terminate([p for p, _ in running])
    print(unlock_if_stale(workdir))
    code = pinned_code(workdir, repo)
    log = workdir / PIPELINE_LOG
    log.parent.mkdir(parents=True, exist_ok=True)
    # the jobs run with this Python (its environment first on PATH), whatever `python` the caller's PATH finds
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}")
    with open(log, "a") as out:
        out.write(f"\n=== {time.strftime('%Y-%m-%d %H:%M:%S')}: snakemake {' '.join(snakemake_args)}\n")
        out.flush()
        proc = subprocess.Popen([sys.executable, "-m", "snakemake", "--snakefile", str(code / "Snakefile"),
                                 "--directory", str(workdir.resolve()), *snakemake_args],
                                stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=code, env=env,
                                start_new_session=True)
    (workdir / PID_FILE).write_text(str(proc.pid))
    print(f"started the pipeline in {workdir} in the background (pid {proc.pid}); its log: {log}")
    return proc.pid


CODE = "code"
CODE_FILES = ("Snakefile", "workflow", "config", "paper", "profiles", "src")


def pinned_code(workdir: Path, repo: Path) -> Path:
    """The code a long run runs: a copy of the checkout's workflow and package in the run folder, made at its first
    start and kept, so that work on the checkout beside the run changes nothing the run does (its commit is in
    code/COMMIT). Delete the folder (while the run is stopped) to run a later version."""
    code = Path(workdir) / CODE
    if code.is_dir():
        return code.resolve()
    tmp = Path(workdir) / (CODE + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    for name in CODE_FILES:
        src = Path(repo) / name
        if src.is_dir():
            shutil.copytree(src, tmp / name, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
        else:
            shutil.copy2(src, tmp / name)
    try:
        commit = subprocess.run(["git", "-C", str(repo), "describe", "--always", "--dirty"], capture_output=True,
                                text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        commit = "unknown (not a git checkout)"
    (tmp / "COMMIT").write_text(commit + "\n")
    os.replace(tmp, code)
    print(f"pinned the code of {repo} ({commit}) in {code}: the run uses it from now on")
    return code.resolve()


def _terminate(pids: list[int], wait_s: float = 120) -> None:
    for pid in pids:
        try:
            os.kill(pid, signal.SIGTERM)
        except OSError:
            pass
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline and any(_alive(p) for p in pids):
        time.sleep(0.5)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except OSError:
        return False
    try:  # a zombie (ended, not yet reaped) counts as ended
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except OSError:
        return True


def stop(workdir: Path) -> None:
    """SIGTERM to the pipeline in ``workdir`` and its jobs (they checkpoint and exit); waits for them."""
    running = processes_in(workdir)
    if not running:
        print(f"nothing runs in {workdir}")
        return
    _terminate([p for p, _ in running])
    left = [p for p, _ in running if _alive(p)]
    print(f"stopped the pipeline in {workdir}" + (f"; still running: {left}" if left else ""))


# ----------------------------------------------------------------------------- progress and projection
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
    n_stages: int | None = None

    @property
    def remaining_s(self) -> float | None:
        if self.state == "finished":
            return 0.0
        if self.seconds_per_epoch is None or self.epochs_total is None:
            return None
        return (self.epochs_total - self.epochs_done) * self.seconds_per_epoch


def _read(path: Path) -> dict | None:
    from iwae import checkpoint

    try:
        return checkpoint.read(path)
    except RuntimeError:
        return None


def model_status(folder: Path, results: Path) -> Model:
    """Where the model in run folder ``folder`` stands, from its checkpoint, snapshots or model file."""
    from iwae.schedule import epoch_plan, schedule

    name = str(folder.relative_to(results))
    history, cfg, state = [], None, "waiting"
    sources = [folder / "model.pt", folder / "checkpoint.pt"] + sorted(
        (folder / "stages").glob("stage[0-9].pt"), reverse=True)
    for src in sources:
        if not src.exists():
            continue
        blob = _read(src)
        if blob is None:
            continue
        if "members" in blob:  # a checkpoint
            history, cfg = blob["members"][0]["history"], blob["members"][0]["train_config"]
        else:
            history, cfg = blob["metadata"]["history"], blob["metadata"]["train_config"]
        state = "finished" if src.name == "model.pt" else "training"
        break
    total = len(epoch_plan(schedule(cfg["stages"], cfg["epoch_scale"]))) if cfg else None
    recent = [h["seconds"] for h in history[-50:] if h.get("seconds")]
    return Model(folder=folder, name=name, epochs_done=len(history), epochs_total=total,
                 stage=history[-1]["stage"] if history else None,
                 seconds_per_epoch=statistics.median(recent) if recent else None,
                 trained_seconds=sum(h.get("seconds", 0.0) for h in history), state=state,
                 n_stages=len(cfg["stages"]) if cfg else None)


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
    notes, loads = [], []
    total_epochs = next((m.epochs_total for m in models if m.epochs_total), None)
    for name in list(dict.fromkeys([*(expected or []), *known])):
        m = known.get(name)
        if m is not None and m.state == "finished":
            continue
        rate = (m.seconds_per_epoch if m and m.seconds_per_epoch else None) or (
            statistics.median(by_cell[_cell(name)]) if _cell(name) in by_cell else None) or (rates or {}).get(name)
        todo = (m.epochs_total - m.epochs_done) if m and m.epochs_total else total_epochs
        if rate is None or todo is None:
            notes.append(f"{name}: speed unknown until it starts")
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


def _cell(name: str) -> str:
    """'mnist/L1/iwae-k5/seed0' -> 'mnist/L1/k5' (models of one cell train at the same speed)."""
    dataset, layers, run, _ = name.split("/")
    return f"{dataset}/{layers}/k{run.rsplit('-k', 1)[1]}"


def _hms(seconds: float) -> str:
    h, rem = divmod(int(seconds), 3600)
    return f"{h} h {rem // 60:02d} min"


def expected_models(workdir: Path, budget: str, repo: Path) -> list[str]:
    """The models (names as in ``status``) a run of ``budget`` trains, from the run's pinned config (or the
    checkout's)."""
    import yaml

    from iwae import pipeline

    folder = Path(workdir) / CODE if (Path(workdir) / CODE).is_dir() else Path(repo)
    config = yaml.safe_load((folder / "config" / "config.yaml").read_text())
    if budget not in config["budgets"]:
        raise SystemExit(f"budget {budget!r} is not one of {sorted(config['budgets'])} in {folder / 'config'}")
    config["budget"] = budget
    return [r.removeprefix("results/") for r in pipeline.runs(config)]


def evaluation_load(workdir: Path, models: list[str], stages: int) -> tuple[float, int, str]:
    """(seconds, jobs, basis) of the evaluations still to run: each stage snapshot but the last, and each final
    model, at the median measured time of the run's stage evaluations (a final evaluation, on more test images,
    at its own measured median once one has run, else 5x a stage's: 10,000 + 1,000 against 2,000 + 1,000 images
    at K=5000, rounded up)."""
    root = Path(workdir) / "benchmarks" / "rules" / "evaluate"

    def seconds(files):
        out = []
        for f in files:
            try:
                out.append(float(f.read_text().splitlines()[1].split("\t")[0]))
            except (OSError, IndexError, ValueError):
                pass
        return out

    stage_s = seconds(root.rglob("stage[0-9].tsv"))
    final_s = seconds(p for p in root.rglob("*.tsv") if not p.name.startswith("stage"))
    if not stage_s:
        return 0.0, 0, "evaluations not counted (none has run yet)"
    per_stage = statistics.median(stage_s)
    per_final = statistics.median(final_s) if final_s else 5 * per_stage
    todo_stage = todo_final = 0
    for name in models:
        folder = Path(workdir) / "results" / name
        todo_stage += sum(not (folder / "stages" / f"stage{s}.metrics.json").exists() for s in range(stages - 1))
        todo_final += not (folder / "metrics.json").exists()
    basis = (f"{todo_stage} stage and {todo_final} final evaluations at {per_stage / 60:.0f} and "
             f"{per_final / 60:.0f} min each ({'measured' if final_s else 'the final ones estimated'})")
    return todo_stage * per_stage + todo_final * per_final, todo_stage + todo_final, basis


def status(workdir: Path, cores: int = 2, expected: list[str] | None = None, rates: dict | None = None) -> str:
    """Each model's stage, epoch and speed, what runs, and the projected finish of training and evaluation."""
    workdir = Path(workdir)
    results = workdir / "results"
    models = [model_status(f, results) for f in run_folders(workdir)]
    named = {m.name for m in models}
    waiting = [n for n in (expected or []) if n not in named]
    lines = [f"run folder {workdir} ({time.strftime('%Y-%m-%d %H:%M')}):"]
    running = processes_in(workdir)
    lines.append(f"  pipeline: {'running' if any('snakemake' in c for _, c in running) else 'not running'}"
                 + (f" ({len(running)} process(es))" if running else "") + f"; log {workdir / PIPELINE_LOG}")
    for m in models:
        speed = f"{m.seconds_per_epoch:.1f} s/epoch" if m.seconds_per_epoch else "speed unknown"
        where = f"stage {m.stage}, " if m.stage is not None else ""
        lines.append(f"  {m.name}: {m.state}, {where}epoch {m.epochs_done}/{m.epochs_total or '?'}, {speed}, "
                     f"{_hms(m.trained_seconds)} trained")
    lines += [f"  {n}: waiting (not started)" for n in waiting]
    seconds, notes = project(models, cores, expected, rates)
    lines += [f"  {n}" for n in notes]
    if seconds is not None:
        stages = next((m.n_stages for m in models if m.n_stages), 8)
        eval_s, jobs, basis = evaluation_load(workdir, [m.name for m in models] + waiting, stages)
        total = seconds + eval_s / max(cores, 1)
        finish = time.strftime("%Y-%m-%d %H:%M", time.localtime(time.time() + total))
        lines.append(f"  projected: training {_hms(seconds)} on {cores} one-thread jobs, then evaluations "
                     f"{_hms(eval_s / max(cores, 1))} ({basis}); done in {_hms(total)} of running ({finish} if it "
                     f"runs without a stop)")
    return "\n".join(lines)


# ----------------------------------------------------------------------------- state to commit, and back
SAVED = ("stages/stage[0-9].pt", "stages/stage[0-9].metrics.json", "metrics.json", "train.json", "checkpoint.pt")


def save(workdir: Path, dest: Path) -> list[str]:
    """The run's state into ``dest`` (to commit): each model's stage snapshots and their metrics, its metrics and
    train.json, its latest checkpoint (while it trains), its model.pt without the optimiser state (a finished
    model: what ``iwae.load_model`` reads, a third of the size), the logs of its jobs and their benchmark files;
    ``state.json`` records each file's time (git does not keep them) for ``restore``. A checkpoint of a model
    that has finished is removed from ``dest``. -> the files written (relative to dest)."""
    from iwae import checkpoint

    workdir, dest = Path(workdir), Path(dest)
    written, times = [], {}
    for folder in run_folders(workdir):
        rel = folder.relative_to(workdir)
        files = [f for pattern in SAVED for f in folder.glob(pattern)]
        if (folder / "model.pt").exists():
            files = [f for f in files if f.name != "checkpoint.pt"]
            (dest / rel / "checkpoint.pt").unlink(missing_ok=True)
            blob = checkpoint.read(folder / "model.pt")
            blob.pop("training_state", None)
            (dest / rel).mkdir(parents=True, exist_ok=True)
            checkpoint.save_atomic(blob, dest / rel / "model.pt")
            written.append(str(rel / "model.pt"))
            times[str(rel / "model.pt")] = (folder / "model.pt").stat().st_mtime
        for f in files:
            target = dest / f.relative_to(workdir)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(f, target)
            written.append(str(f.relative_to(workdir)))
            times[str(f.relative_to(workdir))] = f.stat().st_mtime
    for extra in ("logs/train", "logs/evaluate", "benchmarks/rules/train", "benchmarks/rules/evaluate"):
        for f in sorted((workdir / extra).rglob("*")):
            if f.is_file():
                target = dest / f.relative_to(workdir)
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(f, target)
                written.append(str(f.relative_to(workdir)))
    (dest / STATE_FILE).write_text(json.dumps(dict(saved=time.strftime("%Y-%m-%d %H:%M:%S"), mtimes=times),
                                              indent=1, sort_keys=True))
    return written


def restore(src: Path, workdir: Path) -> list[str]:
    """The state ``save`` wrote in ``src`` into ``workdir``, for each file the run folder lacks (what it has is
    newer and stays), with the saved files' times: older than what was made from them, newer than the data cache
    (call after the data are fetched), so that Snakemake sees the finished jobs as finished. A checkpoint comes
    back only for a model that has no checkpoint and no model.pt; a finished model comes back without its optimiser
    state (enough to evaluate it, not to continue it as Table 2 does). -> the files restored."""
    src, workdir = Path(src), Path(workdir)
    times = json.loads((src / STATE_FILE).read_text())["mtimes"] if (src / STATE_FILE).exists() else {}
    restored = []
    for rel, mtime in sorted(times.items(), key=lambda kv: kv[1]):
        source, target = src / rel, workdir / rel
        if not source.exists() or target.exists():
            continue
        if target.name == "checkpoint.pt" and (target.parent / "model.pt").exists():
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, target)
        os.utime(target, (mtime, mtime))
        restored.append(rel)
    if restored:  # the data cache fetched on this machine is older than what was trained on it
        oldest = min(times[rel] for rel in restored)
        for manifest in workdir.glob("data/*/manifest.json"):
            if manifest.stat().st_mtime >= oldest:
                os.utime(manifest, (oldest - 3600, oldest - 3600))
    return restored


def write_curve(workdir: Path, out: Path) -> list[str]:
    """The learning curve so far into ``out``: every evaluated stage snapshot and finished model (curve.csv/md/tex,
    curve.pdf/png, on the test images every point shares: the first N of the smallest evaluation), and each model's
    training wall-clock per stage (stage_times.csv/md). -> the names written (none before the first evaluation)."""
    import pandas as pd

    from iwae import figures, records, report, tables

    workdir, out = Path(workdir), Path(out)
    folders = run_folders(workdir)
    paths = [p for f in folders for p in sorted((f / "stages").glob("stage[0-9].metrics.json"))]
    paths += [f / "metrics.json" for f in folders if (f / "metrics.json").exists()]
    written = []
    if paths:
        df = records.collect(paths)
        if df.n_test.nunique() > 1:
            df = records.collect(paths, int(df.n_test.min()))
        c = records.curve(df)
        report.write_table(c, tables.curve_shown(c), out / "curve",
                           f"Learning curve so far: test NLL after each stage, and {records.sign('IWAE', 'VAE')} "
                           f"(paired over the images; one training seed). Ours: {records.budget_note(df)}.")
        figures.learning_curve(df, out / "curve")
        written += ["curve.csv", "curve.md", "curve.tex", "curve.pdf", "curve.png"]
        (out / "beside_the_paper.md").write_text(beside_the_paper(df))
        written.append("beside_the_paper.md")
    rows = []
    for folder in folders:
        m = model_status(folder, workdir / "results")
        source = next((p for p in [folder / "model.pt", folder / "checkpoint.pt",
                                   *sorted((folder / "stages").glob("stage[0-9].pt"), reverse=True)] if p.exists()), None)
        blob = _read(source) if source else None
        if not blob:
            continue
        history = blob["members"][0]["history"] if "members" in blob else blob["metadata"]["history"]
        for stage in sorted({h["stage"] for h in history}):
            hs = [h for h in history if h["stage"] == stage]
            rows.append(dict(model=m.name, stage=stage, epochs_in_stage=len(hs), last_epoch=hs[-1]["epoch"] + 1,
                             hours=round(sum(h["seconds"] for h in hs) / 3600, 3),
                             seconds_per_epoch=round(statistics.median(h["seconds"] for h in hs), 2),
                             train_objective=round(hs[-1]["train_objective"], 3)))
    if rows:
        t = pd.DataFrame(rows)
        out.mkdir(parents=True, exist_ok=True)
        t.to_csv(out / "stage_times.csv", index=False)
        (out / "stage_times.md").write_text(
            "Training wall-clock per stage (hours of one CPU thread, saving excluded; `epochs_in_stage` below the "
            "stage's 3^i while it trains; train_objective: the last epoch's mean bound on the training images)\n\n"
            + t.to_markdown(index=False) + "\n")
        written += ["stage_times.csv", "stage_times.md"]
    return written


def beside_the_paper(df) -> str:
    """Each model's test NLL (active units) after every evaluated stage, one row per model, beside the paper's
    final number (reference data) and its gap to it."""
    from iwae import records

    ref = records.paper_reference("table1")
    epochs = sorted(df.epochs.unique())
    lines = [f"Test NLL in nats (active units) after each stage so far, {records.budget_note(df)}; 'paper': Burda et al. "
             f"2016, Table 1, after 3,280 epochs on all 10,000 test images (reference data); gap: ours at the latest "
             f"stage minus the paper's (a gap while the schedule runs is not the final one).", "",
             "| model | " + " | ".join(f"{e:,} ep." for e in epochs) + " | paper (3,280 ep.) | gap |",
             "|---" * (len(epochs) + 3) + "|"]
    for (dataset, layers, obj, k), g in df.groupby(["dataset", "n_layers", "objective", "k"], sort=False):
        by = {int(r.epochs): f"{r.nll:.2f} ({r.active_units})" for r in g.itertuples()}
        paper = ref[(ref.dataset == dataset) & (ref.n_layers == layers) & (ref.k == k) & (ref.objective == obj)]
        p = f"{paper.nll.iloc[0]:.2f} ({paper.active_units.iloc[0]})" if len(paper) else ""
        last = g.sort_values("epochs").iloc[-1]
        gap = f"{last.nll - paper.nll.iloc[0]:+.2f}" if len(paper) else ""
        lines.append(f"| {dataset.upper()} {layers}L {records.label(obj)} K={k} | "
                     + " | ".join(by.get(int(e), "") for e in epochs) + f" | {p} | {gap} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m iwae.longrun", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("command", choices=["start", "status", "stop", "unlock", "save", "restore"])
    ap.add_argument("--workdir", required=True, help="the run's folder (Snakemake's --directory)")
    ap.add_argument("--state", default=None, help="save/restore: the folder of the committed state")
    ap.add_argument("--cores", type=int, default=2, help="status: one-thread jobs at a time, for the projection")
    ap.add_argument("--rates", default=None, help="status: bench_cpu_paper.py's CSV, the speed of models not yet "
                                                  "started")
    ap.add_argument("--budget", default=None, help="status: the run's budget (its models are counted before they "
                                                   "start)")
    ap.add_argument("--repo", default=str(Path(__file__).resolve().parents[2]), help="the checkout with the Snakefile")
    args, rest = ap.parse_known_args(argv)
    rest = [a for a in rest if a != "--"]
    workdir = Path(args.workdir)
    if args.command == "start":
        start(workdir, rest, Path(args.repo))
    elif args.command == "status":
        expected = expected_models(workdir, args.budget, Path(args.repo)) if args.budget else None
        rates = bench_rates(Path(args.rates), expected or []) if args.rates else None
        print(status(workdir, args.cores, expected, rates))
    elif args.command == "stop":
        stop(workdir)
    elif args.command == "unlock":
        print(unlock_if_stale(workdir))
    elif args.command in ("save", "restore"):
        if not args.state:
            sys.exit(f"iwae.longrun {args.command}: give --state FOLDER (the committed state, e.g. docs/paper-cpu/state)")
        files = save(workdir, Path(args.state)) if args.command == "save" else restore(Path(args.state), workdir)
        print(f"{args.command}: {len(files)} file(s) {'into' if args.command == 'save' else 'from'} {args.state}")
        if args.command == "save":
            out = Path(args.state).parent
            print(f"the curve so far: {', '.join(write_curve(workdir, out)) or 'nothing evaluated yet'} in {out}")


if __name__ == "__main__":
    main()
