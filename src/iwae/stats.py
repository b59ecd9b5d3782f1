"""Paired statistics: is a difference between two models real at this budget?

Every evaluation binarises the same test images from the same seed and saves one log-likelihood
per image, so two models' estimates pair up image by image. With one seed per model the
difference is paired over the test images; with several seeds (matched by seed) it is the
spread of the per-seed paired means that counts, and the interval is taken over seeds.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import stats as sps

LEVEL = 0.95


def mean_ci(values, level: float = LEVEL) -> tuple[float, float, float]:
    """(mean, low, high): Student's t interval of the mean of ``values``."""
    v = np.asarray(values, dtype=float)
    m = float(v.mean())
    if len(v) < 2:
        return m, math.nan, math.nan
    half = float(sps.t.ppf(0.5 + level / 2, len(v) - 1) * v.std(ddof=1) / math.sqrt(len(v)))
    return m, m - half, m + half


def paired_difference(a: list[np.ndarray], b: list[np.ndarray], level: float = LEVEL) -> dict:
    """Mean of a - b with its interval; ``a[s]``, ``b[s]``: per-image values of seed s on the same images.

    One seed: over the images (n - 1 degrees of freedom). Several: over the seeds' paired means.
    """
    if len(a) != len(b) or not a:
        raise ValueError(f"paired_difference needs the same seeds on both sides, got {len(a)} and {len(b)}")
    for x, y in zip(a, b):
        if len(x) != len(y):
            raise ValueError(f"paired values need the same test images: {len(x)} against {len(y)} images")
    if len(a) == 1:
        mean, low, high = mean_ci(np.asarray(a[0]) - np.asarray(b[0]), level)
        return dict(diff=mean, low=low, high=high, over="images", n=len(a[0]))
    mean, low, high = mean_ci([float(np.mean(np.asarray(x) - np.asarray(y))) for x, y in zip(a, b)], level)
    return dict(diff=mean, low=low, high=high, over="seeds", n=len(a))


def verdict(low: float, high: float) -> str:
    """'below' (the interval is below 0), 'above', or 'unresolved' (it contains 0)."""
    if high < 0:
        return "below"
    if low > 0:
        return "above"
    return "unresolved"
