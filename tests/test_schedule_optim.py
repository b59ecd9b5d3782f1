"""The paper's schedule and the published code's Adam, against their definitions."""

from __future__ import annotations

import math

import pytest
import torch

from iwae.optim import PublishedAdam, make_optimizer
from iwae.schedule import epoch_plan, schedule


def test_paper_schedule():
    stages = schedule()
    assert [s.epochs for s in stages] == [1, 3, 9, 27, 81, 243, 729, 2187]
    assert sum(s.epochs for s in stages) == 3280
    expected = [1e-3, 7.2e-4, 5.2e-4, 3.7e-4, 2.7e-4, 1.9e-4, 1.4e-4, 1e-4]
    assert [s.lr for s in stages] == pytest.approx(expected, rel=1e-12)
    plan = epoch_plan(stages)
    assert len(plan) == 3280 and plan[0] == (0, pytest.approx(1e-3)) and plan[-1][0] == 7


def test_reduced_schedule():
    assert [s.epochs for s in schedule([0, 1, 2], epoch_scale=0.1)] == [1, 1, 1]
    assert [(s.index, s.epochs) for s in schedule([7], epoch_scale=0.01)] == [(7, 22)]
    with pytest.raises(ValueError, match="outside the paper's schedule"):
        schedule([8])
    with pytest.raises(ValueError, match="increasing"):
        schedule([2, 1])


def reference_published_adam(params, grads_per_step, lr, b1=0.99, b2=0.999, eps=1e-4):
    """The published update written literally, one parameter at a time."""
    params = [p.clone() for p in params]
    m = [torch.zeros_like(p) for p in params]
    v = [torch.ones_like(p) for p in params]
    for t, grads in enumerate(grads_per_step, start=1):
        for i, g in enumerate(grads):
            m[i] = b1 * m[i] + (1 - b1) * g
            v[i] = b2 * v[i] + (1 - b2) * g**2
            step = lr * math.sqrt(1 - b2**t) / (1 - b1**t)
            params[i] = params[i] - step * m[i] / (torch.sqrt(v[i]) + eps)
    return params


@pytest.mark.parametrize("fused", [True, False], ids=["fused", "foreach"])
def test_published_adam_matches_its_definition(fused):
    g = torch.Generator().manual_seed(0)
    params = [torch.randn(5, 3, generator=g, dtype=torch.float64), torch.randn(4, generator=g, dtype=torch.float64)]
    grads = [[10 * torch.randn_like(p) for p in params] for _ in range(6)]
    ours = [p.clone().requires_grad_() for p in params]
    opt = PublishedAdam(ours, lr=1e-3, fused=fused)
    for step in grads:
        for p, gr in zip(ours, step):
            p.grad = gr.clone()
        opt.step()
        if step is grads[2]:  # a checkpoint mid-run: a new optimiser loaded from it goes on identically
            state = opt.state_dict()
            opt = PublishedAdam(ours, lr=1e-3, fused=fused)
            opt.load_state_dict(state)
    for a, b in zip(ours, reference_published_adam(params, grads, 1e-3)):
        assert torch.allclose(a.detach(), b, rtol=0, atol=1e-12)
    # the first step differs from torch's Adam (v starts at ones, beta1 = 0.99)
    assert not torch.allclose(ours[0].detach(), params[0])


def test_optimizer_choices():
    p = [torch.zeros(2, requires_grad=True)]
    assert isinstance(make_optimizer("published", p, 1e-3), PublishedAdam)
    assert make_optimizer("paper_text", p, 1e-3).defaults["betas"] == (0.9, 0.999)
    with pytest.raises(ValueError, match="unknown optimizer"):
        make_optimizer("sgd", p, 1e-3)
