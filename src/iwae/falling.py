"""Is a model still learning where it stands (at its schedule's end, or now while it trains)? Two measures, each
per 100 epochs so that stages of different lengths compare: the fall of its training loss's running median over
the latest stage it has reached and over that stage's last epochs (the curve ``figures.training_so_far`` draws),
and the change of its test NLL between the learning curve's last two points, paired over the curve's test images
(one training seed: the interval is the images' sampling noise, not training's)."""

from __future__ import annotations

import numpy as np
import pandas as pd

WINDOW = 25  # epochs in the running median of the training loss (as training_so_far draws it)
LAST = 300  # the last epochs looked at on their own: is the fall still there at the end?


def running_median(loss: pd.Series, window: int = WINDOW) -> pd.Series:
    """The centred running median of a per-epoch series (``window`` epochs; fewer at the ends)."""
    return loss.rolling(window, min_periods=1, center=True).median()


def loss_fall(history: list[dict], last: int = LAST, window: int = WINDOW) -> dict | None:
    """The training loss (-train_objective) of the latest stage in ``history`` (one dict per epoch: ``stage``,
    ``train_objective``): its running median at the stage's first epoch minus at its last (``fall``: positive
    while it falls) and over its last ``last`` epochs (``fall_last``; the whole stage if shorter), each also per
    100 epochs. None for an empty history or a stage of one epoch."""
    if not history:
        return None
    stage = history[-1]["stage"]
    loss = pd.Series([-h["train_objective"] for h in history if h["stage"] == stage], dtype=float)
    if len(loss) < 2:
        return None
    rm = running_median(loss, window)
    span = min(last, len(loss) - 1)
    fall, fall_last = float(rm.iloc[0] - rm.iloc[-1]), float(rm.iloc[-1 - span] - rm.iloc[-1])
    return dict(stage=stage, epochs_in_stage=len(loss), fall=fall, fall_per_100=100 * fall / (len(loss) - 1),
                last_epochs=span, fall_last=fall_last, fall_last_per_100=100 * fall_last / span)


def curve_step(curve: pd.DataFrame) -> dict | None:
    """Of one model's learning-curve rows (``epochs``, ``ll``: the per-image log-likelihoods on the same test
    images), the test NLL at its latest point minus at the one before, paired over the images (negative: still
    falling), with its 95% interval and per 100 epochs. None with fewer than two points."""
    from iwae.stats import paired_difference

    rows = curve.sort_values("epochs")
    if len(rows) < 2:
        return None
    before, after = rows.iloc[-2], rows.iloc[-1]
    d = paired_difference([-np.asarray(after.ll)], [-np.asarray(before.ll)])
    epochs = int(after.epochs) - int(before.epochs)
    return dict(since=int(before.epochs), to=int(after.epochs), change=d["diff"], low=d["low"], high=d["high"],
                change_per_100=100 * d["diff"] / epochs, images=d["n"])


def table(histories: dict[str, list[dict]], finished: set[str], curve: pd.DataFrame | None) -> pd.DataFrame:
    """One row per model with a history (``histories``: its name -> its epochs; ``finished``: the names of the
    finished ones): ``loss_fall`` of its latest stage and, where the learning curve (``records.collect`` rows with
    ``name``, all on the same test images) has two points of it, ``curve_step``."""
    rows = []
    for name, history in sorted(histories.items()):
        fall = loss_fall(history)
        if fall is None:
            continue
        own = curve[curve.name == name] if curve is not None and "name" in curve else pd.DataFrame()
        step = curve_step(own) if len(own) else None
        rows.append(dict(model=name, state="finished" if name in finished else "training",
                         epoch=history[-1]["epoch"] + 1, **fall, **({} if step is None else step)))
    return pd.DataFrame(rows)


def markdown(t: pd.DataFrame, images: str) -> str:
    """``table`` as a page: what each column measures, then one row per model."""
    def signed(v, digits=2):
        return f"{v:+.{digits}f}"

    shown = pd.DataFrame({
        "model": t.model, "state": t.state, "epoch": t.epoch.map(lambda e: f"{e:,}"),
        "stage (epochs in it)": [f"{s} ({n:,})" for s, n in zip(t.stage, t.epochs_in_stage)],
        "loss fall over the stage (per 100 ep.)": [f"{signed(f)} ({signed(p, 3)})"
                                                   for f, p in zip(t.fall, t.fall_per_100)],
        f"over its last epochs (per 100 ep.)": [f"{signed(f)} over {n:,} ({signed(p, 3)})"
                                                for f, p, n in zip(t.fall_last, t.fall_last_per_100, t.last_epochs)]})
    if "change" in t:
        shown["test NLL, the curve's last step [95% CI] (per 100 ep.)"] = [
            "" if not np.isfinite(c) else
            f"{signed(c)} [{signed(lo)}, {signed(hi)}] from {int(a):,} to {int(b):,} ep. ({signed(p, 3)})"
            for c, lo, hi, a, b, p in zip(t.change, t.low, t.high, t.since.fillna(0), t.to.fillna(0),
                                          t.change_per_100)]
    return (f"Is each model still learning? The fall of its training loss (nats; the {WINDOW}-epoch running median "
            f"of -L on the training images, as training_so_far.png draws it: its value at the first epoch of the "
            f"model's latest stage minus at its latest epoch, and over the last {LAST} epochs; positive: still "
            f"falling); and its test NLL at the learning curve's latest point minus at the point before, paired over "
            f"{images} (negative: still falling; one training seed: the interval is the images' sampling noise, "
            f"not training's; each point is an evaluation with its own draws, whose noise the interval leaves "
            f"out).\n\n" + shown.to_markdown(index=False, disable_numparse=True)
            + "\n")
