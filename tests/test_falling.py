"""Is a model still learning (iwae.falling): the training loss's fall in its latest stage, found in noise where the
answer is known, and the learning curve's last step paired over the images as scipy's t interval gives it."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from scipy import stats

from iwae import falling, runstate


def _history(losses_by_stage: list[np.ndarray]) -> list[dict]:
    rows, epoch = [], 0
    for stage, losses in enumerate(losses_by_stage):
        for loss in losses:
            rows.append(dict(epoch=epoch, stage=stage, train_objective=-float(loss), seconds=1.0))
            epoch += 1
    return rows


@pytest.mark.parametrize("drop_at, fall_last", [(850, 1.0), (300, 0.0)])
def test_a_drop_in_noisy_losses_is_found_in_the_latest_stage_and_in_its_last_epochs_only_if_it_is_there(
        drop_at, fall_last):
    """1,000 epochs of loss 90 with uniform noise of ±0.3 that drops by 1.0 at one epoch: the stage falls 1.0; its last
    300 epochs fall 1.0 when the drop is among them and 0 when it came before. The stage before (loss 150, falling
    by 40) is not the latest stage and does not count."""
    rng = np.random.default_rng(7)
    latest = 90.0 + rng.uniform(-0.3, 0.3, 1000) - np.where(np.arange(1000) >= drop_at, 1.0, 0.0)
    f = falling.loss_fall(_history([np.linspace(150, 110, 50), latest]))
    assert (f["stage"], f["epochs_in_stage"], f["last_epochs"]) == (1, 1000, 300)
    assert f["fall"] == pytest.approx(1.0, abs=0.1)
    assert f["fall_last"] == pytest.approx(fall_last, abs=0.1)
    assert f["noise_sd"] == pytest.approx(0.6 / np.sqrt(12), rel=0.15)  # uniform on ±0.3
    short = falling.loss_fall(_history([latest[:60]]))  # a stage shorter than 300 epochs: all of it
    assert short["last_epochs"] == 59
    too_short = falling.loss_fall(_history([latest[:49]]))  # the two ends' medians would share epochs
    assert np.isnan(too_short["fall"]) and np.isnan(too_short["fall_last"]) and too_short["epochs_in_stage"] == 49
    assert falling.loss_fall([]) is None


def test_the_standard_error_of_a_fall_matches_the_spread_of_falls_in_pure_noise():
    """2,000 stages of 600 epochs of independent normal noise (sd 0.2) and no trend: the falls average 0, and their
    sd over the stages is the standard error loss_fall gives (the median's 1.2533 sd / sqrt(n) at each end, 13
    epochs at a stage's ends and 25 inside it), within 10%."""
    rng = np.random.default_rng(11)
    runs = [falling.loss_fall(_history([90.0 + rng.normal(0, 0.2, 600)])) for _ in range(2000)]
    for key in ("fall", "fall_last"):
        falls = np.array([r[key] for r in runs])
        se = np.mean([r[f"{key}_se"] for r in runs])
        assert abs(falls.mean()) < 3 * falls.std() / np.sqrt(len(falls))
        assert falls.std(ddof=1) == pytest.approx(se, rel=0.10), key
    assert np.mean([r["fall_se"] for r in runs]) == pytest.approx(1.2533 * 0.2 * np.sqrt(2 / 13), rel=0.05)


def test_the_curves_last_step_is_the_paired_change_between_its_last_two_points():
    """Rows out of order; the latest point (epoch 40) minus the one before (13), paired over the same images: the
    mean and interval of the per-image NLL differences, as scipy's t interval gives them; per 100 epochs over 27."""
    rng = np.random.default_rng(3)
    images = rng.normal(-100, 5, 500)
    ll = {1: images - 3.0, 13: images + rng.normal(0, 0.4, 500), 40: images + 0.3 + rng.normal(0, 0.4, 500)}
    curve = pd.DataFrame([dict(epochs=e, ll=ll[e]) for e in (13, 40, 1)])
    step = falling.curve_step(curve)
    d = -ll[40] - -ll[13]
    low, high = stats.t.interval(0.95, len(d) - 1, loc=d.mean(), scale=stats.sem(d))
    assert (step["since"], step["to"], step["images"]) == (13, 40, 500)
    assert (step["change"], step["low"], step["high"]) == pytest.approx((d.mean(), low, high))
    assert step["change"] < 0 and step["change_per_100"] == pytest.approx(100 * d.mean() / 27)
    assert falling.curve_step(curve.iloc[:1]) is None
    twice = pd.concat([curve, pd.DataFrame([dict(epochs=40, ll=ll[40] + 1.0)])])  # the same epoch evaluated again
    assert falling.curve_step(twice)["to"] == 40 and falling.curve_step(twice)["since"] == 13
    seeds = curve.assign(images=["seed 1234", "seed 4321", "seed 1234"])  # 13 and 40 on other binary images
    assert falling.curve_step(seeds) is None


def test_the_run_writes_each_models_fall_and_its_curves_last_step(tmp_path):
    """A run folder with two models in training. The IWAE: its stage snapshots' metrics at 1 and 4 epochs (NLL 1.0
    and 0.6 above a common 100 on the same 300 images) and its checkpoint's history (stage 1: 30 epochs at 119.0,
    30 at 118.5); the VAE: a history only (stage 1: 60 epochs at 130.0, then 60 at 129.7), no snapshot evaluated.
    still_falling.csv has each model's own fall (0.5 and 0.3), and the IWAE's curve step, -0.4 from 1 to 4 epochs;
    the VAE has none."""
    from test_report import write_metrics

    from iwae import checkpoint
    from iwae.config import TrainConfig
    from iwae.stack import build

    results = tmp_path / "run" / "results" / "mnist" / "L1"
    (results / "iwae-k5" / "seed0" / "stages").mkdir(parents=True)
    for stage, (shift, epochs) in enumerate([(1.0, 1), (0.6, 4)]):
        made = write_metrics(tmp_path / f"m{stage}", shift=shift, epochs=epochs, rng=np.random.default_rng(stage))
        shutil.move(made, results / "iwae-k5" / "seed0" / "stages" / f"stage{stage}.metrics.json")
    for run, losses in (("iwae-k5", [119.0] * 30 + [118.5] * 30), ("vae-k5", [130.0] * 60 + [129.7] * 60)):
        history = _history([[140.0], losses])
        (results / run / "seed0").mkdir(parents=True, exist_ok=True)
        cfg = TrainConfig(k=5, stages=[0, 1, 2], init="seeded", objective=run.split("-")[0])
        checkpoint.save(results / run / "seed0" / "checkpoint.pt", build([cfg], torch.rand(40, 784).round(), lr=1e-3),
                        [cfg], [Path(f"results/mnist/L1/{run}/seed0")], [history], epoch=len(history), step=0,
                        elapsed=float(len(history)))
    assert "still_falling.md" in runstate.write_curve(tmp_path / "run", tmp_path / "out")
    rows = pd.read_csv(tmp_path / "out" / "still_falling.csv").set_index("model")
    iwae, vae = rows.loc["mnist/L1/iwae-k5/seed0"], rows.loc["mnist/L1/vae-k5/seed0"]
    assert (iwae.state, iwae.epoch, iwae.stage, vae.epoch) == ("training", 61, 1, 121)
    assert iwae.fall == pytest.approx(0.5) and vae.fall == pytest.approx(0.3)
    assert (iwae.since, iwae.to) == (1, 4) and iwae.change == pytest.approx(-0.4, abs=0.02) and iwae.high < 0
    assert np.isnan(vae.change)
    page = (tmp_path / "out" / "still_falling.md").read_text()
    assert "-0.40 [" in page and page.count(" from 1 to 4 ep.") == 1
