"""iwae.yardstick: which evaluations it pairs into one model's two evaluations and into IWAE - VAE, and the long
run's command that evaluates its finished models again and writes the yardstick (`make cpu-paper-yardstick`)."""

import json

import numpy as np
import pytest
from test_longrun import _metrics

from iwae import longrun, runstate, yardstick


def test_each_iwae_point_is_paired_with_the_vae_point_nearest_in_updates():
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


def _final(workdir, name, ll):
    """A finished model of a run folder: its final evaluation on all the test images (seed 1234)."""
    folder = workdir / "results/mnist/L1" / name / "seed0"
    folder.mkdir(parents=True)
    path = _metrics(folder / "metrics.json", name.split("-")[0], 9_774_400, ll, epochs=3_280)
    m = json.loads(path.read_text())
    m["run"]["k"] = int(name.split("-k")[1])
    path.write_text(json.dumps(m))
    return path


def _again(first, out, seed, shift):
    """``first``'s model evaluated again with ``seed``: its per-image log-likelihoods moved by ``shift``."""
    m = json.loads(first.read_text())
    ll = np.asarray(m["eval"]["test_ll_per_image"]) + shift
    m["eval"].update(test_ll_per_image=list(ll), eval_config=dict(m["eval"]["eval_config"], seed=seed))
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(m))
    return out


def test_second_evaluations_run_only_for_finished_models_without_one_with_that_seed(tmp_path, monkeypatch):
    """A model evaluated again with 4321 already is not evaluated again; one evaluated with another seed is; each
    with the first evaluation's K, under the name of its cell, seed and epochs."""
    ll = np.random.default_rng(0).normal(-86, 20, 300)
    work, out = tmp_path / "run", tmp_path / "binarisation"
    firsts = {name: _final(work, name, ll) for name in ("vae-k5", "iwae-k5", "vae-k1")}
    _again(firsts["vae-k5"], out / "a.metrics.json", 4321, 0.1)
    _again(firsts["iwae-k5"], out / "b.metrics.json", 999, 0.1)
    calls = []
    monkeypatch.setattr(runstate, "_evaluate", lambda model, metrics, data, k, threads, seed=None:
                        calls.append((model, metrics.name, k, seed)) or metrics)
    written = runstate.second_evaluations(work, out, seed=4321)
    assert [c[1] for c in calls] == [p.name for p in written] == [
        "mnist-L1-iwae-k5-seed0-epoch3280-seed4321.metrics.json",
        "mnist-L1-vae-k1-seed0-epoch3280-seed4321.metrics.json"]
    assert [c[0] for c in calls] == [firsts["iwae-k5"].parent / "model.pt", firsts["vae-k1"].parent / "model.pt"]
    assert {c[2] for c in calls} == {5000} and {c[3] for c in calls} == {4321}


def test_pair_files_matches_the_same_model_and_names_a_second_evaluation_without_its_first(tmp_path):
    """A model peeked inside an epoch is another model than the one at that epoch's end; a first evaluation with the
    second's own seed is not its first, nor one on other test images; the pairs come grouped by model (the VAE
    first), each model's in the order of its updates."""
    ll = np.random.default_rng(1).normal(-86, 20, 300)
    vae_end = _metrics(tmp_path / "f/vae-end.metrics.json", "vae", 9_774_400, ll, epochs=3_280)
    iwae_end = _metrics(tmp_path / "f/iwae-end.metrics.json", "iwae", 9_774_400, ll - 1, epochs=3_280)
    peeked = _metrics(tmp_path / "f/vae-peek.metrics.json", "vae", 6_000_000, ll, step=5, epochs=2_013)
    at_epoch = _metrics(tmp_path / "f/vae-epoch.metrics.json", "vae", 6_000_000, ll, epochs=2_013)
    same_seed = _metrics(tmp_path / "f/iwae-4321.metrics.json", "iwae", 9_774_400, ll, seed=4321, epochs=3_280)
    fewer = _metrics(tmp_path / "f/vae-2000.metrics.json", "vae", 9_774_400, ll[:200], epochs=3_280)
    iwae_peek = _metrics(tmp_path / "f/iwae-peek.metrics.json", "iwae", 5_000_000, ll - 1, step=7, epochs=1_677)
    seconds = [_again(f, tmp_path / "s" / f.name, 4321, 0.2) for f in (iwae_end, peeked, vae_end, iwae_peek)]
    pairs = yardstick.pair_files([same_seed, at_epoch, fewer, vae_end, peeked, iwae_end, iwae_peek], seconds)
    # the IWAE peeked before the VAE was (fewer updates) still comes after the VAE's rows: grouped by model
    assert pairs == [(peeked, seconds[1]), (vae_end, seconds[2]), (iwae_peek, seconds[3]), (iwae_end, seconds[0])]
    with pytest.raises(ValueError, match="iwae-end.metrics.json: no first evaluation of this model"):
        yardstick.pair_files([vae_end, same_seed], [seconds[0]])


def test_the_long_runs_yardstick_command_writes_each_models_and_the_paired_rows(tmp_path, monkeypatch):
    """`make cpu-paper-yardstick`: the finished pair evaluated again (here each image moved by a known shift), a
    model peeked in training with its second evaluation from before: a row for each, IWAE - VAE paired for the
    finished pair (the VAE peeked has no IWAE beside it), each row's second - first the shift it was given."""
    rng = np.random.default_rng(2)
    ll = rng.normal(-86, 20, 300)
    work, out, midway = tmp_path / "run", tmp_path / "binarisation", tmp_path / "midway"
    shifts = {"vae-k5": -0.05, "iwae-k5": -0.02}
    firsts = {name: _final(work, name, ll + rng.normal(0, 1, 300)) for name in shifts}
    peeked = _metrics(midway / "vae-peek.metrics.json", "vae", 6_000_000, ll, step=5, epochs=2_013)
    _again(peeked, out / "vae-peek-seed4321.metrics.json", 4321, -0.1)

    calls = []

    def evaluate(model, metrics, data, k, threads, seed=None):
        calls.append(model)
        return _again(model.parent / "metrics.json", metrics, seed, shifts[model.parent.parent.name])

    monkeypatch.setattr(runstate, "_evaluate", evaluate)
    longrun.main(["yardstick", "--workdir", str(work), "--out", str(out), "--also", str(midway)])
    import pandas as pd

    t = pd.read_csv(out / "yardstick.csv")
    assert list(t.model) == ["MNIST 1L VAE K=5", "MNIST 1L VAE K=5", "MNIST 1L IWAE K=5",
                             "MNIST 1L IWAE - VAE K=5 (paired)"]
    assert list(t.epochs) == ["2,013 + 5 minibatches", "3,280", "3,280", "3,280 / 3,280"]
    assert t.b_minus_a.tolist() == pytest.approx([0.1, 0.05, 0.02, -0.03])  # NLL = -log-likelihood
    first = [json.loads(firsts[n].read_text())["eval"]["test_ll_per_image"] for n in ("iwae-k5", "vae-k5")]
    assert t.nll_a.iloc[3] == pytest.approx(-(np.asarray(first[0]) - first[1]).mean())
    assert len(calls) == 2
    longrun.main(["yardstick", "--workdir", str(work), "--out", str(out), "--also", str(midway)])  # nothing again
    assert len(calls) == 2 and pd.read_csv(out / "yardstick.csv").equals(t)
