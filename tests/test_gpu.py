"""CUDA: the step on the GPU against the CPU, the captured step against the eager one, the K=5000 estimate,
a captured run stopped and resumed.

Skipped without a CUDA GPU (CI has none); benchmarks/gpu_check.sh runs them on one.
"""

from __future__ import annotations

import pytest
import torch
from conftest import assert_same_models, sixty_steps, two_groups_alone

from iwae.bounds import iwae_bound
from iwae.checkpoint import load_model
from iwae.config import TrainConfig
from iwae.model import IWAEModel, ModelConfig, initialise, stack
from iwae.optim import FlatAdam, FlatParameters
from iwae.runtime import no_tf32
from iwae.train import Interrupted, train

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (benchmarks/gpu_check.sh)")
CUDA = torch.device("cuda")


@pytest.fixture(autouse=True)
def float32_exactly():
    no_tf32()


def model(layers, seed=0):
    return initialise(IWAEModel(ModelConfig(layers)), "seeded", torch.zeros(784), seed=seed)


@pytest.mark.parametrize("layers", [1, 2])
def test_cuda_steps_match_cpu_on_the_same_draws(layers):
    """Ten published-Adam steps (minibatch 20, K=5) on the same minibatches and noise: losses within 1e-4
    relative, parameters within 1e-5 (float32, no TF32)."""
    g = torch.Generator().manual_seed(0)
    draws = [((torch.rand(1, 20, 784, generator=g) < 0.3).float(),
              [torch.randn(1, 5, 20, d, generator=g) for d in model(layers).latent_sizes]) for _ in range(10)]
    results = {}
    for device in (torch.device("cpu"), CUDA):
        m = stack([model(layers)]).to(device)
        params = FlatParameters(m)
        opt = FlatAdam(params, lr=1e-3)
        losses = []
        for x, noise in draws:
            loss = -iwae_bound(m.log_weights(x.to(device), 5, noise=[e.to(device) for e in noise])).sum()
            params.zero_grad()
            loss.backward()
            opt.step()
            losses.append(float(loss))
        results[device.type] = (losses, params.flat.detach().cpu().clone())
    assert results["cuda"][0] == pytest.approx(results["cpu"][0], rel=1e-4)
    assert torch.allclose(results["cuda"][1], results["cpu"][1], rtol=0, atol=1e-5)


@pytest.mark.parametrize("members", [1, 3])
@pytest.mark.parametrize("mode", ["captured", "compiled", "fused"])
def test_captured_and_fused_steps_match_eager(members, mode):
    """A stack trained 60 steps eagerly and 60 steps run another way (captured as a CUDA graph: 3 eager warm-up
    steps, then replays; compiled by torch.compile; fused: both), from the same seeds: the same per-epoch losses
    and final parameters within 1e-5."""
    grey = torch.rand(400, 784, generator=torch.Generator().manual_seed(1)).to(CUDA) * 0.5
    objectives = ("iwae", "vae", "iwae_dreg")[:members]
    ref, other = sixty_steps(objectives, grey, "eager"), sixty_steps(objectives, grey, mode)
    assert torch.allclose(other[0], ref[0], rtol=1e-4)
    assert torch.allclose(other[1], ref[1], rtol=0, atol=1e-5)


@pytest.mark.parametrize("layers", [1, 2])
def test_k5000_estimate_matches_cpu(layers):
    """L_5000 per image on the GPU within 0.01 nats of the CPU's, on the same noise (float32)."""
    m = model(layers).eval()
    g = torch.Generator().manual_seed(2)
    x = (torch.rand(4, 784, generator=g) < 0.3).float()
    noise = [torch.randn(5000, 4, d, generator=g) for d in m.latent_sizes]
    with torch.no_grad():
        cpu = iwae_bound(m.log_weights(x, 5000, noise=noise))
        gpu = iwae_bound(m.to(CUDA).log_weights(x.to(CUDA), 5000, noise=[e.to(CUDA) for e in noise])).cpu()
    assert torch.allclose(gpu, cpu, rtol=0, atol=0.01), (gpu - cpu).abs().max()


@pytest.mark.parametrize("step", ["auto", "fused"])
def test_captured_run_stopped_and_resumed_matches_the_uninterrupted_one(fake_data_dir, tmp_path, step):
    """`iwae train` on CUDA with the default step (auto = captured) and the fused one: a stack stopped mid-epoch
    (as on SIGTERM) and resumed from its checkpoint ends where the uninterrupted run ends (parameters within
    1e-5)."""
    cfgs = [TrainConfig(objective=o, k=5, seed=s, stages=[0, 1], train_subset=400, data_order="reshuffle")
            for o, s in (("vae", 0), ("iwae", 1))]

    def outs(root):
        return [root / f"{c.objective}" for c in cfgs]

    train(cfgs, fake_data_dir, outs(tmp_path / "ref"), CUDA, progress=False, checkpoint_minutes=1e9, step_mode=step)
    polls = {"n": 0}

    def stop_after_30_steps():  # polled after every step: stop in the second epoch, mid-way
        polls["n"] += 1
        return polls["n"] == 30

    with pytest.raises(Interrupted):
        train(cfgs, fake_data_dir, outs(tmp_path / "cut"), CUDA, progress=False, checkpoint_minutes=1e9,
              should_stop=stop_after_30_steps, step_mode=step)
    metas = train(cfgs, fake_data_dir, outs(tmp_path / "cut"), CUDA, progress=False, checkpoint_minutes=1e9,
                  step_mode=step)
    assert all(m["train_path"] == f"stacked {'captured' if step == 'auto' else step}" for m in metas)
    for a, b in zip(outs(tmp_path / "ref"), outs(tmp_path / "cut")):
        ref, cut = load_model(a / "model.pt").state_dict(), load_model(b / "model.pt").state_dict()
        for name in ref:
            assert torch.allclose(ref[name], cut[name], rtol=0, atol=1e-5), (a.name, name)


def test_stacks_trained_together_on_streams_end_as_trained_alone(fake_data_dir, tmp_path):
    """Two groups taking turns in one process, each replaying its captured step on its own CUDA stream
    (train_together): each member ends where its group trained alone ends (within 1e-5)."""
    from iwae.train import Run, train_together

    groups, alone, together = two_groups_alone(fake_data_dir, tmp_path, CUDA)
    train_together([Run(c, fake_data_dir, o, CUDA, progress=False, together=2) for c, o in zip(groups, together)])
    assert_same_models(alone, together, atol=1e-5)
