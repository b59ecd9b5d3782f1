"""Is a model still learning where it stands (at its schedule's end, or now while it trains)? Two measures, each
per 100 epochs so that stages of different lengths compare: the fall of its training loss's running median over
the latest stage it has reached and over that stage's last epochs (the curve ``figures.training_so_far`` draws),
and the change of its test NLL between the learning curve's last two points, paired over the curve's test images
(one training seed: the interval holds the images' and the two K=5000 estimates' noise, not training's)."""

from __future__ import annotations

import numpy as np
import pandas as pd

WINDOW = 25  # epochs in the running median of the training loss (as training_so_far draws it)
LAST = 300  # the last epochs looked at on their own: is the fall still there at the end?


def running_median(loss: pd.Series, window: int = WINDOW) -> pd.Series:
    """The centred running median of a per-epoch series (``window`` epochs; fewer at the ends)."""
    return loss.rolling(window, min_periods=1, center=True).median()


def _window(i: int, n: int, window: int) -> int:
    """How many epochs the centred running median takes at epoch ``i`` of ``n`` (fewer near the ends)."""
    half = window // 2
    return min(i + half, n - 1) - max(i - half, 0) + 1


def loss_fall(history: list[dict], last: int = LAST, window: int = WINDOW) -> dict | None:
    """The training loss (-train_objective) of the latest stage in ``history`` (one dict per epoch: ``stage``,
    ``train_objective``): its running median at the stage's first epoch minus at its last (``fall``: positive
    while it falls) and over its last ``last`` epochs (``fall_last``, over ``last_epochs``: the whole stage if
    shorter), each also per 100 epochs, and each with the standard error a fall of two medians has from the
    epoch-to-epoch noise alone (``fall_se``, ``fall_last_se``: 1.2533 sd sqrt(1/n1 + 1/n2) for medians of n1 and
    n2 epochs, the sd from successive epochs' differences, robustly; as if the epochs' noise were independent).
    The falls are NaN in a stage shorter than two windows (the two ends' medians would share epochs). None for
    an empty history."""
    if not history:
        return None
    stage = history[-1]["stage"]
    loss = pd.Series([-h["train_objective"] for h in history if h["stage"] == stage], dtype=float)
    n = len(loss)
    span = min(last, n - 1)
    out = dict(stage=stage, epochs_in_stage=n, last_epochs=span)
    if n < 2 * window:
        nan = float("nan")
        return dict(out, fall=nan, fall_per_100=nan, fall_se=nan, fall_last=nan, fall_last_per_100=nan,
                    fall_last_se=nan, noise_sd=nan)
    rm = running_median(loss, window)
    steps = np.diff(loss.to_numpy())
    sd = 1.4826 * float(np.median(np.abs(steps - np.median(steps)))) / np.sqrt(2)  # one epoch's noise

    def se(i: int, j: int) -> float:
        return 1.2533 * sd * float(np.sqrt(1 / _window(i, n, window) + 1 / _window(j, n, window)))

    fall, fall_last = float(rm.iloc[0] - rm.iloc[-1]), float(rm.iloc[-1 - span] - rm.iloc[-1])
    return dict(out, fall=fall, fall_per_100=100 * fall / (n - 1), fall_se=se(0, n - 1), fall_last=fall_last,
                fall_last_per_100=100 * fall_last / span, fall_last_se=se(n - 1 - span, n - 1), noise_sd=sd)


def curve_step(curve: pd.DataFrame) -> dict | None:
    """Of one model's learning-curve rows (``epochs``, ``ll``: the per-image log-likelihoods, ``images``: which
    test images), the test NLL at its latest point minus at the one before, paired over the images (negative:
    still falling), with its 95% interval and per 100 epochs. None with fewer than two epochs evaluated, or where
    the two points are on other images (another binarisation seed: nothing to pair)."""
    from iwae.stats import paired_difference

    rows = curve.sort_values("epochs").drop_duplicates("epochs", keep="last")
    if len(rows) < 2:
        return None
    before, after = rows.iloc[-2], rows.iloc[-1]
    if "images" in rows and before["images"] != after["images"]:
        return None
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
        own = curve[curve["name"] == name] if curve is not None and "name" in curve else pd.DataFrame()
        step = curve_step(own) if len(own) else None
        rows.append(dict(model=name, state="finished" if name in finished else "training",
                         epoch=history[-1]["epoch"] + 1, **fall, **({} if step is None else step)))
    return pd.DataFrame(rows)


def markdown(t: pd.DataFrame, images: str) -> str:
    """``table`` as a page: what each column measures, then one row per model."""
    from iwae.records import signed
    from iwae.render import interval

    def fall(f, se, per_100, over=""):
        return (f"stage under {2 * WINDOW} epochs" if not np.isfinite(f) else
                f"{signed(f)} ± {1.96 * se:.2f}{over} ({signed(per_100, 3)})")

    shown = pd.DataFrame({
        "model": t.model, "state": t.state, "epoch": t.epoch.map(lambda e: f"{e:,}"),
        "stage (epochs in it)": [f"{s} ({n:,})" for s, n in zip(t.stage, t.epochs_in_stage)],
        "training loss: fall over the stage (per 100 ep.)": [
            fall(f, se, p) for f, se, p in zip(t.fall, t.fall_se, t.fall_per_100)],
        f"over its last {LAST} epochs (per 100 ep.)": [
            fall(f, se, p, f" over {n:,}") for f, se, p, n in zip(t.fall_last, t.fall_last_se, t.fall_last_per_100,
                                                                   t.last_epochs)]})
    if "change" in t:
        shown["test NLL: the curve's last step [95% CI] (per 100 ep.)"] = [
            "" if not np.isfinite(c) else
            f"{interval(c, lo, hi)} from {int(a):,} to {int(b):,} ep. ({signed(p, 3)})"
            for c, lo, hi, a, b, p in zip(t.change, t.low, t.high, t.since.fillna(0), t.to.fillna(0),
                                          t.change_per_100)]
    return (f"Still falling? Two signs, each a size beside its own noise, not a test of convergence. The training "
            f"loss (nats, -L on the training images) in the model's latest stage, through its {WINDOW}-epoch running "
            f"median (as training_so_far.png draws it; the window is cut to {WINDOW // 2 + 1} epochs at the ends): "
            f"the median of the stage's first {WINDOW // 2 + 1} epochs minus that of its last {WINDOW // 2 + 1}, and "
            f"over its last {LAST} epochs the {WINDOW}-epoch median around epoch {LAST} from the end minus the last "
            f"{WINDOW // 2 + 1}'s (positive: falling; ±: 1.96 standard errors of such a difference of medians from "
            f"the epoch-to-epoch noise alone, as if the epochs' noise were independent). The test NLL at the "
            f"learning curve's latest point minus at the point before, paired over {images} (negative: falling; "
            f"the interval holds the images' and the two K=5000 estimates' noise, not training's: one training "
            f"seed); its two points can lie in earlier stages than the loss's fall (from and to say where).\n\n"
            + shown.to_markdown(index=False, disable_numparse=True) + "\n")
