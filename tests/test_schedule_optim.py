"""The paper's schedule, and the optimiser variants (the published update is tested in test_authors.py)."""

from __future__ import annotations

import pytest
import torch

from iwae.optim import FlatAdam, FlatParameters
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


def test_optimizer_choices():
    params = FlatParameters(torch.nn.Linear(2, 1))
    assert FlatAdam(params, 1e-3).betas == (0.99, 0.999)
    assert FlatAdam(params, 1e-3, variant="paper_text").betas == (0.9, 0.999)
    assert torch.equal(FlatAdam(params, 1e-3, variant="paper_text").v, torch.zeros(3))  # torch's Adam
    assert torch.equal(FlatAdam(params, 1e-3).v, torch.ones(3))  # the published code's
    with pytest.raises(ValueError, match="unknown optimizer"):
        FlatAdam(params, 1e-3, variant="sgd")
