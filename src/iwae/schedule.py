"""The paper's optimisation schedule (section 5 of Burda et al. 2016) and budget scaling.

Stage i = 0..7 runs 3**i epochs at learning rate 1e-4 * round(10 ** (1 - i / 7), 1):
1e-3, 7.2e-4, 5.2e-4, 3.7e-4, 2.7e-4, 1.9e-4, 1.4e-4, 1e-4 -- 3280 epochs in all.
"""

from __future__ import annotations

from dataclasses import dataclass

N_STAGES = 8


def stage_lr(i: int) -> float:
    if not 0 <= i < N_STAGES:
        raise ValueError(f"stage {i} is outside the paper's schedule 0..{N_STAGES - 1}")
    return 1e-4 * round(10 ** (1 - i / 7), 1)


def stage_epochs(i: int, epoch_scale: float = 1.0) -> int:
    """Epochs of stage i: 3**i times ``epoch_scale``, rounded, at least 1."""
    return max(1, round(3**i * epoch_scale))


@dataclass(frozen=True)
class Stage:
    index: int
    epochs: int
    lr: float


def schedule(stages: list[int] | None = None, epoch_scale: float = 1.0) -> list[Stage]:
    """The stages to run, in order. ``stages=None`` means all eight (the paper's budget)."""
    stages = list(range(N_STAGES)) if stages is None else list(stages)
    if sorted(set(stages)) != stages:
        raise ValueError(f"stages must be increasing and distinct, got {stages}")
    if epoch_scale <= 0:
        raise ValueError(f"epoch_scale must be > 0, got {epoch_scale}")
    return [Stage(i, stage_epochs(i, epoch_scale), stage_lr(i)) for i in stages]


def epoch_plan(stages: list[Stage]) -> list[tuple[int, float]]:
    """One ``(stage_index, lr)`` entry per epoch, in order."""
    return [(s.index, s.lr) for s in stages for _ in range(s.epochs)]
