"""The SNR statistics against simulations with a known answer: the floor of a zero-mean gradient removed, the
summary unbiased for the root mean square SNR, and the jackknife intervals of a summary and of a slope neither too
narrow (they cover the truth) nor too wide (their standard error matches the spread across repeated measurements)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.stats import norm

from iwae import snr


def _sums(mu: np.ndarray, sigma: np.ndarray, draws: int, rng, blocks: int = snr.BLOCKS):
    """Block sums of ``draws`` normal 'gradients' with per-parameter means ``mu`` and sds ``sigma``."""
    g = rng.normal(mu, sigma, size=(draws, len(mu)))
    per = g.reshape(blocks, draws // blocks, len(mu))
    return torch.as_tensor(per.sum(1)), torch.as_tensor((per**2).sum(1))


def test_the_floor_of_a_zero_mean_gradient_is_removed_and_a_known_snr_recovered():
    rng = np.random.default_rng(0)
    draws, p = 200, 20_000
    zero = snr.summary(*(t.sum(0) for t in _sums(np.zeros(p), np.ones(p), draws, rng)), draws)
    assert zero["snr_raw_mean"] == pytest.approx(math.sqrt(2 / math.pi / draws), rel=0.05)  # the raw floor: 0.056
    assert zero["snr"] < 0.01 and zero["resolved"] < 0.01  # nothing left of it, nothing resolved
    mu = np.where(np.arange(p) % 2 == 0, 0.3, 0.0)  # half the parameters with SNR 0.3, half without signal
    known = snr.summary(*(t.sum(0) for t in _sums(mu, np.ones(p), draws, rng)), draws)
    assert known["snr"] == pytest.approx(math.sqrt(0.5 * 0.3**2), rel=0.05)  # the root mean square SNR, 0.212
    t = 0.3 * math.sqrt(draws)  # the mean t of a parameter with signal: |t| > 3 for a share norm.sf(3 - t) of them
    assert known["resolved"] == pytest.approx(0.5 * (norm.sf(3 - t) + norm.cdf(-3 - t)), abs=0.02)


@pytest.mark.parametrize("per_parameter", [0.05, 0.3])
def test_the_jackknife_error_of_a_summary_matches_its_spread_over_repeated_measurements(per_parameter):
    """400 parameters, 200 draws, measured 60 times: the jackknife standard error agrees with the sd of the 60
    estimates within 40% (1.3x at the low one), at a low and a moderate SNR (a bootstrap that shares its resampling across parameters
    overstates it several times at the low one)."""
    rng = np.random.default_rng(2)
    p, draws, estimates, errors = 400, 200, [], []
    for _ in range(60):
        s1, s2 = _sums(np.full(p, per_parameter), np.ones(p), draws, rng)
        estimates.append(snr.summary(s1.sum(0), s2.sum(0), draws)["snr"])
        values = snr.jackknife(s1, s2, draws)
        errors.append(math.sqrt((len(values) - 1) / len(values) * np.sum((values - values.mean()) ** 2)))
    assert np.mean(errors) == pytest.approx(np.std(estimates, ddof=1), rel=0.4)


def test_the_jackknife_interval_of_a_slope_covers_the_true_power():
    """SNR = 0.5 K^-1/2 at K = 1, 10, 100, 1000 (the recognition network's expected fall), 200 draws, measured and
    fitted 40 times: the 95% interval covers -1/2 in most of them and is not several times wider than the slopes'
    spread; a K without signal is left out of the fit."""
    rng = np.random.default_rng(1)
    p, draws, covered, widths, fitted = 400, 200, 0, [], []
    for trial in range(40):
        rows = []
        for k in (1, 10, 100, 1000):
            s1, s2 = _sums(np.full(p, 0.5 * k**-0.5), np.ones(p), draws, rng)
            res = snr.summary(s1.sum(0), s2.sum(0), draws)
            values = snr.jackknife(s1, s2, draws)
            low, high = snr.jackknife_interval(res["snr"], values)
            rows.append(dict(checkpoint="t", estimator="iwae", network="recognition", k=k, snr=res["snr"], low=low,
                             jackknife=values))
        fit = snr.slopes(rows)[0]
        covered += fit["low"] <= -0.5 <= fit["high"]
        widths.append(fit["high"] - fit["low"])
        fitted.append(fit["slope"])
    assert covered / 40 >= 0.85
    assert np.mean(widths) < 2 * 1.96 * np.std(fitted, ddof=1) * 1.5  # about 2 x 1.96 sd, not several times it
    s1, s2 = _sums(np.zeros(p), np.ones(p), draws, rng)  # no signal at all: the interval reaches zero
    assert snr.jackknife_interval(snr.summary(s1.sum(0), s2.sum(0), draws)["snr"], snr.jackknife(s1, s2, draws))[0] <= 0


def test_no_signal_is_found_where_there_is_none_even_with_few_draws():
    """20 draws of zero-mean gradients of 20,000 parameters (the smoke budget's SNR): the debiased SNR's interval
    reaches zero (without the (n-3)/(n-1) factor, 1/s^2's bias would show a 'signal' of about 0.08)."""
    rng = np.random.default_rng(3)
    s1, s2 = _sums(np.zeros(20_000), np.ones(20_000), 20, rng)
    estimate = snr.summary(s1.sum(0), s2.sum(0), 20)["snr"]
    assert estimate < 0.03 and snr.jackknife_interval(estimate, snr.jackknife(s1, s2, 20))[0] <= 0


def test_an_undefined_snr_is_told_apart_from_one_without_signal():
    """A zero gradient at every draw (RWS-DReG's recognition gradient at K = 1) has no SNR at all; a K whose interval
    reaches zero has one indistinguishable from zero. The fit leaves both out and names them apart, and slopes
    fitted before the two were told apart are split the same way from the summaries."""
    import pandas as pd

    def row(k, value, low):
        return dict(checkpoint="trained", estimator="rws_dreg", network="recognition", k=k, snr=value, low=low,
                    high=value * 1.1 if math.isfinite(value) else math.nan)

    rows = [row(1, math.nan, math.nan), row(10, 0.01, -0.02), row(100, 0.2, 0.18), row(1000, 0.4, 0.37)]
    (fit,) = snr.slopes(rows)
    assert (fit["ks_undefined"], fit["ks_without_signal"], fit["ks_fitted"]) == ("1", "10", "100,1000")
    old = pd.DataFrame([dict(fit, ks_without_signal="1,10")]).drop(columns="ks_undefined")  # an older slopes file
    split = snr.split_undefined(pd.DataFrame(rows), old).iloc[0]
    assert (split.ks_undefined, split.ks_without_signal) == ("1", "10")
