"""Paired statistics and the verdict rules: closed forms against scipy, both branches of the paired difference,
and the intervals' coverage on simulations of training seeds with a known answer."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as sps

from iwae import stats
from iwae.stats import mean_ci, paired_difference, verdict


def test_mean_ci_is_students_t_interval():
    v = np.random.default_rng(0).normal(3.0, 2.0, size=17)
    mean, low, high = mean_ci(v)
    ref = sps.t.interval(0.95, len(v) - 1, loc=v.mean(), scale=sps.sem(v))
    assert mean == pytest.approx(v.mean()) and (low, high) == pytest.approx(ref)
    assert np.isnan(mean_ci([1.0])[1])


def test_one_seed_is_an_interval_over_the_images():
    rng = np.random.default_rng(1)
    a, b = rng.normal(0, 1, 300), rng.normal(0.5, 1, 300)
    d = paired_difference([a], [b])
    ref = sps.t.interval(0.95, 299, loc=(a - b).mean(), scale=sps.sem(a - b))
    assert d["over"] == "images" and d["n"] == 300 and np.isnan(d["seed_sd"])
    assert (d["low"], d["high"]) == pytest.approx(ref)


def test_several_seeds_are_an_interval_over_the_seeds_paired_means():
    rng = np.random.default_rng(2)
    a = [rng.normal(s, 1, 100) for s in range(4)]
    b = [x - rng.normal(1.0, 0.3) for x in a]  # each seed's pair differs by its own shift
    d = paired_difference(a, b)
    means = [float(np.mean(x - y)) for x, y in zip(a, b)]
    ref = sps.t.interval(0.95, 3, loc=np.mean(means), scale=sps.sem(means))
    assert d["over"] == "seeds" and d["n"] == 4 and d["per_seed"] == pytest.approx(means)
    assert (d["low"], d["high"]) == pytest.approx(ref) and d["seed_sd"] == pytest.approx(np.std(means, ddof=1))


def test_mismatched_seeds_or_images_are_refused():
    with pytest.raises(ValueError, match="same seeds"):
        paired_difference([np.zeros(3)], [np.zeros(3), np.zeros(3)])
    with pytest.raises(ValueError, match="same test images"):
        paired_difference([np.zeros(3)], [np.zeros(4)])


def _simulated_difference(rng, seeds: int, images: int, true: float, seed_sd: float, image_sd: float) -> dict:
    """Per-image NLL differences of two models trained with ``seeds`` seeds: each seed adds its own shift
    (training noise, sd ``seed_sd``), each image its own noise (sd ``image_sd``); the true mean is ``true``."""
    diffs = [true + rng.normal(0, seed_sd) + rng.normal(0, image_sd, images) for _ in range(seeds)]
    return paired_difference(diffs, [np.zeros(images)] * seeds)


def test_the_seed_level_interval_covers_the_true_difference_and_the_image_level_one_does_not():
    """Simulated training seeds with a known answer: the interval over 5 seeds covers the true difference in about
    95% of repetitions; the interval over the images of one seed, which ignores training noise as large as the
    effect, covers it far less often -- which is why it gives no verdict."""
    rng = np.random.default_rng(3)
    true, reps = -0.5, 1000
    seeds5 = [_simulated_difference(rng, 5, 200, true, 0.4, 3.0) for _ in range(reps)]
    one = [_simulated_difference(rng, 1, 200, true, 0.4, 3.0) for _ in range(reps)]
    covered = lambda ds: np.mean([d["low"] <= true <= d["high"] for d in ds])  # noqa: E731
    # binomial 99.9% band around 0.95 for 1000 repetitions: about [0.927, 0.973]
    assert 0.925 <= covered(seeds5) <= 0.975, covered(seeds5)
    assert covered(one) < 0.75, covered(one)


def test_verdicts_need_seeds():
    one = dict(diff=-2.0, low=-2.3, high=-1.7, over="images", n=1000)
    assert verdict(one) == "one seed"  # however narrow
    seeds = lambda low, high: dict(diff=(low + high) / 2, low=low, high=high, over="seeds", n=3)  # noqa: E731
    assert verdict(seeds(-2.0, -0.1)) == "below"
    assert verdict(seeds(0.1, 2.0)) == "above"
    assert verdict(seeds(-1.0, 0.5)) == "unresolved"
    assert verdict(None) == "unresolved"


def test_the_interval_of_an_sd_from_three_seeds_covers_the_true_sd_95_times_in_100():
    """The noise floor is an sd over a few seeds: its interval (chi-square, n - 1 df) against a simulation with a
    known sd, and the closed form of its width for three values (0.52 to 6.28 times the estimate)."""
    rng = np.random.default_rng(0)
    true_sd, trials, covered = 0.2, 20_000, 0
    for _ in range(trials):
        values = rng.normal(1.0, true_sd, 3)
        low, high = stats.sd_interval(values.std(ddof=1), 3)
        covered += low <= true_sd <= high
    assert abs(covered / trials - 0.95) < 0.01
    low, high = stats.sd_interval(1.0, 3)
    assert low == pytest.approx(math.sqrt(2 / 7.3778), rel=1e-3) and high == pytest.approx(math.sqrt(2 / 0.050636), rel=1e-3)


def test_evaluation_noise_covers_the_mean_over_draws_as_often_as_it_says():
    """A simulation with a known answer: grey images with their own NLL (mean over draws) and each evaluation's draw
    noise of a known per-image sd (sd 6 here, as a binarisation gives on MNIST): the sd of one evaluation's mean is
    6 / sqrt(N), and over many simulated pairs the two half-widths cover one evaluation's distance from the mean
    over draws, and two evaluations' gap, about 95% of the time."""
    rng = np.random.default_rng(3)
    n, sims = 2_000, 400
    truth = 86.0 + rng.normal(0, 20, n)
    hits_one = hits_two = 0
    for _ in range(sims):
        first, second, third = (truth + rng.normal(0, 6.0, n) for _ in range(3))
        noise = stats.evaluation_noise(first, second)
        assert noise["sd_one"] == pytest.approx(6.0 / math.sqrt(n), rel=0.1)
        hits_one += abs(third.mean() - truth.mean()) <= noise["one"]
        hits_two += abs(third.mean() - first.mean()) <= noise["two"]
    assert 0.92 <= hits_one / sims <= 0.98 and 0.92 <= hits_two / sims <= 0.98
