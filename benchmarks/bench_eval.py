"""K=5000 evaluation: the package's batched estimator against the common per-image loop.

Both run in this one process on the same binarised test images. First both are given the same
noise (K=200) and must agree to float tolerance; then each is timed at K=5000 with its own noise.
Writes results/benchmarks/eval_<device>.csv. Usage: python benchmarks/bench_eval.py [--device cuda] [--images N]
"""

from __future__ import annotations

import argparse
import time

import torch
from common import forward_flops, matmul_rate, parse_and_setup, sync, test_images, write_csv
from plain import PlainIWAE, per_image_log_likelihood

from iwae.evaluate import default_max_rows, log_likelihood
from iwae.model import IWAEModel, ModelConfig, initialise
from iwae.runtime import device_name


def timed(fn, device):
    sync(device)
    t0 = time.perf_counter()
    out = fn()
    sync(device)
    return out, time.perf_counter() - t0


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--images", type=int, default=None, help="test images to time (default: 20 on CPU, 1000 on GPU)")
    ap.add_argument("--k", type=int, default=5000)
    args, device = parse_and_setup(ap)  # float32 throughout on CUDA (no TF32): no change to the NLL
    n = args.images or (1000 if device.type == "cuda" else 20)
    name = device_name(device)
    x, source = test_images(n, device)
    peak = matmul_rate(device)
    print(f"device: {name}; data: {source}; {n} images, K={args.k}; a 2048 x 2048 float32 matrix product: "
          f"{peak / 1e9:.1f} GFLOP/s")
    rows = []
    for layers in (1, 2):
        fast = initialise(IWAEModel(ModelConfig(layers)), "seeded", torch.zeros(784)).to(device).eval()
        plain = PlainIWAE(layers).to(device).load_from(fast).eval()
        # the same estimator: identical noise -> identical log-likelihoods
        k_check = 200
        g = torch.Generator(device=device).manual_seed(1)
        n_check = min(4, n)
        noise = [torch.randn(k_check, n_check, d, generator=g, device=device) for d in fast.latent_sizes]
        with torch.no_grad():
            lp = torch.cat([
                torch.logsumexp(plain.log_weights(x[i : i + 1], k_check, noise=[e[:, i : i + 1] for e in noise]), 0)
                for i in range(n_check)
            ]) - torch.log(torch.tensor(float(k_check)))
            lf = fast.log_weights(x[:n_check], k_check, noise=noise).logsumexp(0) - torch.log(torch.tensor(float(k_check)))
        assert torch.allclose(lf, lp, atol=1e-3), f"fast and plain estimates differ: {lf} vs {lp}"

        ll_plain, t_plain = timed(lambda: per_image_log_likelihood(plain, x, args.k), device)
        gen = torch.Generator(device=device).manual_seed(2)
        ll_fast, t_fast = timed(lambda: log_likelihood(fast, x, args.k, generator=gen, max_rows=default_max_rows(device)),
                                device)
        rows.append(dict(device=name, layers=layers, k=args.k, images=n,
                         plain_s_per_image=round(t_plain / n, 5), fast_s_per_image=round(t_fast / n, 5),
                         speedup=round(t_plain / t_fast, 2), nll_plain=round(-float(ll_plain.mean()), 3),
                         nll_fast=round(-float(ll_fast.mean()), 3),
                         projected_s_10000_test_images_fast=round(10_000 * t_fast / n, 1)))
        r = rows[-1]
        flops = forward_flops(layers, args.k, n)  # the estimator's products, counted from the shapes
        r.update(gflop=round(flops / 1e9, 2), fast_gflops=round(flops / t_fast / 1e9, 2),
                 matmul_gflops=round(peak / 1e9, 2), fast_of_matmul=round(flops / t_fast / peak, 3))
        print(f"L{layers}: per-image loop {1e3 * r['plain_s_per_image']:.1f} ms/image, fast "
              f"{1e3 * r['fast_s_per_image']:.1f} ms/image, speedup x{r['speedup']:.2f}; "
              f"NLL {r['nll_plain']} vs {r['nll_fast']}; 10,000 test images: {r['projected_s_10000_test_images_fast']} s; "
              f"{r['fast_gflops']:.1f} GFLOP/s = {100 * r['fast_of_matmul']:.0f}% of the matrix product's rate")
    tag = "cuda" if device.type == "cuda" else "cpu"
    print(f"wrote {write_csv(rows, f'eval_{tag}.csv')}")


if __name__ == "__main__":
    main()
