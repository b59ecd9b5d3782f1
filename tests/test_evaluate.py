"""The K=5000 estimator's batching, and active-unit counting on a model with known active units."""

from __future__ import annotations

import pytest
import torch

from iwae.evaluate import ACTIVE_THRESHOLD, activity, log_likelihood
from iwae.model import IWAEModel, ModelConfig, initialise


def seeded(layers):
    return initialise(IWAEModel(ModelConfig(layers)), "seeded", torch.zeros(784), seed=0).eval()


@pytest.mark.parametrize("layers", [1, 2])
def test_batched_equals_unbatched(layers):
    torch.manual_seed(0)
    model = seeded(layers)
    x = (torch.rand(7, 784) < 0.3).float()
    k = 600
    full = log_likelihood(model, x, k, generator=torch.Generator().manual_seed(1), max_rows=10**9, image_batch=7)
    chunked = log_likelihood(model, x, k, generator=torch.Generator().manual_seed(1), max_rows=7 * 45, image_batch=7)
    assert torch.allclose(full, chunked, atol=1e-4)
    # and the K=1 bound is a lower estimate of the K=600 one on average
    l1 = log_likelihood(model, x, 1, generator=torch.Generator().manual_seed(2))
    assert float(l1.mean()) < float(full.mean())


def test_active_units_on_a_constructed_model():
    torch.manual_seed(0)
    model = seeded(2)
    active1 = torch.zeros(100, dtype=torch.bool)
    active1[[3, 17, 42, 99]] = True
    active2 = torch.zeros(50, dtype=torch.bool)
    active2[[0, 7]] = True
    with torch.no_grad():
        for layer, act in zip(model.q_layers, (active1, active2)):
            w = layer.head.weight  # rows [:d] give the mean
            d = act.numel()
            w[:d][~act] = 0.0  # these means ignore the input: Var_x = 0
            w[:d][act] *= 20.0  # these vary strongly with x
            layer.head.bias.zero_()
    x = (torch.rand(500, 784) < 0.3).float()
    a_u = activity(model, x, generator=torch.Generator().manual_seed(0))
    assert torch.equal(a_u[0] >= ACTIVE_THRESHOLD, active1)
    assert torch.equal(a_u[1] >= ACTIVE_THRESHOLD, active2)
