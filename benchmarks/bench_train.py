"""Training step: the package's fast path against the plain reference, in one run, same data.

For K in {1, 5, 50} and 1 and 2 stochastic layers: checks that both compute the same loss on the
same inputs and noise, then times one full step (noise, forward, backward, published Adam) of each
and prints the ratio. Writes results/benchmarks/train_<device>.csv. Usage: python benchmarks/bench_train.py [--device cuda]
"""

from __future__ import annotations

import argparse

import torch

from common import parse_and_setup, summarise, test_images, time_rounds, write_csv
from plain import PlainIWAE, PlainPublishedAdam

from iwae.bounds import objective
from iwae.model import IWAEModel, ModelConfig
from iwae.optim import PublishedAdam, flatten_parameters
from iwae.runtime import device_name
from iwae.schedule import schedule


def main():
    _, device = parse_and_setup(argparse.ArgumentParser(description=__doc__))
    name = device_name(device)
    x, source = test_images(20, device)
    print(f"device: {name}; data: {source}; minibatch 20")
    rows = []
    for layers in (1, 2):
        for k in (1, 5, 50):
            fast = IWAEModel(ModelConfig(layers), generator=torch.Generator().manual_seed(0)).to(device)
            plain = PlainIWAE(layers).to(device).load_from(fast)
            # same loss on the same inputs and noise
            g = torch.Generator(device=device).manual_seed(1)
            noise = [torch.randn(k, 20, d, generator=g, device=device) for d in fast.latent_sizes]
            with torch.no_grad():
                lf = float(-objective("iwae", fast.log_weights(x, k, noise=noise)).sum())
                lp = float(plain.loss(x, k, "iwae", noise=noise))
            assert abs(lf - lp) <= 1e-4 * abs(lp), f"fast and plain losses differ: {lf} vs {lp}"

            flat = flatten_parameters(fast)
            opt_f, opt_p = PublishedAdam([flat], lr=1e-4), PlainPublishedAdam(plain.parameters(), lr=1e-4)
            gen = torch.Generator(device=device).manual_seed(2)

            def fast_step():
                loss = -objective("iwae", fast.log_weights(x, k, generator=gen)).sum()
                flat.grad.zero_()
                loss.backward()
                opt_f.step()

            def plain_step():
                loss = plain.loss(x, k, "iwae")
                opt_p.zero_grad()
                loss.backward()
                opt_p.step()

            number = 10 if k < 50 or device.type == "cuda" else 2
            t = time_rounds(dict(plain=plain_step, fast=fast_step), device, number=number)
            t_plain, t_fast, speedup = summarise(t["plain"], t["fast"])
            updates = sum(s.epochs for s in schedule()) * 2980  # the paper's MNIST schedule
            rows.append(dict(device=name, layers=layers, k=k, plain_ms=round(1e3 * t_plain, 3),
                             fast_ms=round(1e3 * t_fast, 3), speedup=round(speedup, 2),
                             loss_fast=round(lf, 3), loss_plain=round(lp, 3),
                             paper_schedule_hours_fast=round(updates * t_fast / 3600, 2)))
            r = rows[-1]
            print(f"L{layers} k={k:>2}: plain {r['plain_ms']:8.3f} ms  fast {r['fast_ms']:8.3f} ms  "
                  f"speedup x{r['speedup']:.2f}  (MNIST paper schedule: {r['paper_schedule_hours_fast']} h)")
    tag = "cuda" if device.type == "cuda" else "cpu"
    print(f"wrote {write_csv(rows, f'train_{tag}.csv')}")


if __name__ == "__main__":
    main()
