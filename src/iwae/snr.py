"""The gradient signal-to-noise experiment of Rainforth et al. (2018), "Tighter variational bounds are not
necessarily better": at fixed parameters, how the quality of each estimator's gradient changes with K.

For a fixed minibatch of binarised training images and fixed parameters, each estimator's gradient
(from ``iwae.objectives``: the generative gradient and the recognition gradient of the same draw)
is computed for ``draws`` independent draws of the samples. Per parameter i, with m_i and s_i the mean and sd
of its gradient over the draws, the raw SNR |m_i| / s_i carries a floor: a parameter whose expected gradient is
zero still shows E|t| / sqrt(draws) (about 0.056 at 200 draws), which flattens every slope towards zero. The
summary here removes it: SNR = sqrt((n-3)/(n-1) mean_i(m_i^2 / s_i^2) - 1 / n) over n draws, the root mean square
over the parameters of |E g| / sd g with the noise of m_i^2 (E m^2 = mu^2 + sigma^2 / n) and of 1 / s_i^2
(E sigma^2 / s^2 = (n-1)/(n-3)) taken out: unbiased for normal draws; ``resolved``
is the share of parameters whose mean is resolved (|t| > 3). The draws are kept as block sums, and a
delete-one-block jackknife gives each summary's interval and each fitted slope's; a K whose interval reaches zero
has no signal and is left out of the fit. Expected with IWAE: about K^(-1/2) for the
recognition network and K^(1/2) for the generative network; with DReG the recognition SNR does not fall with K.
"""

from __future__ import annotations

import csv
import math
from pathlib import Path

import numpy as np
import torch

from iwae import objectives
from iwae.model import IWAEModel
from iwae.render import SNR_UNDEFINED

ESTIMATORS = ("iwae", "iwae_stl", "iwae_dreg", "rws", "rws_dreg")
BLOCKS = 20  # the draws are kept as this many block sums: the jackknife's units
RESOLVED_T = 3.0  # a parameter's mean gradient is resolved when |m| / (s / sqrt(draws)) exceeds this


def gradients(model: IWAEModel, x: torch.Tensor, k: int, estimator: str, generator: torch.Generator):
    """One draw of ``estimator``'s (generative, recognition) gradients, each flattened, for images x [B, 784]."""
    obj = objectives.get(estimator)
    theta, phi = model.generative_parameters(), model.recognition_parameters()
    out = model.log_weights(x, k, generator=generator, q_fixed=obj.q_fixed, with_log_q=obj.needs_log_q)
    log_w, log_q = out if obj.needs_log_q else (out, None)
    value = obj.value(log_w)
    g_theta = torch.autograd.grad(value.sum(), theta, retain_graph=True)
    g_phi = torch.autograd.grad(obj.phi_surrogate(log_w, log_q, value).sum(), phi)
    return torch.cat([g.reshape(-1) for g in g_theta]), torch.cat([g.reshape(-1) for g in g_phi])


def block_sums(model: IWAEModel, x: torch.Tensor, k: int, estimator: str, draws: int, seed: int = 0,
               blocks: int = BLOCKS) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """Per network, the sums of the gradient and of its square over each of ``blocks`` blocks of the ``draws``
    draws: ([blocks, P], [blocks, P]) in float64."""
    if draws % blocks:
        raise ValueError(f"draws ({draws}) must be a multiple of the {blocks} jackknife blocks")
    generator = torch.Generator(device=x.device).manual_seed(seed)
    sums = {}
    for i in range(draws):
        b = i * blocks // draws
        for net, g in zip(("generative", "recognition"), gradients(model, x, k, estimator, generator)):
            g = g.double()
            if net not in sums:
                sums[net] = (torch.zeros(blocks, g.numel(), dtype=torch.float64, device=g.device),
                             torch.zeros(blocks, g.numel(), dtype=torch.float64, device=g.device))
            sums[net][0][b] += g
            sums[net][1][b] += g.square()
    return sums


def summary(s1: torch.Tensor, s2: torch.Tensor, n: int, noise: float = 1.0) -> dict:
    """The SNR summaries of gradients with sums ``s1``, squared sums ``s2`` over ``n`` draws (per parameter): the
    floor-free root mean square SNR (``noise`` / n taken from the mean squared SNR: 1 for the measured draws, whose
    m^2 carries sigma^2 / n), the raw mean |m|/s, the floor of the raw one, and the share of resolved means."""
    mean = s1 / n
    var = (s2 - n * mean.square()).clamp_min(0) / (n - 1)
    varies = var > 1e-24 * (mean.square() + 1e-60)
    m, v = mean[varies], var[varies]
    ratio2 = m.square() / v
    # unbiased for mu^2 / sigma^2 with normal draws: E[m^2] = mu^2 + sigma^2 / n and E[sigma^2 / s^2] = (n-1)/(n-3)
    return dict(snr=float(torch.sqrt(torch.clamp((n - 3) / (n - 1) * ratio2.mean() - noise / n, min=0.0))),
                snr_raw_mean=float(ratio2.sqrt().mean()), floor_raw=math.sqrt(2 / math.pi / n),
                resolved=float((ratio2 * n > RESOLVED_T**2).double().mean()), parameters=int(varies.sum()))


def jackknife(s1: torch.Tensor, s2: torch.Tensor, draws: int) -> np.ndarray:
    """The floor-free SNR with each block of draws left out in turn (delete-one-block jackknife): the spread of these
    B values gives the SNR's standard error (``jackknife_interval``) and, taken block by block across K, a slope's.
    (A bootstrap that resamples the blocks would share its counts across all parameters, so its replicates' noise
    term would not average out over them: its intervals come out several times too wide at low SNR.)"""
    blocks = s1.shape[0]
    n = draws - draws // blocks
    t1, t2 = s1.sum(0), s2.sum(0)
    return np.array([summary(t1 - s1[b], t2 - s2[b], n)["snr"] for b in range(blocks)])


def jackknife_interval(estimate: float, values: np.ndarray, level: float = 0.95) -> tuple[float, float]:
    """Student's t interval of ``estimate`` with the jackknife standard error of ``values`` (B - 1 df)."""
    from scipy import stats as sps

    b = len(values)
    se = math.sqrt((b - 1) / b * float(np.sum((values - values.mean()) ** 2)))
    half = float(sps.t.ppf(0.5 + level / 2, b - 1)) * se
    return estimate - half, estimate + half


def snr(model: IWAEModel, x: torch.Tensor, k: int, estimator: str, draws: int, seed: int = 0) -> dict[str, dict]:
    """Per network: ``summary`` of ``estimator``'s gradient at K=k over ``draws`` draws, with the leave-one-block-out
    values (``jackknife``) and the 95% interval they give (``low``, ``high``)."""
    out = {}
    for net, (s1, s2) in block_sums(model, x, k, estimator, draws, seed).items():
        res = summary(s1.sum(0), s2.sum(0), draws)
        values = jackknife(s1, s2, draws)
        res["low"], res["high"] = jackknife_interval(res["snr"], values)
        res["jackknife"] = values
        out[net] = res
    return out


def fitted_slope(ks: list[int], values: list[float]) -> float:
    """Least-squares slope of log(value) against log(K)."""
    return float(np.polyfit(np.log(ks), np.log(values), 1)[0])


def run(models: dict[str, str], data_x: torch.Tensor, ks: list[int], estimators: list[str], draws: int,
        out_csv: Path, seed: int = 0, progress=print) -> list[dict]:
    """Every (checkpoint label -> model file) x estimator x K; writes the summaries (``out_csv``) and the
    leave-one-block-out values (``<out>_jackknife.csv``) and returns the rows (each with its values)."""
    from iwae.checkpoint import load_model

    rows = []
    for label, path in models.items():
        model = load_model(path).train()
        n_layers = model.config.n_layers
        for est in estimators:
            if objectives.get(est).max_layers < n_layers:
                progress(f"{label}: {est} skipped (written for one stochastic layer; the model has {n_layers})")
                continue
            for k in ks:
                res = snr(model, data_x, k, est, draws, seed=seed)
                for net, r in res.items():
                    rows.append(dict(checkpoint=label, model=str(path), estimator=est, network=net, k=k,
                                     draws=draws, images=data_x.shape[0], **r))
                progress(f"{label} {est} K={k}: SNR generative {res['generative']['snr']:.4g} "
                         f"[{res['generative']['low']:.3g}, {res['generative']['high']:.3g}], recognition "
                         f"{res['recognition']['snr']:.4g} [{res['recognition']['low']:.3g}, "
                         f"{res['recognition']['high']:.3g}]")
    out_csv.parent.mkdir(parents=True, exist_ok=True)
    fields = [f for f in rows[0] if f != "jackknife"]
    with out_csv.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=fields)
        w.writeheader()
        w.writerows({k: v for k, v in r.items() if k != "jackknife"} for r in rows)
    with out_csv.with_name(out_csv.stem + "_jackknife.csv").open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["checkpoint", "estimator", "network", "k", "block_left_out", "snr"])
        for r in rows:
            w.writerows([r["checkpoint"], r["estimator"], r["network"], r["k"], i, v]
                        for i, v in enumerate(r["jackknife"]))
    return rows


def slopes(rows: list[dict]) -> list[dict]:
    """The fitted log-log slope of the floor-free SNR against K per (checkpoint, estimator, network), with its 95%
    jackknife interval (the slope refitted with each block of draws left out at every K: blocks of different K are
    independent, so block b's leave-out values across K are one jackknife replicate of the slope), over the K with
    signal: a K whose SNR interval reaches zero (or whose SNR is undefined, as RWS-DReG's zero recognition gradient
    at K = 1) is left out and named; no slope with fewer than two such K."""
    groups: dict[tuple, list] = {}
    for r in rows:
        groups.setdefault((r["checkpoint"], r["estimator"], r["network"]), []).append(r)
    out = []
    for (ckpt, est, net), rs in groups.items():
        rs = sorted(rs, key=lambda r: int(r["k"]))
        signal = [r for r in rs if math.isfinite(float(r["snr"])) and float(r["snr"]) > 0
                  and float(r.get("low", r["snr"])) > 0]
        undefined = [int(r["k"]) for r in rs if not math.isfinite(float(r["snr"]))]
        left_out = [int(r["k"]) for r in rs if r not in signal and int(r["k"]) not in undefined]
        row = dict(checkpoint=ckpt, estimator=est, network=net, slope=math.nan, low=math.nan, high=math.nan,
                   ks_fitted=",".join(str(r["k"]) for r in signal), ks_without_signal=",".join(map(str, left_out)),
                   ks_undefined=",".join(map(str, undefined)))
        if len(signal) > 1:
            ks = [int(r["k"]) for r in signal]
            row["slope"] = fitted_slope(ks, [float(r["snr"]) for r in signal])
            if all(r.get("jackknife") is not None for r in signal):
                values = np.array([np.asarray(r["jackknife"], dtype=float) for r in signal])  # [K, blocks]
                if (values > 0).all():
                    fits = np.array([fitted_slope(ks, list(col)) for col in values.T])
                    row["low"], row["high"] = jackknife_interval(row["slope"], fits)
        out.append(row)
    return out


def add_arguments(p) -> None:
    p.add_argument("--model", action="append", required=True, metavar="LABEL=MODEL.pt",
                   help="a checkpoint to measure at, e.g. trained=results/.../model.pt (repeat for several)")
    p.add_argument("--data-dir", default="data", help="where `iwae fetch` put the data")
    p.add_argument("--ks", default="1,10,100,1000", help="comma-separated numbers of samples")
    p.add_argument("--estimators", default=",".join(ESTIMATORS), help="comma-separated registry names")
    p.add_argument("--draws", type=int, default=1000, help=f"independent gradient draws per (estimator, K); a multiple "
                                                          f"of the {BLOCKS} jackknife blocks")
    p.add_argument("--images", type=int, default=5, help="training images in the fixed minibatch")
    p.add_argument("--seed", type=int, default=0, help="seed of the minibatch's binarisation and of the draws")
    p.add_argument("--threads", type=int, default=None, help="CPU threads (default: all cores)")
    p.add_argument("--out", required=True, help="CSV of the SNR summaries; the slopes go beside it (_slopes.csv)")


def main(args) -> None:
    from iwae import data as data_mod
    from iwae.checkpoint import load_model
    from iwae.runtime import set_threads

    set_threads(args.threads)
    models = dict(spec.split("=", 1) if "=" in spec else (Path(spec).parent.name, spec) for spec in args.model)
    dataset = load_model(next(iter(models.values()))).metadata["train_config"]["dataset"]
    splits, _ = data_mod.load(dataset, args.data_dir)
    x = data_mod.binarize(splits.train[: args.images], torch.Generator().manual_seed(args.seed))
    rows = run(models, x, [int(k) for k in args.ks.split(",")], args.estimators.split(","), args.draws,
               Path(args.out), seed=args.seed)
    fitted = slopes(rows)
    slope_csv = Path(args.out).with_name(Path(args.out).stem + "_slopes.csv")
    with slope_csv.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(fitted[0]))
        w.writeheader()
        w.writerows(fitted)
    for s in fitted:
        print(f"{s['checkpoint']} {s['estimator']} {s['network']}: SNR ~ K^{s['slope']:+.2f} "
              f"[{s['low']:+.2f}, {s['high']:+.2f}] over K = {s['ks_fitted']}"
              + (f"; no signal at K = {s['ks_without_signal']}" if s["ks_without_signal"] else "")
              + (f"; {SNR_UNDEFINED} at K = {s['ks_undefined']}" if s["ks_undefined"] else ""))


def split_undefined(rows, fitted):
    """``fitted`` (a DataFrame of slopes) with the K whose SNR is undefined -- no gradient at all, NaN in ``rows``,
    as RWS-DReG's recognition gradient at K = 1 -- in ``ks_undefined``, apart from the K whose interval reaches zero
    (``ks_without_signal``): slopes fitted before the two were told apart name both as without signal."""
    def listed(value) -> list[int]:
        return [int(float(k)) for k in str(value).split(",") if k.strip() and k.strip() != "nan"]

    undefined, no_signal = [], []
    for r in fitted.itertuples():
        sub = rows[(rows.checkpoint == r.checkpoint) & (rows.estimator == r.estimator) & (rows.network == r.network)]
        nan = sorted(set(sub[sub.snr.isna()].k.astype(int)))
        undefined.append(",".join(map(str, nan)))
        no_signal.append(",".join(str(k) for k in listed(r.ks_without_signal) if k not in nan))
    return fitted.assign(ks_undefined=undefined, ks_without_signal=no_signal)


def name_with_epochs(rows, fitted):
    """The checkpoints' labels with each model's training epochs, read from its file (``model``, as ``iwae snr``
    recorded it): "trained" -> "trained (4 epochs)", so that no table, figure or sentence calls a model after 4 of
    the paper's 3,280 epochs just "trained". A label whose model file is not there is kept. -> (rows, fitted)."""
    from iwae.checkpoint import load_model

    names, trained = {}, {}
    for label, path in dict(zip(rows.checkpoint, rows.model)).items():
        if Path(path).exists():
            meta = load_model(path).metadata
            epochs = int(meta["epochs"])
            names[label] = f"{label} ({epochs} epoch{'s' if epochs != 1 else ''})"
            trained[label] = (meta["train_config"]["budget"], int(meta["train_config"]["seed"]))
    rename = lambda df: df.assign(checkpoint=df.checkpoint.map(lambda c: names.get(c, c)))  # noqa: E731
    rows = rows.assign(budget=rows.checkpoint.map(lambda c: trained.get(c, ("", None))[0]),
                       seed=rows.checkpoint.map(lambda c: trained.get(c, ("", None))[1]))
    return rename(rows), rename(fitted)


def models_note(rows) -> str:
    """The models measured: their budget and training seed (``name_with_epochs`` reads them from the files)."""
    if "budget" not in rows or not rows.budget.astype(bool).all():
        return ""
    seeds = sorted({int(s) for s in rows.seed})
    return (f" Trained at budget {', '.join(sorted(set(rows.budget)))}; training seed{'s' if len(seeds) > 1 else ''} "
            f"{', '.join(map(str, seeds))} (one model: the intervals are over the draws, not over seeds).")
