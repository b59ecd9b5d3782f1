"""experiments/like_with_like.py: a model set beside an earlier run's only where both trained the same way, on the
test images both have, with the known difference paired over them."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
from test_report import write_metrics

from iwae.stats import paired_difference

SCRIPT = Path(__file__).resolve().parents[1] / "experiments" / "like_with_like.py"


def _script():
    spec = importlib.util.spec_from_file_location("like_with_like", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _edit(path: Path, change) -> Path:
    blob = json.loads(path.read_text())
    change(blob)
    path.write_text(json.dumps(blob))
    return path


def test_only_the_same_training_is_paired_on_the_images_both_have(tmp_path):
    """Ours: a VAE K=5 and an IWAE K=5 after 4 epochs (300 test images). Earlier: the VAE 0.30 nats lower (on its
    first 200 images only), the IWAE with another learning rate in its last epoch, and the VAE continued from
    another model (Table 2's). Only the VAE pair comes out, on 200 images, its difference the paired mean of those
    images with its t interval; the other two are not the same training."""
    like = _script()
    ours = [write_metrics(tmp_path / "ours", objective=o, k=5) for o in ("vae", "iwae")]
    vae = _edit(write_metrics(tmp_path / "earlier", objective="vae", k=5, shift=-0.30, rng=np.random.default_rng(9)),
                lambda b: b["eval"].update(test_ll_per_image=b["eval"]["test_ll_per_image"][:200], n_test=200))
    iwae = _edit(write_metrics(tmp_path / "earlier", objective="iwae", k=5),
                 lambda b: b["train"]["history"][-1].update(lr=5e-4))
    continued = write_metrics(tmp_path / "cont", objective="vae", k=5, continued_from="iwae-k5")
    t = like.pairs(like.load(ours), like.load([vae, iwae, continued]))
    assert list(t.model) == ["MNIST 1L VAE K=5"] and t.images.iloc[0] == 200
    a = -np.asarray(json.loads(ours[0].read_text())["eval"]["test_ll_per_image"][:200])
    b = -np.asarray(json.loads(vae.read_text())["eval"]["test_ll_per_image"])
    d = paired_difference([a], [b])
    assert (t.ours_minus_theirs.iloc[0], t.low.iloc[0], t.high.iloc[0]) == pytest.approx((d["diff"], d["low"],
                                                                                          d["high"]))
    assert t.ours_minus_theirs.iloc[0] == pytest.approx(0.30, abs=0.02)
    other_seed = _edit(write_metrics(tmp_path / "seed", objective="vae", k=5),
                       lambda b: b["eval"]["eval_config"].update(seed=4321))  # other binary images
    assert like.pairs(like.load(ours), like.load([other_seed])).empty


def test_a_change_of_training_seed_is_measured_where_an_earlier_run_trained_several(tmp_path):
    """Ours: seed 0 of a VAE K=5. Earlier: seeds 0, 1 and 2 of it in one run, seed 1 0.40 nats and seed 2 0.10 nats
    higher than seed 0 (plus the images' noise), and an IWAE's seeds (not a configuration of ours): two rows, each
    the paired difference to seed 0."""
    like = _script()
    ours = [write_metrics(tmp_path / "ours", objective="vae", k=5)]
    earlier = [write_metrics(tmp_path / "earlier", objective=o, k=5, seed=s, shift=shift,
                             rng=np.random.default_rng(10 + s))
               for o in ("vae", "iwae") for s, shift in ((0, 0.0), (1, 0.40), (2, 0.10))]
    t = like.other_seeds(like.load(ours), like.load(earlier))
    assert list(zip(t.model, t.seed, t.base_seed)) == [("MNIST 1L VAE K=5", 1, 0), ("MNIST 1L VAE K=5", 2, 0)]
    assert list(t.other_minus_base) == pytest.approx([0.40, 0.10], abs=0.02)
    assert (t.low < t.other_minus_base).all() and (t.other_minus_base < t.high).all()
