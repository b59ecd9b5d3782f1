"""experiments/binarisation_yardstick.py: which evaluations it pairs into IWAE - VAE."""

import importlib.util
from pathlib import Path

import numpy as np
import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "experiments" / "binarisation_yardstick.py"


@pytest.fixture(scope="module")
def yardstick():
    spec = importlib.util.spec_from_file_location("binarisation_yardstick", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_each_iwae_point_is_paired_with_the_vae_point_nearest_in_updates(yardstick):
    """Models measured twice (inside training and at the end): IWAE - VAE of each point takes the VAE of that
    point, so its means are the per-image differences of those two models, first seed and second."""
    rng = np.random.default_rng(0)

    def model(objective, updates, seed, shift):
        return dict(model=f"MNIST 1L {objective} K=5", cell=("mnist", 1, 5), objective=objective.lower(),
                    epochs=f"{updates // 10:,}", updates=updates, seed=seed, nll=86 + shift + rng.normal(0, 1, 400))

    points = {}
    for name, updates, shift in (("VAE", 20_160, 0.0), ("IWAE", 19_040, -0.9), ("VAE", 32_800, -0.5),
                                 ("IWAE", 32_800, -1.4)):
        points[name, updates] = (model(name, updates, 1234, shift), model(name, updates, 4321, shift))
    rows = yardstick.paired_rows([points[k] for k in (("IWAE", 32_800), ("VAE", 20_160), ("IWAE", 19_040),
                                                      ("VAE", 32_800))])
    assert [r["epochs"] for r in rows] == ["3,280 / 3,280", "1,904 / 2,016"]
    (ia, ib), (va, vb) = points["IWAE", 19_040], points["VAE", 20_160]
    assert rows[1]["nll_a"] == pytest.approx((ia["nll"] - va["nll"]).mean())
    assert rows[1]["nll_b"] == pytest.approx((ib["nll"] - vb["nll"]).mean())
    other = dict(points["VAE", 32_800][1], seed=999)  # a VAE pair of other seeds pairs with nothing
    assert yardstick.paired_rows([points["IWAE", 32_800], (points["VAE", 32_800][0], other)]) == []
