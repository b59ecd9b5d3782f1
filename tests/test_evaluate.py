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


def test_evaluate_writes_what_the_records_read(fake_data_dir, tmp_path):
    """`iwae evaluate` on a trained model writes a metrics file that ``records.collect`` reads: the per-image
    log-likelihoods on the first N test images (their mean is the test log-likelihood), binarised from the
    evaluation seed, the training record, the evaluation protocol."""
    import json

    import numpy as np

    from iwae import records
    from iwae.cli import main
    from iwae.config import TrainConfig
    from iwae.data import binarize, load
    from iwae.train import train

    meta = train(TrainConfig(k=2, stages=[0], train_subset=40), fake_data_dir, tmp_path / "run",
                 torch.device("cpu"), progress=False)
    out = tmp_path / "run" / "metrics.json"
    main(["evaluate", "--model", str(tmp_path / "run" / "model.pt"), "--out", str(out), "--data-dir",
          str(fake_data_dir), "--k", "20", "--test-subset", "30", "--train-subset", "10", "--active-units-n", "20",
          "--bound-ks", "1,5", "--threads", "1"])
    m = json.loads(out.read_text())
    row = records.collect([out]).iloc[0]
    assert len(row.ll) == row.n_test == 30 and row.nll == pytest.approx(-np.mean(row.ll))
    assert row.images == "the first 30 test images (binarisation seed 1234)"
    assert (row.epochs, row.updates, row.k) == (meta["epochs"], meta["updates"], 2)
    assert set(m["eval"]["test_bounds"]) == {"L1", "L2", "L5", "L20"} and m["eval"]["eval_config"]["test_subset"] == 30
    # the images: the first 30 test images binarised once from the seed, on the CPU whatever the device
    from iwae import evaluate as evaluate_mod

    seen = []
    real = evaluate_mod.log_likelihood

    def recording(model, x, k, **kw):
        seen.append(x.clone())
        return real(model, x, k, **kw)

    test = load("mnist", fake_data_dir)[0].test
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(evaluate_mod, "log_likelihood", recording)
        evaluate_mod.evaluate(initialise(IWAEModel(ModelConfig(1)), "seeded", torch.zeros(784)), test[:30], test,
                              seed=1234, k=3, bound_ks=(), train_subset=5, active_units_n=5)
    assert torch.equal(seen[0], binarize(test[:30], torch.Generator().manual_seed(1234)))
    assert torch.equal(seen[0][:10], binarize(test[:10], torch.Generator().manual_seed(1234)))  # any first n


def test_model_file_errors_tell_a_missing_path_a_non_model_file_and_a_corrupt_model_apart(tmp_path):
    """`iwae evaluate` on what is not a model: each message names the case and its own fix (never "delete it"
    for a file that is not there)."""
    import subprocess
    import sys

    import torch

    from iwae.model import IWAEModel, ModelConfig

    good = tmp_path / "model.pt"
    torch.save(dict(state_dict=IWAEModel(ModelConfig(1)).state_dict(), model_config=dict(n_layers=1)), good)
    corrupt = tmp_path / "corrupt" / "model.pt"
    corrupt.parent.mkdir()
    corrupt.write_bytes(good.read_bytes()[: len(good.read_bytes()) // 2])
    text = tmp_path / "notes.txt"
    text.write_text("not a model")
    tensor = tmp_path / "tensor.pt"
    torch.save(torch.zeros(3), tensor)
    cases = {tmp_path / "missing.pt": "no such file", tmp_path: "is a folder", text: "is not a model file: torch.save",
             corrupt: "is corrupt or truncated", tensor: "is not a model file: it holds a Tensor"}
    for path, said in cases.items():
        out = subprocess.run([sys.executable, "-m", "iwae", "evaluate", "--model", str(path), "--out", "x.json"],
                             capture_output=True, text=True, cwd=tmp_path)
        assert out.returncode != 0 and said in out.stderr, (path, out.stderr)
        assert "delete it to start" not in out.stderr
        assert len(out.stderr.strip().splitlines()) == 1  # one line, no traceback
