"""The paper budget's wall-clock projected from measured step times: the one place for its jobs and arithmetic.

The paper's jobs, as the pipeline runs them: 12 Table 1 groups (MNIST and Omniglot x 1 and 2 stochastic
layers x K = 1, 5, 50), each one stack of its objectives x seeds trained for the paper's 3,280 epochs,
and Table 2's two continuations (MNIST, 1 layer, 3^7 = 2,187 more epochs, all seeds in one stack), each
after the group whose model it continues. Every model is evaluated once (K=5000, the whole test set).

``project`` turns a step time per job (and optionally evaluation seconds per job) into hours: one job after
another, or all at once on one GPU sharing it with a measured throughput gain (processor sharing: while P
jobs run, each advances at gain(P) / P of its speed alone). The report (from a run's measured steps),
benchmarks/gpu_check.py and benchmarks/gpu_projection.py all call it. A projection from measured parts,
not a measured paper run.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from iwae.schedule import epoch_plan, schedule

UPDATES_PER_EPOCH = {"mnist": 59_600 // 20, "omniglot": (24_345 - 1_345) // 20}
TABLE2_EPOCHS = 3**7


@dataclass(frozen=True)
class Job:
    name: str
    dataset: str
    layers: int
    k: int
    members: int  # models in the job's stack
    updates: int
    after: str | None = None  # the job whose models this one continues (Table 2)


def paper_updates(dataset: str, table2: bool = False) -> int:
    """Updates of one paper-budget job: 3,280 epochs of Table 1, or Table 2's 2,187 more."""
    return UPDATES_PER_EPOCH[dataset] * (TABLE2_EPOCHS if table2 else len(epoch_plan(schedule())))


def paper_jobs(seeds: int = 1, objectives: int = 2) -> list[Job]:
    """The paper budget's 14 training jobs for ``seeds`` seeds of ``objectives`` objectives (VAE and IWAE)."""
    jobs = [Job(f"{d} L{layers} K={k}", d, layers, k, objectives * seeds, paper_updates(d))
            for d in ("mnist", "omniglot") for layers in (1, 2) for k in (1, 5, 50)]
    t2 = paper_updates("mnist", table2=True)
    jobs += [Job("Table 2: VAE K=1 then IWAE K=50", "mnist", 1, 50, seeds, t2, after="mnist L1 K=1"),
             Job("Table 2: IWAE K=50 then VAE K=1", "mnist", 1, 1, seeds, t2, after="mnist L1 K=50")]
    return jobs


def timed_as(measured, members: int) -> int | None:
    """The stack size whose measured step stands for a stack of ``members``: the smallest measured size of at
    least ``members`` (a larger stack is no faster per step), else the largest measured; None if none is."""
    sizes = sorted(set(measured))
    return min([m for m in sizes if m >= members] or sizes[-1:] or [None])


def gain_curve(points: dict[int, float]) -> Callable[[int], float]:
    """Throughput gain of P jobs at once, interpolated between measured P (1.0 at P = 1), flat beyond the last."""
    known = {1: 1.0, **points}
    xs = sorted(known)

    def gain(p: int) -> float:
        if p >= xs[-1]:
            return known[xs[-1]]
        for lo, hi in zip(xs, xs[1:]):
            if lo <= p <= hi:
                return known[lo] + (known[hi] - known[lo]) * (p - lo) / (hi - lo)
        return 1.0

    return gain


def _shared(hours: dict[str, float], after: dict[str, str | None], gain) -> tuple[float, dict[str, float]]:
    """Wall-clock until every job is done when all that can run share the GPU; each job's finishing time."""
    left, done, now = dict(hours), {}, 0.0
    while left:
        active = [n for n in left if after[n] is None or after[n] in done]
        rate = gain(len(active)) / len(active)
        dt = min(left[n] for n in active) / rate
        now += dt
        for n in active:
            left[n] -= dt * rate
        for n in [n for n in active if left[n] <= 1e-12]:
            done[n] = now
            del left[n]
    return now, done


def project(jobs: list[Job], step_ms: Callable[[Job], float | None], eval_s: Callable[[Job], float] | None = None,
            gain: Callable[[int], float] | None = None) -> dict:
    """Hours of ``jobs`` from the measured ``step_ms(job)`` (ms per update of the job's whole stack; None: not
    measured) and ``eval_s(job)`` (seconds to evaluate the job's models; None: evaluation left out).

    -> dict(rows: one per job (hours alone, or None), train_hours: the measured jobs one after another,
    shared_hours: all at once with ``gain`` (None without it), eval_hours, total_hours (train + eval, one after
    another), measured / jobs counts, missing: the jobs without a step time)."""
    rows, hours = [], {}
    for job in jobs:
        ms = step_ms(job)
        h = None if ms is None else ms * job.updates / 3.6e6
        rows.append(dict(job=job.name, members=job.members, updates=job.updates, stack_ms_per_update=ms, hours=h))
        if h is not None:
            hours[job.name] = h
    evaluation = sum(eval_s(j) for j in jobs if j.name in hours) / 3600 if eval_s else 0.0
    shared = None
    if gain is not None and hours:
        after = {j.name: (j.after if j.after in hours else None) for j in jobs if j.name in hours}
        shared, _ = _shared(hours, after, gain)
    train_hours = sum(hours.values())
    return dict(rows=rows, train_hours=train_hours, shared_hours=shared, eval_hours=evaluation,
                total_hours=train_hours + evaluation, measured=len(hours), jobs=len(jobs),
                missing=[j.name for j in jobs if j.name not in hours])
