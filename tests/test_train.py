"""Training: a stack equals its members trained alone; resume after a kill gives the same parameters;
a non-finite loss stops cleanly; it learns."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import asdict
from pathlib import Path

import pytest
import torch
from conftest import assert_same_models, sixty_steps, two_groups_alone

from iwae import objectives
from iwae import train as train_mod
from iwae.checkpoint import FORMAT as CHECKPOINT_FORMAT
from iwae.checkpoint import load_model
from iwae.config import TrainConfig
from iwae.data import binarize, load
from iwae.evaluate import log_likelihood
from iwae.model import output_bias_from_data
from iwae.stack import build, initial_model, resolve_step_mode
from iwae.train import train

CPU = torch.device("cpu")


def _train_cmd(data_dir, out, **over):
    args = dict(dataset="mnist", layers=1, objective="iwae", k=3, seed=7, stages="0,1,2", train_subset=400,
                checkpoint_minutes=0, threads=1, data_order="reshuffle")
    args.update(over)
    cmd = [sys.executable, "-m", "iwae.cli", "train", "--data-dir", str(data_dir), "--out", str(out), "--no-progress"]
    for key, val in args.items():
        cmd += [f"--{key.replace('_', '-')}", str(val)]
    return cmd


def _params(path):
    return load_model(path).state_dict()


STACK = dict(objectives="vae,iwae", seeds="0,1", out_pattern="{objective}/seed{seed}")


@pytest.mark.parametrize("sig, stacked", [(signal.SIGKILL, False), (signal.SIGTERM, False), (signal.SIGKILL, True)],
                         ids=["SIGKILL", "SIGTERM", "SIGKILL-stack"])
def test_killed_run_resumes_to_the_same_parameters(fake_data_dir, tmp_path, sig, stacked):
    over = dict(objectives=STACK["objectives"], seeds=STACK["seeds"]) if stacked else {}
    ref, killed = tmp_path / "ref", tmp_path / "killed"
    out = (lambda d: d / STACK["out_pattern"]) if stacked else (lambda d: d)
    subprocess.run(_train_cmd(fake_data_dir, out(ref), **over), check=True, capture_output=True)

    proc = subprocess.Popen(_train_cmd(fake_data_dir, out(killed), **over), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT)
    first = killed / "vae" / "seed0" if stacked else killed
    ckpt = first / "checkpoint.pt"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:  # wait for a mid-run checkpoint beyond the first epoch
        if ckpt.exists():
            try:
                state = torch.load(ckpt, weights_only=False)
            except Exception:  # being replaced right now
                continue
            if state["epoch"] >= 2 and state["step"] > 0:
                break
        time.sleep(0.05)
    proc.send_signal(sig)
    proc.wait(timeout=60)
    assert not (first / "model.pt").exists(), "the run finished before it could be killed"
    assert ckpt.exists()

    done = subprocess.run(_train_cmd(fake_data_dir, out(killed), **over), check=True, capture_output=True, text=True)
    assert "resuming" in done.stdout
    folders = [f"{o}/seed{s}" for o in ("vae", "iwae") for s in (0, 1)] if stacked else ["."]
    for folder in folders:
        a, b = _params(ref / folder / "model.pt"), _params(killed / folder / "model.pt")
        assert a.keys() == b.keys()
        for name in a:
            assert torch.equal(a[name], b[name]), (folder, name)
    assert not ckpt.exists()


@pytest.mark.parametrize("data_order", ["fixed", "reshuffle"])
def test_a_stack_trains_each_member_as_training_it_alone(fake_data_dir, tmp_path, data_order):
    """Four members (three objectives, one of them reweighted wake-sleep with its own recognition surrogate, four
    seeds, independent initial weights) trained as one stack and each alone from the same seeds: 80 updates
    (4 epochs of 20), the same per-epoch losses within 4 float32 steps (ulps) of their size and the same final
    parameters within 1e-6. Threads pinned to one: with two, torch may split the stacked and the single sums
    differently (one ulp of a loss near 274 is 3.05e-5), so the test does not depend on what ran before it."""
    import numpy as np

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        _stack_against_alone(fake_data_dir, tmp_path, data_order, np)
    finally:
        torch.set_num_threads(threads)


def _stack_against_alone(fake_data_dir, tmp_path, data_order, np):
    common = dict(k=3, stages=[0, 1], train_subset=400, init="seeded", data_order=data_order)
    cfgs = [TrainConfig(objective=o, seed=s, **common) for o, s in (("vae", 0), ("iwae", 1), ("iwae", 2), ("rws", 3))]
    stacked = train(cfgs, fake_data_dir, [tmp_path / f"stack{i}" for i in range(4)], CPU, progress=False)
    for i, cfg in enumerate(cfgs):
        alone = train(cfg, fake_data_dir, tmp_path / f"alone{i}", CPU, progress=False)
        assert alone["updates"] == stacked[i]["updates"] == 80 and stacked[i]["stack_size"] == 4
        losses = np.array([h["train_objective"] for h in stacked[i]["history"]])
        alone_losses = np.array([h["train_objective"] for h in alone["history"]])
        ulps = np.spacing(np.abs(alone_losses).astype(np.float32)).astype(float)
        assert np.all(np.abs(losses - alone_losses) <= 4 * ulps), (losses - alone_losses) / ulps
        a, b = _params(tmp_path / f"stack{i}" / "model.pt"), _params(tmp_path / f"alone{i}" / "model.pt")
        for name in a:
            assert torch.allclose(a[name], b[name], rtol=0, atol=1e-6), (i, name)
    assert not torch.equal(_params(tmp_path / "stack1" / "model.pt")["p_x.head.weight"],
                           _params(tmp_path / "stack2" / "model.pt")["p_x.head.weight"])


def test_a_chain_of_stage_jobs_ends_as_one_uninterrupted_run(fake_data_dir, tmp_path):
    """The pipeline's stage chain (``--until-stage``, one job per stage, each resuming the checkpoint the one
    before left at its stage's end) gives exactly the parameters and snapshots of one run; a job killed after it
    saved its stage's end, whose snapshot the scheduler then removed, writes that snapshot again."""
    ref, chain = tmp_path / "ref", tmp_path / "chain"
    subprocess.run(_train_cmd(fake_data_dir, ref), check=True, capture_output=True)
    first = subprocess.run(_train_cmd(fake_data_dir, chain, until_stage=0), check=True, capture_output=True, text=True)
    assert "starting afresh" in first.stdout and "trained through stage 0" in first.stdout
    assert (chain / "stages" / "stage0.pt").exists() and not (chain / "stages" / "stage1.pt").exists()
    assert not (chain / "model.pt").exists() and (chain / "checkpoint.pt").exists()
    subprocess.run(_train_cmd(fake_data_dir, chain, until_stage=1), check=True, capture_output=True)
    saved = _params(chain / "stages" / "stage1.pt")
    (chain / "stages" / "stage1.pt").unlink()  # as Snakemake removes the outputs of a job it saw fail
    again = subprocess.run(_train_cmd(fake_data_dir, chain, until_stage=1), check=True, capture_output=True, text=True)
    assert "resuming" in again.stdout
    rewritten = _params(chain / "stages" / "stage1.pt")
    assert all(torch.equal(saved[n], rewritten[n]) for n in saved)
    last = subprocess.run(_train_cmd(fake_data_dir, chain), check=True, capture_output=True, text=True)
    assert "resuming" in last.stdout and not (chain / "checkpoint.pt").exists()
    for name in ("model.pt", "stages/stage0.pt", "stages/stage1.pt", "stages/stage2.pt"):
        a, b = _params(ref / name), _params(chain / name)
        assert all(torch.equal(a[n], b[n]) for n in a), name
    assert load_model(chain / "model.pt").metadata["epochs"] == load_model(ref / "model.pt").metadata["epochs"] == 13


def test_the_first_checkpoint_comes_early_and_the_start_says_afresh_or_resuming(fake_data_dir, tmp_path, monkeypatch,
                                                                                 capsys):
    """A run killed soon after its start loses little: its first checkpoint comes after FIRST_CHECKPOINT_S, not
    after checkpoint_minutes; and the start says whether it resumes or starts afresh."""
    monkeypatch.setattr(train_mod, "FIRST_CHECKPOINT_S", 0.0)
    cfg = TrainConfig(k=2, stages=[0, 1], train_subset=200)
    seen = []

    def watch():
        ckpt = tmp_path / "checkpoint.pt"
        if ckpt.exists() and not seen:
            state = torch.load(ckpt, weights_only=False)
            seen.append((state["epoch"], state["step"]))
        return False

    train(cfg, fake_data_dir, tmp_path, CPU, progress=False, checkpoint_minutes=1e6, should_stop=watch)
    assert seen == [(0, 1)]  # after the first step, mid-epoch, though checkpoint_minutes is a million
    assert "starting afresh: no checkpoint" in capsys.readouterr().out


def test_each_epoch_records_the_machines_load_and_a_model_its_median(fake_data_dir, tmp_path, monkeypatch):
    """The load average read at each epoch's end goes into that epoch's history, and the model's record carries
    the median over its epochs (the cost table's "machine load": whether other work shared the machine)."""
    from iwae import records

    loads = iter([3.0, 0.5, 2.0, 1.0])  # one per epoch: stages 0 and 1 are 1 + 3 epochs
    monkeypatch.setattr(os, "getloadavg", lambda: (next(loads), 0.0, 0.0))
    train(TrainConfig(k=2, stages=[0, 1], train_subset=200), fake_data_dir, tmp_path, CPU, progress=False)
    history = load_model(tmp_path / "model.pt").metadata["history"]
    assert [h["load"] for h in history] == [3.0, 0.5, 2.0, 1.0]
    assert {h["cores"] for h in history} == {len(os.sched_getaffinity(0))}
    assert records.machine_load(history)["load"] == 1.5  # the median of the four
    assert records.machine_load([dict(epoch=0, seconds=1.0)])["load"] != records.machine_load(
        [dict(epoch=0, seconds=1.0)])["load"]  # a record from before the trainer read the load: NaN, not 0


def test_the_epochs_seconds_add_up_to_the_training_time_through_a_stop_mid_epoch(fake_data_dir, tmp_path):
    """A run stopped in the middle of an epoch and resumed records that epoch's whole training time (before and
    after the stop), so that the epochs' seconds (stage_times, the status' speed) add up to the run's training
    seconds, as they do without a stop."""
    cfg = TrainConfig(k=2, stages=[0, 1], train_subset=400)
    polls = {"n": 0}

    def stop_mid_epoch():  # polled after every step: 20 steps per epoch at this subset, stop after the 6th
        polls["n"] += 1
        return polls["n"] == 6

    with pytest.raises(train_mod.Interrupted):
        train(cfg, fake_data_dir, tmp_path, CPU, progress=False, checkpoint_minutes=1e6, should_stop=stop_mid_epoch)
    assert torch.load(tmp_path / "checkpoint.pt", weights_only=False)["step"] == 6  # stopped inside an epoch
    train(cfg, fake_data_dir, tmp_path, CPU, progress=False)
    meta = load_model(tmp_path / "model.pt").metadata
    assert len(meta["history"]) == 4
    assert sum(h["seconds"] for h in meta["history"]) == pytest.approx(meta["train_seconds"], rel=1e-9)


def test_finished_run_is_not_redone(fake_data_dir, tmp_path):
    subprocess.run(_train_cmd(fake_data_dir, tmp_path, stages="0"), check=True, capture_output=True)
    again = subprocess.run(_train_cmd(fake_data_dir, tmp_path, stages="0"), capture_output=True, text=True)
    assert again.returncode != 0 and "model.pt exist(s): finished. Use --force" in again.stderr


def test_non_finite_loss_names_epoch_and_step_and_keeps_checkpoint(fake_data_dir, tmp_path, monkeypatch):
    calls = {"n": 0}
    iwae = objectives.get("iwae")

    def poisoned(log_w):
        calls["n"] += 1
        out = iwae.value(log_w)
        return out * float("nan") if calls["n"] == 25 else out  # epoch 2, step 4 (10 steps an epoch)

    monkeypatch.setattr(objectives, "get", lambda name: dataclasses.replace(iwae, value=poisoned))
    cfg = TrainConfig(k=2, stages=[0, 1], train_subset=200)
    with pytest.raises(train_mod.NonFiniteLoss, match=r"epoch 2 .*step 4 of 10(.|\n)*last good checkpoint is kept"):
        train(cfg, fake_data_dir, tmp_path, CPU, progress=False, checkpoint_minutes=1e6)
    state = torch.load(tmp_path / "checkpoint.pt", weights_only=False)
    assert state["epoch"] == 1 and state["step"] == 0  # written at the end of stage 0 (epoch 0)
    assert all(torch.isfinite(v).all() for v in state["members"][0]["state_dict"].values())
    assert not (tmp_path / "model.pt").exists()


def test_checkpoint_from_another_config_is_refused(fake_data_dir, tmp_path):
    cfg = TrainConfig(k=2, stages=[0], train_subset=200)
    torch.save(dict(format=CHECKPOINT_FORMAT, stack=[str(tmp_path)], members=[dict(train_config=asdict(TrainConfig(k=5)))]),
               tmp_path / "checkpoint.pt")
    with pytest.raises(RuntimeError, match="different configuration"):
        train(cfg, fake_data_dir, tmp_path, CPU, progress=False)


def test_checkpoint_of_an_older_version_is_refused(fake_data_dir, tmp_path):
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
    untrained = initial_model(cfg, output_bias_from_data(splits.train[:6000]))
    trained = load_model(tmp_path / "model.pt")
    l50 = {name: float(log_likelihood(m, x, 50, generator=torch.Generator().manual_seed(1)).mean())
           for name, m in (("untrained", untrained), ("trained", trained))}
    assert l50["trained"] > l50["untrained"] + 20, l50


def test_step_mode_auto_is_eager_without_cuda_and_captured_refuses_the_cpu():
    assert resolve_step_mode("auto", CPU) == "eager"
    assert resolve_step_mode("eager", CPU) == "eager"
    with pytest.raises(ValueError, match="needs a CUDA device"):
        resolve_step_mode("captured", CPU)
    with pytest.raises(ValueError, match="must be one of"):
        resolve_step_mode("graph", CPU)


def test_step_modes_that_run_the_published_update_refuse_the_other_optimisers():
    """captured, compiled and fused run the optimiser as ``step_graphable`` (the published update): ``auto`` runs
    the other optimisers eager, and asking for one of those ways with them is refused, not silently ignored."""
    for optimizer in ("paper_text", "published_torch_order"):
        assert resolve_step_mode("auto", CPU, optimizer) == "eager"
        assert resolve_step_mode("auto", torch.device("cuda"), optimizer) == "eager"
        with pytest.raises(ValueError, match="needs step_mode 'eager'"):
            resolve_step_mode("compiled", CPU, optimizer)
        stack = build([TrainConfig(optimizer=optimizer, seed=0)], torch.rand(40, 784))
        with pytest.raises(ValueError, match="needs step_mode 'eager'"):
            stack.use("compiled")  # a stack built without the trainer refuses too


def test_stacks_trained_together_end_as_trained_alone_and_resume(fake_data_dir, tmp_path):
    """Two groups (1 layer K=2, 2 layers K=3) taking turns in one process (train_together), stopped mid-way
    (both write their checkpoints) and resumed: each member ends exactly as its group trained alone."""
    groups, alone, together = two_groups_alone(fake_data_dir, tmp_path, CPU)
    polls = {"n": 0}

    def stop_once():  # polled after every step of either group: from poll 25 on, as after a SIGTERM
        polls["n"] += 1
        return polls["n"] >= 25

    def runs():
        return [train_mod.Run(c, fake_data_dir, o, CPU, progress=False, together=2) for c, o in zip(groups, together)]

    with pytest.raises(train_mod.Interrupted):
        train_mod.train_together(runs(), should_stop=stop_once)
    assert all((o[0] / "checkpoint.pt").exists() for o in together)
    metas = train_mod.train_together(runs())
    assert [m["trained_together_with"] for group in metas for m in group] == [1, 1, 1]
    assert_same_models(alone, together)


def test_a_stack_that_fails_together_leaves_the_others_finished(fake_data_dir, tmp_path, monkeypatch):
    """train_together when a group fails: (1) an unexpected error (say CUDA out of memory) in the second group's
    last epoch, after the first group ended: the first group's models are written, as trained alone; (2) one
    group interrupted and the other with a non-finite loss: the error raised is the non-finite loss (a re-run
    would not get past it), not the interruption (whose message says "run again to resume")."""
    groups, alone, together = two_groups_alone(fake_data_dir, tmp_path, CPU)

    def runs():
        return [train_mod.Run(c, fake_data_dir, o, CPU, progress=False, together=2) for c, o in zip(groups, together)]

    def failing(error, at_epoch=None):  # at the first check of at_epoch (None: of any epoch)
        def check(epoch, upto):
            if at_epoch in (None, epoch):
                raise error(f"failed at epoch {epoch}")
        return check

    first = runs()
    last_epoch = len(first[1].plan) - 1
    monkeypatch.setattr(first[1], "_check_finite", failing(RuntimeError, last_epoch))
    with pytest.raises(RuntimeError, match=f"epoch {last_epoch}"):
        train_mod.train_together(first)
    assert_same_models(alone[:1], together[:1])
    assert not any((o / "model.pt").exists() for o in together[1])
    # a scheduler removes the failed job's outputs: the finished group resumes at its end, not its last stage
    for o in together[0]:
        (o / "model.pt").unlink()
    resumed = runs()
    last_stage_start = [stage for stage, _ in resumed[1].plan].index(resumed[1].plan[-1][0])
    assert resumed[0].epoch == len(resumed[0].plan) and resumed[1].epoch == last_stage_start
    train_mod.train_together(resumed)
    assert_same_models(alone, together)
    assert not any((o[0] / "checkpoint.pt").exists() for o in together)

    for group in together:  # to train again from the start: the models and their stage snapshots go
        for o in group:
            (o / "model.pt").unlink(missing_ok=True)
            shutil.rmtree(o / "stages", ignore_errors=True)
    second = runs()
    monkeypatch.setattr(second[0], "_check_finite", failing(train_mod.Interrupted))
    monkeypatch.setattr(second[1], "_check_finite", failing(train_mod.NonFiniteLoss))
    with pytest.raises(train_mod.NonFiniteLoss):
        train_mod.train_together(second)


def test_compiled_step_matches_eager_on_the_cpu(fake_data_dir):
    """The step compiled by torch.compile (forward, both backward passes of a split estimator, the published
    update) against the eager step over 60 steps of a stack of three (IWAE, VAE, IWAE-DReG): per-epoch losses
    and parameters within 1e-5."""
    from iwae.data import load

    grey = load("mnist", fake_data_dir)[0].train[:400]
    objectives = ("iwae", "vae", "iwae_dreg")
    ref, compiled = sixty_steps(objectives, grey, "eager"), sixty_steps(objectives, grey, "compiled")
    assert torch.allclose(compiled[0], ref[0], rtol=1e-5)
    assert torch.allclose(compiled[1], ref[1], rtol=0, atol=1e-5)


def test_a_lost_checkpoint_never_trains_a_runs_finished_stages_again(fake_data_dir, tmp_path):
    """Stage snapshots of this configuration but no checkpoint: the run refuses, naming the fix, instead of training
    them again from epoch 0; another configuration's snapshots (an earlier budget) do not stop it; a checkpoint
    past the stage a job trains to, whose snapshot is gone, is refused too; --until-stage with the default stages."""
    chain = tmp_path / "chain"
    subprocess.run(_train_cmd(fake_data_dir, chain, until_stage=1), check=True, capture_output=True)
    (chain / "checkpoint.pt").rename(tmp_path / "saved.pt")
    lost = subprocess.run(_train_cmd(fake_data_dir, chain, until_stage=2), capture_output=True, text=True)
    assert lost.returncode != 0 and "starting afresh would train them again" in lost.stderr
    assert "docs/paper-cpu/state" in lost.stderr and not (chain / "stages" / "stage2.pt").exists()
    other = subprocess.run(_train_cmd(fake_data_dir, chain, until_stage=0, k=2), capture_output=True, text=True)
    assert other.returncode == 0, other.stderr  # another K's snapshots: overwritten, not refused
    (tmp_path / "saved.pt").rename(chain / "checkpoint.pt")  # K=3's checkpoint at stage 1's end, stage 1's snapshot gone
    past = subprocess.run(_train_cmd(fake_data_dir, chain, until_stage=0), capture_output=True, text=True)
    assert past.returncode != 0 and "past the end of stage 0" in past.stderr
    run = train_mod.Run([TrainConfig(k=2, train_subset=200)], fake_data_dir, [tmp_path / "all"], CPU, until_stage=3,
                        progress=False)  # the default stages (all 8): to the end of stage 3 = 1 + 3 + 9 + 27 epochs
    assert run.end == 40


def test_a_killed_whole_schedule_job_puts_back_the_snapshots_its_scheduler_removed(fake_data_dir, tmp_path):
    """A stack trained through three stages in one job (as the pipeline's train rule does), SIGKILLed in stage 2; its
    declared outputs removed as Snakemake removes them (after the failure and again before it runs the job anew);
    the same command resumes, puts the stage 0 and 1 snapshots back from their kept copies, and ends with every
    snapshot equal to an uninterrupted run's, its checkpoint and kept copies gone."""
    over = dict(objectives=STACK["objectives"], seeds=STACK["seeds"])
    ref, killed = tmp_path / "ref", tmp_path / "killed"
    subprocess.run(_train_cmd(fake_data_dir, ref / STACK["out_pattern"], **over), check=True, capture_output=True)
    proc = subprocess.Popen(_train_cmd(fake_data_dir, killed / STACK["out_pattern"], **over),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    ckpt = killed / "vae" / "seed0" / "checkpoint.pt"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:  # stage 1 ends at epoch 4 (1 + 3 epochs): wait for a checkpoint in stage 2
        try:
            if torch.load(ckpt, weights_only=False)["epoch"] >= 5:
                break
        except Exception:  # not there yet, or being replaced right now
            pass
        time.sleep(0.05)
    proc.kill()
    proc.wait(timeout=60)
    folders = [killed / o / f"seed{s}" for o in ("vae", "iwae") for s in (0, 1)]
    declared = [p for f in folders for p in [f / "model.pt", *(f / "stages" / f"stage{i}.pt" for i in range(3))]]
    assert not (folders[0] / "model.pt").exists(), "the run finished before it could be killed"
    assert sum(p.exists() for p in declared) == 8  # stages 0 and 1 of 4 members
    for p in declared:  # what Snakemake does to a failed job's outputs
        p.unlink(missing_ok=True)

    done = subprocess.run(_train_cmd(fake_data_dir, killed / STACK["out_pattern"], **over), capture_output=True,
                          text=True)
    assert done.returncode == 0, done.stderr
    for p in declared:
        a, b = _params(ref / p.relative_to(killed)), _params(p)
        assert all(torch.equal(a[n], b[n]) for n in a), p
    assert not ckpt.exists() and not any((f / "checkpoint-stages").exists() for f in folders)


def test_a_resumed_run_missing_a_snapshot_it_cannot_put_back_stops_before_training(fake_data_dir, tmp_path):
    """A checkpoint past stage 0 whose stage 0 snapshot and kept copy are both gone: refused at once, naming the
    file and the fix, instead of training to the end and leaving a pipeline an output it lacks."""
    run = tmp_path / "run"
    subprocess.run(_train_cmd(fake_data_dir, run, until_stage=1), check=True, capture_output=True)
    (run / "stages" / "stage0.pt").unlink()
    shutil.rmtree(run / "checkpoint-stages")
    lost = subprocess.run(_train_cmd(fake_data_dir, run), capture_output=True, text=True)
    assert lost.returncode != 0 and "stage0.pt is missing" in lost.stderr and "delete the checkpoint" in lost.stderr
    assert (run / "checkpoint.pt").exists() and not (run / "stages" / "stage2.pt").exists()


def test_a_runs_models_as_they_are_now_are_its_snapshots_at_a_stage_end_and_move_on_within_a_stage(fake_data_dir,
                                                                                                   tmp_path):
    """`iwae peek` writes the models a checkpoint holds as model files: at a stage's end (the chain's checkpoint)
    each member's is its own stage snapshot, weights and epochs, found from the first member's folder also after
    the run folder moved; inside a stage its epochs and updates are the checkpoint's, its weights are no snapshot's,
    `iwae evaluate` reads it and the record says where it was taken; a model file or a member without a snapshot
    is refused with the fix."""
    from iwae.checkpoint import models_so_far

    over = dict(objectives=STACK["objectives"], seeds=STACK["seeds"], until_stage=0)
    run = tmp_path / "run"
    subprocess.run(_train_cmd(fake_data_dir, run / STACK["out_pattern"], **over), check=True, capture_output=True)
    moved = tmp_path / "moved"
    run.rename(moved)  # the stack's folders are recorded as they were given; the checkpoint finds them from its own
    members = [moved / o / f"seed{s}" for s in (0, 1) for o in ("vae", "iwae")]
    ckpt = next(m / "checkpoint.pt" for m in members if (m / "checkpoint.pt").exists())
    outs = [tmp_path / f"now{m}.pt" for m in range(len(members))]
    peek = subprocess.run([sys.executable, "-m", "iwae", "peek", str(ckpt), "--out", *map(str, outs)],
                          capture_output=True, text=True)
    assert peek.returncode == 0, peek.stderr
    stack = torch.load(ckpt, weights_only=False)["stack"]
    for out, name in zip(outs, stack):  # the stack's order, each member against its own snapshot
        snap = load_model(moved / Path(name).relative_to(run) / "stages" / "stage0.pt")
        now = load_model(out)
        assert all(torch.equal(now.state_dict()[n], t) for n, t in snap.state_dict().items())
        assert now.metadata["epochs"] == snap.metadata["epochs"] == 1
        assert now.metadata["updates"] == snap.metadata["updates"]
        assert now.metadata["train_config"] == snap.metadata["train_config"]
        assert now.metadata["in_training"]["step"] == 0
    assert len({load_model(o).state_dict()["p_x.head.bias"].sum().item() for o in outs}) == len(outs)

    single = tmp_path / "single"
    cfg = TrainConfig(k=2, stages=[0, 1], train_subset=400)
    polls = {"n": 0}

    def stop_in_stage_1():  # 20 steps per epoch at this subset: inside epoch 1 (stage 1)
        polls["n"] += 1
        return polls["n"] == 25

    with pytest.raises(train_mod.Interrupted):
        train(cfg, fake_data_dir, single, CPU, progress=False, checkpoint_minutes=1e6, should_stop=stop_in_stage_1)
    (now,) = models_so_far(single / "checkpoint.pt")
    snap = load_model(single / "stages" / "stage0.pt")
    step = torch.load(single / "checkpoint.pt", weights_only=False)["step"]
    assert 0 < step < 20 and now["metadata"]["epochs"] == 1 and now["metadata"]["updates"] == 20 + step
    assert now["metadata"]["in_training"] == dict(checkpoint=str(single / "checkpoint.pt"), epoch=1, step=step,
                                                  stage=1)
    assert not torch.equal(now["state_dict"]["p_x.head.bias"], snap.state_dict()["p_x.head.bias"])
    torch.save(now, tmp_path / "mid.pt")
    ev = subprocess.run([sys.executable, "-m", "iwae", "evaluate", "--model", str(tmp_path / "mid.pt"), "--out",
                         str(tmp_path / "mid.json"), "--data-dir", str(fake_data_dir), "--k", "10", "--test-subset",
                         "20", "--no-active-only", "--threads", "1"], capture_output=True, text=True)
    assert ev.returncode == 0, ev.stderr
    assert json.loads((tmp_path / "mid.json").read_text())["train"]["in_training"]["step"] == step

    for path, said in ((snap_path := single / "stages" / "stage0.pt", "is read by `iwae evaluate` as it is"),):
        out = subprocess.run([sys.executable, "-m", "iwae", "peek", str(path), "--out", "x.pt"], capture_output=True,
                             text=True, cwd=tmp_path)
        assert out.returncode != 0 and said in out.stderr
    snap_path.unlink()
    shutil.rmtree(single / "checkpoint-stages", ignore_errors=True)
    with pytest.raises(RuntimeError, match="has no stage snapshot yet"):
        models_so_far(single / "checkpoint.pt")
