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
    assert f["fall_per_100"] == pytest.approx(100 * f["fall"] / 999)
    short = falling.loss_fall(_history([latest[:40]]))  # a stage shorter than 300 epochs: all of it
    assert short["last_epochs"] == 39 and short["fall_last"] == short["fall"]
    assert falling.loss_fall([]) is None and falling.loss_fall(_history([[90.0]])) is None


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


def test_the_run_writes_each_models_fall_and_its_curves_last_step(tmp_path):
    """A run folder with one model in training: its stage snapshots' metrics at 1 and 4 epochs (NLL 1.0 and 0.6
    above a common 100 on the same 300 images) and its checkpoint's history (stage 1 falling by 0.2 an epoch):
    still_falling.csv has the stage's fall, 0.5, and the curve's last step, -0.4 from 1 to 4 epochs."""
    from test_report import write_metrics

    from iwae import checkpoint
    from iwae.config import TrainConfig
    from iwae.stack import build

    folder = tmp_path / "run" / "results" / "mnist" / "L1" / "iwae-k5" / "seed0"
    (folder / "stages").mkdir(parents=True)
    for stage, (shift, epochs) in enumerate([(1.0, 1), (0.6, 4)]):
        made = write_metrics(tmp_path / f"m{stage}", shift=shift, epochs=epochs, rng=np.random.default_rng(stage))
        shutil.move(made, folder / "stages" / f"stage{stage}.metrics.json")
    history = _history([[120.0], [119.0] * 30 + [118.5] * 30])
    cfg = TrainConfig(k=5, stages=[0, 1, 2], init="seeded")
    checkpoint.save(folder / "checkpoint.pt", build([cfg], torch.rand(40, 784).round(), lr=1e-3), [cfg],
                    [Path("results/mnist/L1/iwae-k5/seed0")], [history], epoch=61, step=0, elapsed=61.0)
    assert "still_falling.md" in runstate.write_curve(tmp_path / "run", tmp_path / "out")
    row = pd.read_csv(tmp_path / "out" / "still_falling.csv").iloc[0]
    assert (row.model, row.state, row.epoch, row.stage) == ("mnist/L1/iwae-k5/seed0", "training", 61, 1)
    assert row.fall == pytest.approx(0.5) and (row.last_epochs, row.fall_last) == (59, row.fall)
    assert (row.since, row.to) == (1, 4) and row.change == pytest.approx(-0.4, abs=0.02) and row.high < 0
    assert "-0.40 [" in (tmp_path / "out" / "still_falling.md").read_text()
