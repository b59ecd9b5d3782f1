"""The gradient signal-to-noise experiment of Rainforth et al. (2018), "Tighter variational bounds are not
necessarily better": at fixed parameters, how the quality of each estimator's gradient changes with K.

For a fixed minibatch of binarised training images and fixed parameters, each estimator's gradient
(from ``iwae.objectives``: the generative gradient and the recognition gradient of the same draw)
is computed for ``draws`` independent draws of the samples; per parameter, SNR = |E[g]| / sd[g]
over the draws. Summaries per (estimator, network, K): the mean and median over the parameters
whose gradient varies. Expected with IWAE: about K^(-1/2) for the recognition network and K^(1/2)
for the generative network; with DReG the recognition SNR does not fall with K.
"""

from __future__ import annotations

import csv
import math
from pathlib import Path

import numpy as np
import torch

from iwae import objectives
from iwae.model import IWAEModel

ESTIMATORS = ("iwae", "iwae_stl", "iwae_dreg", "rws", "rws_dreg")


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


def snr(model: IWAEModel, x: torch.Tensor, k: int, estimator: str, draws: int, seed: int = 0) -> dict[str, dict]:
    """Per-network SNR summaries of ``estimator`` at K=k over ``draws`` draws (Welford's running moments)."""
    generator = torch.Generator(device=x.device).manual_seed(seed)
    stats = {}
    for i in range(draws):
        for net, g in zip(("generative", "recognition"), gradients(model, x, k, estimator, generator)):
            g = g.double()
            if net not in stats:
                stats[net] = [torch.zeros_like(g), torch.zeros_like(g)]
            mean, m2 = stats[net]
            delta = g - mean
            mean += delta / (i + 1)
            m2 += delta * (g - mean)
    out = {}
    for net, (mean, m2) in stats.items():
        sd = (m2 / (draws - 1)).sqrt()
        varies = sd > 1e-12 * (mean.abs() + 1e-30)
        ratio = (mean.abs()[varies] / sd[varies]).cpu().numpy()
        out[net] = dict(snr_mean=float(ratio.mean()), snr_median=float(np.median(ratio)), parameters=int(varies.sum()))
    return out


def fitted_slope(ks: list[int], values: list[float]) -> float:
    """Least-squares slope of log(value) against log(K)."""
    return float(np.polyfit(np.log(ks), np.log(values), 1)[0])


def run(models: dict[str, str], data_x: torch.Tensor, ks: list[int], estimators: list[str], draws: int,
        out_csv: Path, seed: int = 0, progress=print) -> list[dict]:
    """Every (checkpoint label -> model file) x estimator x K; writes and returns the rows."""
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
                progress(f"{label} {est} K={k}: SNR generative {res['generative']['snr_mean']:.4g}, "
                         f"recognition {res['recognition']['snr_mean']:.4g}")
    out_csv.parent.mkdir(parents=True, exist_ok=True)
    with out_csv.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    return rows


def slopes(rows: list[dict]) -> list[dict]:
    """The fitted log-log slope of the mean SNR against K per (checkpoint, estimator, network), over the K
    where the SNR is defined (RWS-DReG's recognition gradient is exactly zero at K = 1)."""
    groups: dict[tuple, list] = {}
    for r in rows:
        groups.setdefault((r["checkpoint"], r["estimator"], r["network"]), []).append(r)
    out = []
    for (ckpt, est, net), rs in groups.items():
        rs = sorted((r for r in rs if float(r["snr_mean"]) > 0 and math.isfinite(float(r["snr_mean"]))),
                    key=lambda r: int(r["k"]))
        ks, vals = [int(r["k"]) for r in rs], [float(r["snr_mean"]) for r in rs]
        if len(ks) > 1:
            out.append(dict(checkpoint=ckpt, estimator=est, network=net, slope=fitted_slope(ks, vals)))
    return out


def add_arguments(p) -> None:
    p.add_argument("--model", action="append", required=True, metavar="LABEL=MODEL.pt",
                   help="a checkpoint to measure at, e.g. trained=results/.../model.pt (repeat for several)")
    p.add_argument("--data-dir", default="data", help="where `iwae fetch` put the data")
    p.add_argument("--ks", default="1,10,100,1000", help="comma-separated numbers of samples")
    p.add_argument("--estimators", default=",".join(ESTIMATORS), help="comma-separated registry names")
    p.add_argument("--draws", type=int, default=1000, help="independent gradient draws per (estimator, K)")
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
        w = csv.DictWriter(f, fieldnames=["checkpoint", "estimator", "network", "slope"])
        w.writeheader()
        w.writerows(fitted)
    for s in fitted:
        print(f"{s['checkpoint']} {s['estimator']} {s['network']}: SNR ~ K^{s['slope']:+.2f}")
