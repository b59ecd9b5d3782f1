"""A pipeline run that outlives a sitting: started or resumed in the background by one command, its progress and
projected finish, a lock left by a killed Snakemake removed safely, and its state kept in a folder to commit, so
that another machine resumes it where it stopped.

A run lives in a folder of its own (Snakemake's ``--directory``: results/, logs/, data/, .snakemake/ in it), so
that it never shares outputs with other runs of the working tree. Commands (``python -m iwae.longrun COMMAND``;
``make cpu-paper``, ``make cpu-paper-status``, ``make cpu-paper-stop``, ``make cpu-paper-save``):

- ``start``: the pipeline in the background (the same command resumes it: finished jobs are kept, a stopped
  training job resumes its checkpoint), or, when it runs already, its status. The run's code is pinned at its
  first start (a copy in the run folder, ``pinned_code``): work on the checkout beside it changes nothing it runs;
- ``pin``: the code pinned now (a chain of runs, started one after another, runs the code of the chain's start);
- ``status``: each model's stage and epoch, its speed, and the projected finish;
- ``stop``: SIGTERM to the pipeline: its training jobs checkpoint and exit;
- ``unlock``: remove the lock of a killed Snakemake, only when no Snakemake or job runs in the folder;
- ``save``: the run's state (stage snapshots, their metrics, the latest checkpoints, the final models without
  their optimiser state, logs) into a folder to commit, with the learning curve so far;
- ``restore``: that state back into a run folder that lacks it (a new machine), with the files' times in the
  order Snakemake needs to see the finished jobs as finished, and the run's code pinned from the commit the state
  records (``pin_commit``), not from the checkout as it is now;
- ``peek``: the models still in training, as they are now, evaluated on all the test images (one thread, beside
  the run) into ``--out``, and every evaluation there (and in ``--also``) in the order of its updates beside the
  paper's final numbers (``--out``/progress.md), with the run's finished models evaluated on all the test images;
- ``progress``: that progress.md again without peeking (the finished models' final evaluations added, say).
"""

from __future__ import annotations

import argparse
import io
import os
import shutil
import signal
import subprocess
import sys
import tarfile
import time
from pathlib import Path

PID_FILE = ".pipeline.pid"


PIPELINE_LOG = "logs/pipeline.log"


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
    """The pid the last start wrote, if that process still runs and is a Snakemake (a pid the system gave to
    another process since is not ours: the stale file goes)."""
    path = Path(workdir) / PID_FILE
    try:
        pid = int(path.read_text().strip())
        os.kill(pid, 0)
        cmd = Path(f"/proc/{pid}/cmdline").read_bytes() if Path("/proc").is_dir() else b"snakemake"
    except (OSError, ValueError):
        path.unlink(missing_ok=True)
        return None
    if b"snakemake" not in cmd:
        path.unlink(missing_ok=True)
        return None
    return pid


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


def ended_ok(log: Path) -> int:
    """How the last pipeline written into ``log`` (a pipeline started by another ``start``, whose exit status
    this one cannot read) ended: 0 when Snakemake finished every step or had nothing to do, else 1."""
    text = Path(log).read_text(errors="replace") if Path(log).exists() else ""
    last = text.rsplit("\n=== ", 1)[-1]
    return 0 if ("(100%) done" in last or "Nothing to be done" in last) and "Exiting because" not in last else 1


def start(workdir: Path, snakemake_args: list[str], repo: Path, wait: bool = False) -> int:
    """The pipeline in ``workdir`` in the background, unless one runs there; -> the Snakemake pid, or with ``wait``
    its exit status once it ends (one that ran already is waited for, and its log says how it ended: ``ended_ok``)."""
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    running = processes_in(workdir)
    if any("snakemake" in cmd for _, cmd in running):
        pid = next(p for p, cmd in running if "snakemake" in cmd)
        print(f"the pipeline runs already in {workdir} (pid {pid}); its log: {workdir / PIPELINE_LOG}")
        if wait:
            while _alive(pid):
                time.sleep(10)
            rc = ended_ok(workdir / PIPELINE_LOG)
            print(f"the pipeline in {workdir} ended " + ("well" if rc == 0 else f"with an error; see {workdir / PIPELINE_LOG}"))
            return rc
        return pid
    if running:  # jobs of a Snakemake that died: let them checkpoint and end before their jobs start again
        print(f"jobs of a stopped pipeline still run in {workdir} (pids {[p for p, _ in running]}): stopping them "
              f"(they checkpoint first)")
        _terminate([p for p, _ in running])
        left = [p for p, _ in running if _alive(p)]
        if left:
            raise SystemExit(f"jobs still run in {workdir} after SIGTERM (pids {left}); nothing started, so that no two "
                             f"trainers write one checkpoint. Wait for them to end, or end them (kill {left[0]}), then "
                             f"run the same command again.")
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
    if wait:
        rc = proc.wait()
        print(f"the pipeline in {workdir} ended with exit status {rc}" + ("" if rc == 0 else f"; see {log}"))
        return rc
    return proc.pid


CODE = "code"


CODE_FILES = ("Snakefile", "workflow", "config", "paper", "profiles", "src")


def _install_code(workdir: Path, fill, commit: str) -> Path:
    """The run's code folder made by ``fill(folder)`` in a temporary folder, with its commit in COMMIT, then moved
    into place in one step (an interrupted pin leaves no half-made code)."""
    code, tmp = Path(workdir) / CODE, Path(workdir) / (CODE + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    fill(tmp)
    (tmp / "COMMIT").write_text(commit + "\n")
    os.replace(tmp, code)
    return code.resolve()


def pinned_code(workdir: Path, repo: Path) -> Path:
    """The code a long run runs: a copy of the checkout's workflow and package in the run folder, made at its first
    start and kept, so that work on the checkout beside the run changes nothing the run does (its commit is in
    code/COMMIT). To run a later version: delete the folder while the run is stopped, then ``longrun pin`` (a
    ``make cpu-paper`` with a saved state would pin the state's recorded commit again, ``pin_commit``)."""
    code = Path(workdir) / CODE
    if code.is_dir():
        return code.resolve()

    def copy(tmp: Path) -> None:
        for name in CODE_FILES:
            src = Path(repo) / name
            if src.is_dir():
                shutil.copytree(src, tmp / name, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
            elif src.exists():
                shutil.copy2(src, tmp / name)

    try:
        commit = subprocess.run(["git", "-C", str(repo), "describe", "--always", "--dirty"], capture_output=True,
                                text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        commit = "unknown (not a git checkout)"
    code = _install_code(workdir, copy, commit)
    print(f"pinned the code of {repo} ({commit}) in {code}: the run uses it from now on")
    return code


def pinned_commit(workdir: Path) -> str | None:
    """The commit the run's pinned code was copied from (code/COMMIT), or None before its first start."""
    f = Path(workdir) / CODE / "COMMIT"
    return f.read_text().strip() if f.exists() else None


def pin_commit(workdir: Path, repo: Path, commit: str) -> Path:
    """The run's code pinned from ``commit`` of ``repo`` (``git archive``), not from the checkout as it is now: a run
    restored on another machine goes on with the code it started with. A commit recorded with ``-dirty`` had
    uncommitted edits; only its committed part can be pinned (said). Kept when the run folder has its code."""
    code = Path(workdir) / CODE
    if code.is_dir():
        return code.resolve()
    base = commit.removesuffix("-dirty")

    def git(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(["git", "-C", str(repo), *args], capture_output=True)

    if git("cat-file", "-e", f"{base}^{{commit}}").returncode:
        raise SystemExit(f"the run's code is commit {base} (recorded in its saved state), which the checkout {repo} "
                         f"does not have: fetch it (git fetch --all), or, to run the run on with this checkout's code "
                         f"instead, run `python -m iwae.longrun pin --workdir {workdir}` before starting it")

    def extract(tmp: Path) -> None:
        tree = git("ls-tree", "--name-only", base).stdout.decode().split()
        archive = git("archive", "--format=tar", base, "--", *[n for n in CODE_FILES if n in tree]).stdout
        with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
            tar.extractall(tmp, filter="data")

    code = _install_code(workdir, extract, commit)
    print(f"pinned the run's own code, commit {base}, from {repo} in {code}"
          + (" (recorded as -dirty: its uncommitted edits are not in the commit, and not pinned)"
             if base != commit else ""))
    return code


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


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m iwae.longrun", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("command", choices=["start", "pin", "status", "stop", "unlock", "save", "restore", "peek",
                                        "progress", "yardstick"])
    ap.add_argument("--workdir", required=True, help="the run's folder (Snakemake's --directory)")
    ap.add_argument("--state", default=None, help="save/restore: the folder of the committed state; yardstick: its "
                                                  "finished models' first evaluations too")
    ap.add_argument("--cores", type=int, default=2, help="status: one-thread jobs at a time, for the projection")
    ap.add_argument("--rates", default=None, help="status: bench_cpu_paper.py's CSV, the speed of models not yet "
                                                  "started")
    ap.add_argument("--budget", default=None, help="status: the run's budget (its models are counted before they "
                                                   "start)")
    ap.add_argument("--wait", action="store_true", help="start: wait for the pipeline to end; exit with its status "
                                                         "(a chain of runs, one after another)")
    ap.add_argument("--out", default=None, help="peek, progress: the folder for the evaluations and progress.md; "
                                                "yardstick: for the second evaluations and yardstick.md")
    ap.add_argument("--also", nargs="*", default=[], help="peek, progress: other folders of evaluations on all the "
                                                          "test images, for progress.md; yardstick: the first "
                                                          "evaluations of the models peeked in training")
    ap.add_argument("--repo", default=str(Path(__file__).resolve().parents[2]), help="the checkout with the Snakefile")
    args, rest = ap.parse_known_args(argv)
    from iwae.progress import bench_rates, expected_models, status
    import pandas as pd

    from iwae.runstate import (finished_on_all_images, peek, restore, save, saved_code, second_evaluations,
                               write_curve, write_progress)

    rest = [a for a in rest if a != "--"]
    workdir = Path(args.workdir)
    if args.command == "start":
        rc = start(workdir, rest, Path(args.repo), wait=args.wait)
        if args.wait and rc:
            sys.exit(rc)
    elif args.command == "pin":  # a chain of runs pins each run's code at the chain's start, not at the run's
        pinned_code(workdir, Path(args.repo))
    elif args.command == "status":
        expected = expected_models(workdir, args.budget, Path(args.repo)) if args.budget else None
        rates = bench_rates(Path(args.rates), expected or []) if args.rates else None
        print(status(workdir, args.cores, expected, rates, Path(args.repo)))
    elif args.command == "stop":
        stop(workdir)
    elif args.command == "unlock":
        print(unlock_if_stale(workdir))
    elif args.command in ("peek", "progress"):
        if not args.out:
            sys.exit(f"iwae.longrun {args.command}: give --out FOLDER (e.g. docs/paper-cpu/midway)")
        if args.command == "peek":
            written = peek(workdir, Path(args.out))
            print(f"peek: {len(written)} model(s) in training evaluated into {args.out}"
                  + ("" if written else " (none is in training)"))
        sources = [Path(args.out)] + [Path(a) for a in args.also] + finished_on_all_images(workdir)
        print(f"progress: {write_progress(sources, Path(args.out) / 'progress')}")
    elif args.command == "yardstick":
        from iwae.yardstick import SECOND_SEED, evaluated_with, pair_files, write

        if not args.out:
            sys.exit("iwae.longrun yardstick: give --out FOLDER (e.g. docs/paper-cpu/binarisation)")
        out = Path(args.out)
        written = second_evaluations(workdir, out, SECOND_SEED)
        print(f"yardstick: {len(written)} finished model(s) evaluated again with --seed {SECOND_SEED} into {out}")
        firsts = (finished_on_all_images(workdir) + (finished_on_all_images(Path(args.state)) if args.state else [])
                  + sorted(p for f in args.also for p in Path(f).glob("*.metrics.json")))
        seconds = list(evaluated_with(out, SECOND_SEED))
        if not seconds:
            sys.exit(f"iwae.longrun yardstick: no finished model in {workdir} and no evaluation with --seed "
                     f"{SECOND_SEED} in {out}: nothing to measure yet")
        try:
            pairs = pair_files(firsts, seconds)
        except ValueError as e:  # a second evaluation without its first: name it, keep every file
            sys.exit(f"iwae.longrun yardstick: {e}")
        print(write(pairs, out / "yardstick"))
    elif args.command in ("save", "restore"):
        if not args.state:
            sys.exit(f"iwae.longrun {args.command}: give --state FOLDER (the committed state, e.g. docs/paper-cpu/state)")
        files = save(workdir, Path(args.state)) if args.command == "save" else restore(Path(args.state), workdir)
        print(f"{args.command}: {len(files)} file(s) {'into' if args.command == 'save' else 'from'} {args.state}")
        if args.command == "restore" and (commit := saved_code(Path(args.state))):
            pin_commit(workdir, Path(args.repo), commit)  # the code the run started with, not the checkout's
        if args.command == "save":
            out = Path(args.state).parent
            floor = Path(args.repo) / "docs" / "noise-floor" / "noise_floor.csv"  # the measured floor, where committed
            floor = pd.read_csv(floor) if floor.exists() else None
            draws = out / "binarisation" / "yardstick.csv"  # the evaluation's own noise, where measured
            draws = pd.read_csv(draws) if draws.exists() else None
            print(f"the curve so far: {', '.join(write_curve(workdir, out, floor, draws)) or 'nothing evaluated yet'} "
                  f"in {out}")



if __name__ == "__main__":
    main()
