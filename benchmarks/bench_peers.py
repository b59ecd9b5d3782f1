"""The suite against what a user would pick instead: pythae's IWAE (pip install pythae; `make bench-peers` installs it).

In one process, on the same binarised MNIST images and device, for the paper's 1-layer model (784-200-200-50
tanh, Bernoulli output; pythae's IWAE with an encoder and decoder of those sizes and activations, its loss,
torch's Adam):
1. the same thing first: the suite's weights copied into pythae's networks (log-sigma heads doubled into
   pythae's log-variance, logits into its sigmoid probabilities); on the same images and the same noise both give
   the same log weights (checked through pythae's own loss value, the w~-weighted mean of log w) and the same
   gradient (pythae averages over the minibatch, the suite sums: x20), within float32 tolerance;
   pythae's ``get_nll`` (K=5000) and the suite's K=5000 estimator on the same test images agree within their
   Monte Carlo error (two estimates of the suite's with different noise give its size);
2. then the time: a training step (binarise a minibatch of 20, forward, backward, the optimiser) at K = 1, 5, 50,
   pythae's and the suite's taking turns in each round, the best round of each; and the K=5000 log-likelihood of
   the same test images, pythae's ``get_nll`` (as a user calls it) against the suite's estimator.
Each step's and estimate's arithmetic rate (the matrix products counted from the shapes) beside a large matrix
product's, measured in this run. Writes results/benchmarks/peers_<device>.csv.
Usage: python benchmarks/bench_peers.py [--device cuda] [--threads N] [--images 50] [--rounds 10]
"""

from __future__ import annotations

import argparse
import math
import time

import torch
from common import REPO, forward_flops, make_stack, start, step_flops, sync, test_images, time_rounds, write_csv
from torch import nn

from iwae.evaluate import log_likelihood

try:
    from pythae.models import IWAE, IWAEConfig
    from pythae.models.base.base_utils import ModelOutput
    from pythae.models.nn import BaseDecoder, BaseEncoder
except ImportError as e:  # an optional dependency: only this benchmark needs it
    raise SystemExit(f"pythae is not installed ({e}); `make bench-peers` installs it (pip install pythae==0.1.2)")

TRAINED = REPO / "docs" / "paper-cpu" / "state" / "results" / "mnist" / "L1" / "iwae-k5" / "seed0" / "stages"


class Encoder(BaseEncoder):
    """The paper's q(z|x) in pythae's terms: 784-200-200 tanh, then the mean and the log-variance of z (50)."""

    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(784, 200), nn.Tanh(), nn.Linear(200, 200), nn.Tanh())
        self.mean, self.log_var = nn.Linear(200, 50), nn.Linear(200, 50)

    def forward(self, x):
        h = self.net(x.reshape(x.shape[0], -1))
        return ModelOutput(embedding=self.mean(h), log_covariance=self.log_var(h))


class Decoder(BaseDecoder):
    """The paper's p(x|z) in pythae's terms: 50-200-200 tanh, then the Bernoulli means (sigmoid) of the 784 pixels."""

    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(50, 200), nn.Tanh(), nn.Linear(200, 200), nn.Tanh(), nn.Linear(200, 784),
                                 nn.Sigmoid())

    def forward(self, z):
        return ModelOutput(reconstruction=self.net(z))


def pythae_model(k: int, suite_model=None) -> IWAE:
    """pythae's IWAE with K samples, its networks holding ``suite_model``'s weights when given (the suite's
    ``IWAEModel`` of 1 layer): log sigma -> log variance = 2 log sigma, logits -> sigmoid."""
    model = IWAE(IWAEConfig(input_dim=(784,), latent_dim=50, number_samples=k, reconstruction_loss="bce"),
                 encoder=Encoder(), decoder=Decoder())
    if suite_model is not None:
        q, p = suite_model.q_layers[0], suite_model.p_x
        with torch.no_grad():
            enc, dec = model.encoder, model.decoder
            for ours, theirs in ((q.mlp.l1, enc.net[0]), (q.mlp.l2, enc.net[2]), (p.mlp.l1, dec.net[0]),
                                 (p.mlp.l2, dec.net[2]), (p.head, dec.net[4])):
                theirs.weight.copy_(ours.weight.reshape(theirs.weight.shape))
                theirs.bias.copy_(ours.bias.reshape(theirs.bias.shape))
            w, b = q.head.weight.reshape(100, 200), q.head.bias.reshape(100)
            enc.mean.weight.copy_(w[:50]), enc.mean.bias.copy_(b[:50])
            enc.log_var.weight.copy_(2 * w[50:]), enc.log_var.bias.copy_(2 * b[50:])
    return model


def same_bound_and_gradient(suite_model, x: torch.Tensor, k: int, device) -> dict:
    """pythae's loss and gradient against the suite's on the same images and noise; -> the largest differences."""
    theirs = pythae_model(k, suite_model).to(device)
    eps = torch.randn(x.shape[0], k, 50, generator=torch.Generator(device=device).manual_seed(5), device=device)
    theirs._sample_gauss = lambda mu, std: (mu + eps * std, eps)  # pythae's draws replaced by ours
    out = theirs({"data": x})
    out.loss.backward()
    log_w = suite_model.log_weights(x, k, noise=[eps.transpose(0, 1)])  # [K, B]
    w = torch.softmax(log_w, 0).detach()
    value = -(w * log_w).sum(0).mean()  # what pythae's loss computes, from the suite's log weights
    suite_model.zero_grad()
    (-(torch.logsumexp(log_w, 0) - math.log(k)).sum()).backward()  # the suite's loss: -L_K summed over images
    q, p, enc, dec = suite_model.q_layers[0], suite_model.p_x, theirs.encoder, theirs.decoder
    head = q.head.weight.grad.reshape(100, 200)  # the suite's mean and log-sigma heads, one matrix
    pairs = [(q.mlp.l1.weight.grad, enc.net[0].weight.grad), (q.mlp.l2.weight.grad, enc.net[2].weight.grad),
             (head[:50], enc.mean.weight.grad), (head[50:], 2 * enc.log_var.weight.grad),  # log var = 2 log sigma
             (p.mlp.l1.weight.grad, dec.net[0].weight.grad), (p.mlp.l2.weight.grad, dec.net[2].weight.grad),
             (p.head.weight.grad, dec.net[4].weight.grad)]
    batch = x.shape[0]  # pythae's loss is a mean over the minibatch, the suite's a sum
    grad_diff = max(float((ours.reshape(t.shape) - batch * t).abs().max() / (batch * t).abs().max())
                    for ours, t in pairs)
    return dict(loss_pythae=float(out.loss), loss_suite=float(value),
                loss_rel_diff=abs(float(out.loss) - float(value)) / abs(float(value)), grad_rel_diff=grad_diff)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--images", type=int, default=None, help="test images of the K=5000 comparison (default: 50 "
                                                            "on CPU, 500 on GPU)")
    ap.add_argument("--rounds", type=int, default=10)
    args, device, name, grey, source, peak = start(ap)
    print(f"device: {name}; threads: {torch.get_num_threads()}; data: {source}; a 2048 x 2048 float32 matrix "
          f"product: {peak / 1e9:.1f} GFLOP/s")
    from iwae.checkpoint import load_model

    snapshot = next(iter(sorted(TRAINED.glob("stage*.pt"), reverse=True)), None)
    suite_model = (load_model(snapshot) if snapshot else make_stack(grey, 1, 5, 1, objective="iwae").model).to(device)
    if snapshot is None:  # a stack of one: its member as one model
        from iwae.model import IWAEModel, ModelConfig
        single = IWAEModel(ModelConfig(1))
        single.load_state_dict({n: t[0] for n, t in suite_model.state_dict().items()})
        suite_model = single.to(device)
    which = f"the trained model {snapshot.relative_to(REPO)}" if snapshot else "the authors' initial weights"
    rows = []

    # 1. the same thing
    x = (torch.rand(20, 784, generator=torch.Generator().manual_seed(3)).to(device) < grey[:20]).float()
    for k in (1, 5, 50):
        check = same_bound_and_gradient(suite_model, x, k, device)
        print(f"K={k:>2}, {which}: pythae's loss {check['loss_pythae']:.4f}, the same from the suite's log weights "
              f"{check['loss_suite']:.4f} (rel. diff {check['loss_rel_diff']:.1e}); gradients rel. diff "
              f"{check['grad_rel_diff']:.1e}")
        assert check["loss_rel_diff"] < 1e-4 and check["grad_rel_diff"] < 1e-3, check
        rows.append(dict(device=name, what="same bound and gradient", k=k, **check))
    n = args.images or (500 if device.type == "cuda" else 50)
    xt, _ = test_images(n, device)
    theirs = pythae_model(5000, suite_model).to(device).eval()
    sync(device)
    t0 = time.perf_counter()
    nll_pythae = -theirs.get_nll(xt, n_samples=5000, batch_size=100)
    sync(device)
    t_pythae = time.perf_counter() - t0
    sync(device)
    t0 = time.perf_counter()
    ll_a = log_likelihood(suite_model.eval(), xt, 5000, generator=torch.Generator(device=device).manual_seed(1))
    sync(device)
    t_suite = time.perf_counter() - t0
    ll_b = log_likelihood(suite_model, xt, 5000, generator=torch.Generator(device=device).manual_seed(2))
    # the Monte Carlo error of a K=5000 mean NLL over n images: half the sd of the two estimates' differences, / sqrt(n)
    mc_se = float((ll_a - ll_b).std() / math.sqrt(2 * n))
    nll_suite = -float(ll_a.mean())
    print(f"K=5000 NLL of {n} test images: pythae {nll_pythae:.3f}, the suite {nll_suite:.3f} (Monte Carlo s.e. "
          f"{mc_se:.3f}; difference {nll_pythae - nll_suite:+.3f})")
    assert abs(nll_pythae - nll_suite) < 4 * mc_se * math.sqrt(2) + 1e-3, (nll_pythae, nll_suite, mc_se)
    flops = forward_flops(1, 5000, n)
    rows.append(dict(device=name, what="K=5000 NLL", k=5000, images=n, nll_pythae=nll_pythae, nll_suite=nll_suite,
                     mc_se=mc_se, s_per_image_pythae=t_pythae / n, s_per_image_suite=t_suite / n,
                     suite_speedup=t_pythae / t_suite, gflops_pythae=flops / t_pythae / 1e9,
                     gflops_suite=flops / t_suite / 1e9, of_matmul_pythae=flops / t_pythae / peak,
                     of_matmul_suite=flops / t_suite / peak))
    r = rows[-1]
    print(f"  time: pythae get_nll {1e3 * r['s_per_image_pythae']:.0f} ms/image, the suite "
          f"{1e3 * r['s_per_image_suite']:.0f} ms/image: the suite {r['suite_speedup']:.1f}x faster; "
          f"{100 * r['of_matmul_pythae']:.0f}% and {100 * r['of_matmul_suite']:.0f}% of the matrix product's rate",
          flush=True)

    # 2. the training step
    for k in (1, 5, 50):
        ours = make_stack(grey, 1, k, 1, objective="iwae")
        theirs = pythae_model(k).to(device).train()
        opt = torch.optim.Adam(theirs.parameters(), lr=1e-3, betas=(0.9, 0.999), eps=1e-4)
        gen = torch.Generator(device=device).manual_seed(2)
        order = torch.randperm(grey.shape[0], generator=torch.Generator().manual_seed(0)).to(device)
        state = {"i": 0}

        def pythae_step():
            rows_ = order[state["i"] % 100 * 20: state["i"] % 100 * 20 + 20]
            state["i"] += 1
            xb = (torch.rand(20, 784, generator=gen, device=device) < grey[rows_]).float()
            loss = theirs({"data": xb}).loss
            opt.zero_grad()
            loss.backward()
            opt.step()

        cpu50 = device.type == "cpu" and k == 50
        t = time_rounds(dict(pythae=pythae_step, suite=ours.step), device, rounds=args.rounds,
                        number=2 if cpu50 else 10)
        best = {v: min(ts) for v, ts in t.items()}
        flops = step_flops(1, k)
        rows.append(dict(device=name, what="training step", k=k, ms_pythae=1e3 * best["pythae"],
                         ms_suite=1e3 * best["suite"], suite_speedup=best["pythae"] / best["suite"],
                         gflops_pythae=flops / best["pythae"] / 1e9, gflops_suite=flops / best["suite"] / 1e9,
                         of_matmul_pythae=flops / best["pythae"] / peak, of_matmul_suite=flops / best["suite"] / peak))
        r = rows[-1]
        print(f"training step K={k:>2}: pythae {r['ms_pythae']:.2f} ms, the suite {r['ms_suite']:.2f} ms: the suite "
              f"{r['suite_speedup']:.2f}x faster; {100 * r['of_matmul_pythae']:.0f}% and "
              f"{100 * r['of_matmul_suite']:.0f}% of the matrix product's rate", flush=True)
    for r in rows:
        r["matmul_gflops"] = round(peak / 1e9, 2)
        r["threads"] = torch.get_num_threads()
    tag = "cuda" if device.type == "cuda" else "cpu"
    print(f"wrote {write_csv(rows, f'peers_{tag}.csv')}")


if __name__ == "__main__":
    main()
