"""Devices, thread counts, versions and memory: facts about where a run happened."""

from __future__ import annotations

import os
import platform
import resource
import subprocess
import sys
from pathlib import Path

import torch

GPU_LOCK_DIR_ENV = "IWAE_GPU_LOCK_DIR"
_held_gpu_locks: list = []  # open lock files: a claimed GPU stays this process's until it exits


def no_tf32() -> None:
    """Matrix products in full float32 on CUDA (no TF32): every number of the suite is float32 exactly."""
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False


def resolve_device(name: str) -> torch.device:
    """``auto`` -> CUDA when present, else CPU. ``cuda`` without a GPU is an error, not a fallback.
    On CUDA, TF32 is switched off (``no_tf32``).

    With several visible GPUs, ``auto`` and ``cuda`` take the least busy one for this process
    (``claim_gpu``), so that jobs started side by side (Snakemake with --resources gpu=N) do not all
    land on cuda:0; ``cuda:N`` is taken as given.
    """
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("device 'cuda' was asked for but no CUDA GPU is available; use --device auto or cpu")
    if device.type == "cuda" and device.index is None and torch.cuda.device_count() > 1:
        lock_dir = Path(os.environ.get(GPU_LOCK_DIR_ENV) or f"/tmp/iwae-gpu-locks-{os.getuid()}")
        device = torch.device("cuda", claim_gpu(torch.cuda.device_count(), lock_dir))
    if device.type == "cuda":
        no_tf32()
    return device


def claim_gpu(count: int, lock_dir: Path) -> int:
    """The index of the least busy of ``count`` GPUs, held by this process until it exits.

    Each holder keeps an flock on a slot file ``gpu<i>.<slot>.lock`` in ``lock_dir``; a lock a process
    holds goes when the process does, however it ends. Claims are made one at a time.
    """
    import fcntl

    def held(path: Path) -> bool:
        with open(path, "a") as f:
            try:
                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return True
            fcntl.flock(f, fcntl.LOCK_UN)
            return False

    lock_dir.mkdir(parents=True, exist_ok=True)
    with open(lock_dir / "claim.lock", "a") as guard:
        fcntl.flock(guard, fcntl.LOCK_EX)
        busy = [sum(held(p) for p in lock_dir.glob(f"gpu{i}.*.lock")) for i in range(count)]
        gpu = busy.index(min(busy))
        slot = 0
        while True:
            f = open(lock_dir / f"gpu{gpu}.{slot}.lock", "a")
            try:
                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                f.close()
                slot += 1
        _held_gpu_locks.append(f)
    return gpu


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    cpu = platform.processor() or platform.machine()
    try:  # the model name is more useful than "x86_64"
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    n = torch.get_num_threads()
    return f"CPU ({cpu}, {n} thread{'s' if n != 1 else ''})"


def machine_load() -> dict | None:
    """The machine's 1-minute load average and its cores (those this process may run on), or None where the
    system does not say: beside a job's own threads, how much else ran on the machine while it trained (a job's
    wall-clock on a shared machine is not its cost on a quiet one)."""
    try:
        load = os.getloadavg()[0]
    except (AttributeError, OSError):
        return None
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return dict(load=round(load, 2), cores=cores)


def peak_memory_mb(device: torch.device) -> float:
    """Peak GPU memory allocated by torch on CUDA; peak resident set size of the process on CPU."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    rss_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss_kb / 1024 if sys.platform != "darwin" else rss_kb / 2**20


def code_version(here: Path | None = None) -> str:
    """The package version plus the git commit (and '-dirty') when run from a checkout; for a long run's pinned
    copy of the code (``<run>/code/src/iwae``, ``iwae.longrun.pinned_code``), the commit it was copied at, from
    ``code/COMMIT``: git would name the commit of the checkout the run folder sits in, which moves on."""
    from iwae import __version__

    here = Path(here) if here is not None else Path(__file__).resolve().parent
    pinned = here.parent.parent / "COMMIT"
    if pinned.is_file():
        return f"{__version__}+{pinned.read_text().strip()} (pinned copy)"
    try:
        commit = subprocess.run(
            ["git", "describe", "--always", "--dirty", "--abbrev=12"],
            cwd=here, capture_output=True, text=True, timeout=10,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        commit = ""
    return f"{__version__}+{commit}" if commit else __version__


def set_threads(threads: int | None) -> None:
    """Use ``threads`` intra-op threads (default: the ``OMP_NUM_THREADS`` or all cores)."""
    if threads:
        torch.set_num_threads(threads)
    elif "OMP_NUM_THREADS" not in os.environ:
        torch.set_num_threads(os.cpu_count() or 1)


def tune_allocator() -> bool:
    """Keep freed memory in glibc's heap instead of returning it to the OS (Linux only).

    On CPU every step allocates and frees the same MB-sized activations; by default glibc serves
    them with mmap/munmap, so each step pays page faults. Raising the mmap and trim thresholds
    (mallopt M_MMAP_THRESHOLD, M_TRIM_THRESHOLD) to 1 GiB removes that cost. Process-wide; returns
    whether it was applied.
    """
    if not sys.platform.startswith("linux"):
        return False
    import ctypes

    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return False
    m_trim_threshold, m_mmap_threshold = -1, -3
    return bool(libc.mallopt(m_mmap_threshold, 1 << 30)) and bool(libc.mallopt(m_trim_threshold, 1 << 30))
