"""Evaluation as in the paper: the K=5000 log-likelihood estimate, bounds and active units.

Memory: the noise of an image batch is drawn at once, [K, ``image_batch``, d] per stochastic layer
(K=5000, 100 images: 100 MB for 50 units, 300 MB for a 2-layer model's 100 + 50), then consumed chunk
by chunk; a chunk holds at most ``max_rows`` (images x samples) rows, whose biggest tensors are the
decoder's [rows, 784] logits and per-pixel terms, about ``max_rows * 784 * 4 bytes * 3`` (47 MB at the
CPU's default 5,000 rows; larger chunks were slower there). The result does not depend on the
chunking: chunks are combined with logsumexp.
"""

from __future__ import annotations

import math
import time

import torch

from iwae.bounds import iwae_bound
from iwae.data import binarize
from iwae.model import IWAEModel

ACTIVE_THRESHOLD = 1e-2  # a unit is active if Var_x(E_q[u|x]) >= 0.01 (the paper)
AUTHORS_DDOF = 0  # the published code's np.var (the population variance)


def default_max_rows(device: torch.device) -> int:
    """Rows (images x samples) per chunk of the estimator: ~50 MB on a CPU, ~2.4 GB on a GPU, where
    bigger chunks mean fewer, fuller kernels."""
    return 250_000 if device.type == "cuda" else 5_000


@torch.inference_mode()
def log_likelihood(
    model: IWAEModel,
    x: torch.Tensor,
    k: int,
    generator: torch.Generator | None = None,
    max_rows: int = 5_000,
    image_batch: int = 100,
    active: list[torch.Tensor] | None = None,
) -> torch.Tensor:
    """L_k for each image of x ([N, 784] binary) -> [N]; k=5000 is the paper's log p(x) estimate."""
    out = []
    for start in range(0, x.shape[0], image_batch):
        xb = x[start : start + image_batch]  # [B, 784]
        b = xb.shape[0]
        noise = [torch.randn(k, b, d, generator=generator, device=x.device, dtype=x.dtype) for d in model.latent_sizes]
        chunk = max(1, max_rows // b)
        if chunk >= k:
            out.append(iwae_bound(model.log_weights(xb, k, noise=noise, active=active)))
            continue
        lse = [
            torch.logsumexp(model.log_weights(xb, n[0].shape[0], noise=n, active=active), dim=0)
            for n in zip(*(e.split(chunk, dim=0) for e in noise))
        ]
        out.append(torch.logsumexp(torch.stack(lse), dim=0) - math.log(k))
    return torch.cat(out)


@torch.inference_mode()
def activity(model: IWAEModel, x: torch.Tensor, generator: torch.Generator | None = None,
             ddof: int = AUTHORS_DDOF) -> list[torch.Tensor]:
    """A_u = Var_x(E_q[u | x]) for every unit of every stochastic layer -> list of [d_l].

    Layer 1 uses the exact posterior mean; layer l > 1 uses the mean given ONE sample of h_{l-1}.
    ddof: 0 is the published code's np.var; 1 the unbiased variance.
    """
    return [m.var(dim=0, correction=ddof) for m in model.posterior_means(x, generator=generator)]


def evaluate(
    model: IWAEModel,
    test_x: torch.Tensor,
    train_x: torch.Tensor,
    seed: int = 0,
    k: int = 5000,
    bound_ks: tuple[int, ...] = (1, 5, 50),
    train_subset: int = 1000,
    active_units_n: int = 500,
    max_rows: int | None = None,
    activity_ddof: int = AUTHORS_DDOF,
    active_only: bool = True,
    progress=None,
) -> dict:
    """All numbers of one model. test_x/train_x: grey-level probabilities [N, 784] on the model's device.

    The test images are binarised first, from ``seed``, on the CPU: every model evaluated with the same seed
    sees the same binary test images on every device (and the first n of N images are the same whatever N),
    so their per-image log-likelihoods (``test_ll_per_image``) pair up. ``active_only``: also the test
    log-likelihood with the inactive units removed (a second K-sample estimate on the test images).
    """
    device = test_x.device
    max_rows = max_rows or default_max_rows(device)
    cpu_gen = torch.Generator().manual_seed(seed)  # the binarisations; on the CPU also the samples, in this order
    gen = cpu_gen if device.type == "cpu" else torch.Generator(device=device).manual_seed(seed)
    say = progress or (lambda msg: None)
    t0 = time.perf_counter()

    def binarised(x):  # each image binarised once, as the published code
        return binarize(x.cpu(), cpu_gen).to(device)

    test_bin, train_bin, au_x = binarised(test_x), binarised(train_x[:train_subset]), binarised(train_x[:active_units_n])

    result: dict = {}
    say(f"test log-likelihood, K={k}, {test_bin.shape[0]} images")
    ll = log_likelihood(model, test_bin, k, generator=gen, max_rows=max_rows)
    result["test_ll"] = float(ll.mean())
    result["test_ll_sem"] = float(ll.std() / math.sqrt(len(ll))) if len(ll) > 1 else float("nan")
    result["test_ll_per_image"] = ll.cpu().tolist()
    result["eval_k"] = k
    result["n_test"] = int(test_bin.shape[0])
    result["test_bounds"] = {}
    for kb in sorted(set(bound_ks)):
        say(f"test bound L_{kb}")
        result["test_bounds"][f"L{kb}"] = float(log_likelihood(model, test_bin, kb, generator=gen, max_rows=max_rows).mean())
    result["test_bounds"][f"L{k}"] = result["test_ll"]
    say(f"train log-likelihood, K={k}, {train_bin.shape[0]} images")
    result["train_ll"] = float(log_likelihood(model, train_bin, k, generator=gen, max_rows=max_rows).mean())
    result["n_train_eval"] = int(train_bin.shape[0])

    say(f"active units on {au_x.shape[0]} training images")
    a_u = activity(model, au_x, generator=gen, ddof=activity_ddof)
    active = [a >= ACTIVE_THRESHOLD for a in a_u]
    result["activity"] = [a.cpu().tolist() for a in a_u]
    result["active_units"] = [int(m.sum()) for m in active]
    result["active_units_total"] = int(sum(result["active_units"]))
    result["activity_ddof"] = activity_ddof
    if active_only:
        say("test log-likelihood with the inactive units removed")
        result["test_ll_active_only"] = float(
            log_likelihood(model, test_bin, k, generator=gen, max_rows=max_rows, active=active).mean())
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    result["eval_seconds"] = time.perf_counter() - t0
    return result


def metrics_record(meta: dict, manifest: dict, result: dict, eval_config: dict, device: str, peak_memory_mb,
                   code_version: str) -> dict:
    """The metrics file of one evaluated model (what ``iwae evaluate`` writes and ``iwae.records.collect`` reads):
    ``run`` (what was trained, and how), ``train`` (the model file's metadata, without its data manifest),
    ``data`` (the manifests of training and evaluation, and whether both were verified) and ``eval`` (the result
    of ``evaluate`` with its configuration, device and code version)."""
    tc = meta["train_config"]
    return dict(
        run=dict(dataset=tc["dataset"], n_layers=meta["model_config"]["n_layers"], objective=tc["objective"],
                 k=tc["k"], seed=tc["seed"], budget=tc["budget"], continued_from=tc["init_from"],
                 protocol=dict(init=tc.get("init"), data_order=tc.get("data_order"), optimizer=tc["optimizer"],
                               continue_state=tc.get("continue_state"), activity_ddof=eval_config["activity_ddof"])),
        train={k: v for k, v in meta.items() if k != "data"},
        data=dict(train=meta["data"], eval=manifest, verified=bool(meta["data"]["verified"] and manifest["verified"])),
        eval=dict(result, device=device, peak_memory_mb=peak_memory_mb, eval_config=eval_config, eval_path="fast",
                  code_version=code_version),
    )
