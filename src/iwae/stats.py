"""Paired statistics: is a difference between two models real at this budget, once training noise is counted?

Every evaluation binarises the same test images from the same seed and saves one log-likelihood per image,
so two models' estimates pair up image by image. The unit of replication is the training seed:

- with S >= 2 seeds (matched by seed), each seed's paired mean difference over the same images is one
  observation and the interval is Student's t over the S seeds (S - 1 degrees of freedom). It counts the
  run-to-run noise of training (and the test images' sampling noise, which is inside each seed's mean);
- with one seed, the interval is over the test images only: it measures the test set's sampling noise, not
  training's, so no verdict is drawn from it (``verdict`` says "one seed").

tests/test_stats.py checks both against simulations with a known answer.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import stats as sps

LEVEL = 0.95


def mean_ci(values, level: float = LEVEL) -> tuple[float, float, float]:
    """(mean, low, high): Student's t interval of the mean of ``values`` (NaN bounds for fewer than two)."""
    v = np.asarray(values, dtype=float)
    m = float(v.mean())
    if len(v) < 2:
        return m, math.nan, math.nan
    half = float(sps.t.ppf(0.5 + level / 2, len(v) - 1) * v.std(ddof=1) / math.sqrt(len(v)))
    return m, m - half, m + half


def paired_difference(a: list[np.ndarray], b: list[np.ndarray], level: float = LEVEL) -> dict:
    """Mean of a - b with its interval; ``a[s]``, ``b[s]``: per-image values of seed s on the same images.

    -> dict(diff, low, high, over: "seeds" (S >= 2: the interval over the seeds' paired means) or "images"
    (one seed: over the images), n: seeds or images, seed_sd: the sd of the seeds' paired means (NaN for one
    seed), per_seed: the seeds' paired means)."""
    if len(a) != len(b) or not a:
        raise ValueError(f"paired_difference needs the same seeds on both sides, got {len(a)} and {len(b)}")
    for x, y in zip(a, b):
        if len(x) != len(y):
            raise ValueError(f"paired values need the same test images: {len(x)} against {len(y)} images")
    per_seed = [float(np.mean(np.asarray(x) - np.asarray(y))) for x, y in zip(a, b)]
    if len(a) == 1:
        mean, low, high = mean_ci(np.asarray(a[0]) - np.asarray(b[0]), level)
        return dict(diff=mean, low=low, high=high, over="images", n=len(a[0]), seed_sd=math.nan, per_seed=per_seed)
    mean, low, high = mean_ci(per_seed, level)
    return dict(diff=mean, low=low, high=high, over="seeds", n=len(a), seed_sd=float(np.std(per_seed, ddof=1)),
                per_seed=per_seed)


def sd_interval(sd: float, n: int, level: float = LEVEL) -> tuple[float, float]:
    """The ``level`` interval of a standard deviation ``sd`` estimated from ``n`` values (chi-square with n - 1
    degrees of freedom, for normal values): a yardstick measured with few seeds carries this much uncertainty
    (three seeds: 0.52 to 6.3 times the estimate)."""
    if n < 2 or not np.isfinite(sd):
        return math.nan, math.nan
    df = n - 1
    return (sd * math.sqrt(df / sps.chi2.ppf(0.5 + level / 2, df)), sd * math.sqrt(df / sps.chi2.ppf(0.5 - level / 2, df)))


def evaluation_noise(first: np.ndarray, second: np.ndarray, level: float = LEVEL) -> dict:
    """How much one evaluation's mean over N images moves with its random draws (binarisation, samples), from one
    model evaluated twice on the same images with other draws: the per-image differences have twice one
    evaluation's per-image variance. -> dict(diff: second - first, sd_one: the sd of one evaluation's mean about
    the mean over draws, one: its ``level`` half-width, two: the half-width of a gap between two evaluations)."""
    d = np.asarray(second, dtype=float) - np.asarray(first, dtype=float)
    sd_one = float(np.std(d, ddof=1) / np.sqrt(2 * len(d)))
    z = float(sps.norm.ppf(0.5 + level / 2))
    return dict(diff=float(d.mean()), sd_one=sd_one, one=z * sd_one, two=z * np.sqrt(2) * sd_one)


def verdict(d: dict | None) -> str:
    """From a paired difference: 'below' (a seed-level interval below 0), 'above', 'unresolved' (it contains 0),
    or 'one seed' (an interval over the images of one training seed: no verdict either way)."""
    if d is None:
        return "unresolved"
    if d["over"] != "seeds":
        return "one seed"
    if d["high"] < 0:
        return "below"
    if d["low"] > 0:
        return "above"
    return "unresolved"
