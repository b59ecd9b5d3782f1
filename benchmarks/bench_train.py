"""Training step: the package against a plain reference, stacks of M models, and Adam's update order.

In one process, on the same MNIST images, for 1 and 2 stochastic layers and K in {1, 5, 50}, it times
one full training step (minibatch binarisation, noise, forward, backward, the published Adam):
- plain: the obvious eager PyTorch (benchmarks/plain.py), after checking both give the same loss;
- fast: the package's step for one model (iwae.stack.Stack with M = 1, what `iwae train` runs);
- stacked: the same step for M = 2 and M = 10 models trained together, per model;
- compiled: the fast step compiled by torch.compile (``--step compiled``; compilation is in the warm-up, not timed);
- torch order: the fast step with Adam in torch's order instead of the published (Theano's) order:
  what following the authors' order costs, as whole steps and, more precisely, as the difference of
  the two optimiser updates timed alone (the rest of the step is the same code) over the step's time.
The variants take turns within each round; each is summarised by its best round. Writes
results/benchmarks/train_<device>.csv. Usage: python benchmarks/bench_train.py [--device cuda] [--threads N]
"""

from __future__ import annotations

import argparse

import torch
from common import make_stack, start, step_flops, sync, time_rounds, write_csv
from plain import PlainAdamTorchOrder, PlainIWAE

from iwae.bounds import iwae_bound
from iwae.checkpoint import member_state_dict
from iwae.model import IWAEModel, ModelConfig


def stack_of(grey: torch.Tensor, layers: int, k: int, members: int, optimizer: str = "published", mode: str = "eager"):
    """M IWAE models with independent initial weights (init seeded), as `iwae train` steps them."""
    return make_stack(grey, layers, k, members, mode=mode, objective="iwae", init="seeded", optimizer=optimizer)


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--rounds", type=int, default=None, help="timing rounds (default: 10, 5 at K=50 on CPU)")
    args, device, name, grey, source, peak = start(ap)  # peak: the machine's practical limit, measured in this run
    print(f"device: {name}; data: {source}; minibatch 20; a 2048 x 2048 float32 matrix product: {peak / 1e9:.1f} "
          f"GFLOP/s (the rate each step is compared with)")
    rows = []
    for layers in (1, 2):
        for k in (1, 5, 50):
            fast = stack_of(grey, layers, k, 1)
            single = IWAEModel(ModelConfig(layers))
            single.load_state_dict(member_state_dict(fast.model, 0))
            plain = PlainIWAE(layers).to(device).load_from(single)
            x = (torch.rand(20, 784, generator=torch.Generator().manual_seed(3)).to(device) < grey[:20]).float()
            g = torch.Generator(device=device).manual_seed(1)
            noise = [torch.randn(1, k, 20, d, generator=g, device=device) for d in fast.model.latent_sizes]
            with torch.no_grad():  # the same loss on the same inputs and noise
                lf = float(-iwae_bound(fast.model.log_weights(x[None], k, noise=noise)).sum())
                lp = float(plain.loss(x, k, "iwae", noise=[e[0] for e in noise]))
            assert abs(lf - lp) <= 1e-4 * abs(lp), f"fast and plain losses differ: {lf} vs {lp}"
            opt_p = PlainAdamTorchOrder(plain.parameters(), lr=1e-4)
            gen = torch.Generator(device=device).manual_seed(2)

            def plain_step():
                xb = (torch.rand(20, 784, generator=gen, device=device) < grey[:20]).float()
                loss = plain.loss(xb, k, "iwae")
                opt_p.zero_grad()
                loss.backward()
                opt_p.step()

            torch_order = stack_of(grey, layers, k, 1, "published_torch_order")
            compiled = stack_of(grey, layers, k, 1, mode="compiled")
            variants = dict(plain=plain_step, fast=fast.step, compiled=compiled.step, torch_order=torch_order.step)
            stacks = {m: stack_of(grey, layers, k, m) for m in (2, 10)}
            variants.update({f"stack{m}": s.step for m, s in stacks.items()})
            cpu_k50 = device.type == "cpu" and k == 50
            t = time_rounds(variants, device, rounds=args.rounds or (5 if cpu_k50 else 10), number=2 if cpu_k50 else 10)
            best = {v: 1e3 * min(ts) for v, ts in t.items()}
            # The two orders differ only in the optimiser's part of the step: timed alone, many short rounds
            # (a whole-step difference of a few percent drowns in a shared machine's noise).
            t_opt = time_rounds(dict(published=fast.opt.step, torch_order=torch_order.opt.step), device,
                                rounds=200, number=20)
            extra_ms = 1e3 * (min(t_opt["published"]) - min(t_opt["torch_order"]))
            per_model = {1: best["fast"], 2: best["stack2"] / 2, 10: best["stack10"] / 10}
            rows.append(dict(device=name, layers=layers, k=k, plain_ms=round(best["plain"], 3),
                             fast_ms=round(best["fast"], 3), speedup=round(best["plain"] / best["fast"], 2),
                             compiled_ms=round(best["compiled"], 3),
                             compiled_vs_fast=round(best["fast"] / best["compiled"], 2),
                             m2_ms_per_model=round(per_model[2], 3), m10_ms_per_model=round(per_model[10], 3),
                             stack2_ratio=round(per_model[1] / per_model[2], 2),
                             stack10_ratio=round(per_model[1] / per_model[10], 2),
                             torch_order_ms=round(best["torch_order"], 3),
                             whole_step_order_diff_pct=round(100 * (best["fast"] / best["torch_order"] - 1), 1),
                             published_order_extra_ms=round(extra_ms, 4),
                             published_order_cost_pct=round(100 * extra_ms / best["fast"], 2),
                             loss_fast=round(lf, 3), loss_plain=round(lp, 3)))
            r = rows[-1]
            flops = step_flops(layers, k)  # counted from the shapes (benchmarks/common.py)
            r.update(mflop_per_step=round(flops / 1e6, 1), fast_gflops=round(flops / best["fast"] / 1e6, 2),
                     compiled_gflops=round(flops / best["compiled"] / 1e6, 2), matmul_gflops=round(peak / 1e9, 2),
                     fast_of_matmul=round(flops / best["fast"] * 1e3 / peak, 3),
                     compiled_of_matmul=round(flops / best["compiled"] * 1e3 / peak, 3))
            print(f"L{layers} k={k:>2}: plain {r['plain_ms']:8.3f} ms  fast {r['fast_ms']:8.3f} ms (x{r['speedup']:.2f})"
                  f"  compiled {r['compiled_ms']:8.3f} ms (x{r['compiled_vs_fast']:.2f} of fast)"
                  f" | per model stacked: M=2 {r['m2_ms_per_model']:.3f} ms (x{r['stack2_ratio']:.2f}), "
                  f"M=10 {r['m10_ms_per_model']:.3f} ms (x{r['stack10_ratio']:.2f})"
                  f" | Theano's order: {r['published_order_extra_ms']:+.4f} ms = {r['published_order_cost_pct']:+.2f}% of the step"
                  f" (whole steps: {r['whole_step_order_diff_pct']:+.1f}%)"
                  f" | {r['mflop_per_step']:.0f} MFLOP/step: fast {r['fast_gflops']:.1f} GFLOP/s = "
                  f"{100 * r['fast_of_matmul']:.0f}% of the matrix product's rate, compiled "
                  f"{100 * r['compiled_of_matmul']:.0f}%", flush=True)
            del fast, stacks, torch_order, compiled
            sync(device)
    tag = "cuda" if device.type == "cuda" else "cpu"
    print(f"wrote {write_csv(rows, f'train_{tag}.csv')}")


if __name__ == "__main__":
    main()
