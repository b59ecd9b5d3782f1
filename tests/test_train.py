"""Training: resume after a kill gives the same parameters; non-finite loss stops cleanly; it learns."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import asdict

import pytest
import torch

from iwae import train as train_mod
from iwae.data import binarize, load
from iwae.evaluate import log_likelihood
from iwae.train import TrainConfig, build_model, load_model, train

CPU = torch.device("cpu")


def _train_cmd(data_dir, out, **over):
    args = dict(dataset="mnist", layers=1, objective="iwae", k=3, seed=7, stages="0,1,2", train_subset=400,
                checkpoint_minutes=0, threads=1)
    args.update(over)
    cmd = [sys.executable, "-m", "iwae.cli", "train", "--data-dir", str(data_dir), "--out", str(out), "--no-progress"]
    for key, val in args.items():
        cmd += [f"--{key.replace('_', '-')}", str(val)]
    return cmd


def _params(path):
    return load_model(path).state_dict()


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM], ids=["SIGKILL", "SIGTERM"])
def test_killed_run_resumes_to_the_same_parameters(fake_data_dir, tmp_path, sig):
    ref, killed = tmp_path / "ref", tmp_path / "killed"
    subprocess.run(_train_cmd(fake_data_dir, ref), check=True, capture_output=True)

    proc = subprocess.Popen(_train_cmd(fake_data_dir, killed), stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    ckpt = killed / "checkpoint.pt"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:  # wait for a mid-run checkpoint beyond the first epoch
        if ckpt.exists():
            state = torch.load(ckpt, weights_only=False)
            if state["epoch"] >= 2 and state["step"] > 0:
                break
        time.sleep(0.05)
    proc.send_signal(sig)
    proc.wait(timeout=60)
    assert not (killed / "model.pt").exists(), "the run finished before it could be killed"
    assert ckpt.exists()

    out = subprocess.run(_train_cmd(fake_data_dir, killed), check=True, capture_output=True, text=True)
    assert "resuming" in out.stdout
    a, b = _params(ref / "model.pt"), _params(killed / "model.pt")
    assert a.keys() == b.keys()
    for name in a:
        assert torch.equal(a[name], b[name]), name
    assert not ckpt.exists()


def test_finished_run_is_not_redone(fake_data_dir, tmp_path):
    subprocess.run(_train_cmd(fake_data_dir, tmp_path, stages="0"), check=True, capture_output=True)
    again = subprocess.run(_train_cmd(fake_data_dir, tmp_path, stages="0"), capture_output=True, text=True)
    assert again.returncode != 0 and "exists: this run is finished" in again.stderr


def test_non_finite_loss_names_epoch_and_step_and_keeps_checkpoint(fake_data_dir, tmp_path, monkeypatch):
    calls = {"n": 0}
    real = train_mod.objective

    def poisoned(name, log_w):
        calls["n"] += 1
        out = real(name, log_w)
        return out * float("nan") if calls["n"] == 25 else out  # epoch 2, step 4 (10 steps an epoch)

    monkeypatch.setattr(train_mod, "objective", poisoned)
    cfg = TrainConfig(k=2, stages=[0, 1], train_subset=200, checkpoint_minutes=1e6)
    with pytest.raises(train_mod.NonFiniteLoss, match=r"epoch 2 .*step 4 of 10(.|\n)*last good checkpoint is kept"):
        train(cfg, fake_data_dir, tmp_path, CPU, progress=False)
    state = torch.load(tmp_path / "checkpoint.pt", weights_only=False)
    assert state["epoch"] == 2 and state["step"] == 0
    assert all(torch.isfinite(v).all() for v in state["state_dict"].values())
    assert not (tmp_path / "model.pt").exists()


def test_checkpoint_from_another_config_is_refused(fake_data_dir, tmp_path):
    cfg = TrainConfig(k=2, stages=[0], train_subset=200)
    torch.save(dict(train_config=asdict(TrainConfig(k=5))), tmp_path / "checkpoint.pt")
    with pytest.raises(RuntimeError, match="different configuration"):
        train(cfg, fake_data_dir, tmp_path, CPU, progress=False)


def test_checkpoint_of_an_older_optimiser_is_refused(fake_data_dir, tmp_path):
    cfg = TrainConfig(k=2, stages=[0], train_subset=200)
    old = dict(state={0: dict(step=3, m=torch.zeros(1), v=torch.ones(1))}, param_groups=[])
    torch.save(dict(train_config=asdict(cfg), optimizer=old), tmp_path / "checkpoint.pt")
    with pytest.raises(RuntimeError, match="older iwae version.*delete it"):
        train(cfg, fake_data_dir, tmp_path, CPU, progress=False)


def test_short_real_mnist_run_beats_the_untrained_model(real_data_dir, tmp_path):
    torch.set_num_threads(min(2, os.cpu_count() or 1))
    cfg = TrainConfig(dataset="mnist", n_layers=1, objective="iwae", k=5, seed=0, stages=[0], train_subset=6000)
    meta = train(cfg, real_data_dir, tmp_path, CPU, progress=False)
    assert meta["updates"] == 300
    splits, _ = load("mnist", real_data_dir)
    x = binarize(splits.test[:200], torch.Generator().manual_seed(0))
    untrained = build_model(cfg, splits.train[:6000], CPU)
    trained = load_model(tmp_path / "model.pt")
    l50 = {name: float(log_likelihood(m, x, 50, generator=torch.Generator().manual_seed(1)).mean())
           for name, m in (("untrained", untrained), ("trained", trained))}
    assert l50["trained"] > l50["untrained"] + 20, l50
