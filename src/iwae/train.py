"""Training with the paper's schedule, resumable checkpoints and a non-finite-loss guard.

The loop reads top to bottom: data, model, optimiser, schedule, (resume), epochs, checkpoints.
Randomness: one generator for the sampled noise (its state is checkpointed) and, per epoch, a
generator seeded from (seed, epoch) that draws the epoch's shuffle and binarisation -- so a run
killed and started again ends with exactly the parameters of an uninterrupted run on CPU.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from tqdm import tqdm

from iwae import data as data_mod
from iwae.bounds import OBJECTIVES, objective
from iwae.model import IWAEModel, ModelConfig, output_bias_from_mean
from iwae.optim import flatten_parameters, make_optimizer
from iwae.runtime import code_version, device_name, peak_memory_mb
from iwae.schedule import epoch_plan, schedule

CHECKPOINT = "checkpoint.pt"
# Raised whenever what a checkpoint holds changes (2: optimiser state in torch Adam's layout).
CHECKPOINT_FORMAT = 2


@dataclass
class TrainConfig:
    dataset: str = "mnist"
    n_layers: int = 1
    objective: str = "iwae"
    k: int = 5
    seed: int = 0
    stages: list[int] | None = None  # None: all 8 stages (the paper)
    epoch_scale: float = 1.0  # epochs of stage i = round(3**i * epoch_scale), at least 1
    train_subset: int | None = None  # use only the first N training images (None: all)
    batch_size: int = 20
    optimizer: str = "published"  # "published" (the code behind Table 1) or "paper_text"
    checkpoint_minutes: float = 10.0
    init_from: str | None = None  # a model.pt to continue from (the paper's Table 2)
    budget: str = "custom"  # the pipeline's name for this budget, recorded only

    def __post_init__(self):
        if self.objective not in OBJECTIVES:
            raise ValueError(f"objective must be one of {OBJECTIVES}, got {self.objective!r}")
        if self.k < 1:
            raise ValueError(f"k must be >= 1, got {self.k}")
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {self.batch_size}")
        if self.train_subset is not None and self.train_subset < self.batch_size:
            raise ValueError(f"train_subset ({self.train_subset}) must be at least batch_size ({self.batch_size})")
        schedule(self.stages, self.epoch_scale)  # validates stages and epoch_scale


class NonFiniteLoss(RuntimeError):
    pass


class Interrupted(RuntimeError):
    """Training stopped on request (e.g. SIGTERM from a scheduler) after saving a checkpoint."""


def epoch_seed(seed: int, epoch: int) -> int:
    return (seed * 1_000_003 + epoch * 7919 + 17) % (2**63 - 1)


def _save_atomic(obj, path: Path) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def build_model(cfg: TrainConfig, train_x: torch.Tensor, device: torch.device) -> IWAEModel:
    init_gen = torch.Generator().manual_seed(cfg.seed)  # initial weights drawn on the CPU: the same on any device
    model = IWAEModel(ModelConfig(cfg.n_layers), output_bias=output_bias_from_mean(train_x.mean(0).cpu()),
                      generator=init_gen)
    if cfg.init_from:
        model.load_state_dict(load_checkpoint_file(cfg.init_from)["state_dict"])
    return model.to(device)


def load_checkpoint_file(path: str | os.PathLike) -> dict:
    try:
        return torch.load(path, map_location="cpu", weights_only=False)
    except Exception as e:
        raise RuntimeError(
            f"{path}: cannot be loaded ({type(e).__name__}: {e}). If it is a checkpoint of an interrupted "
            f"run, delete it to start that run afresh."
        ) from e


def train(
    cfg: TrainConfig,
    data_dir: str | os.PathLike,
    out_dir: str | os.PathLike,
    device: torch.device,
    progress: bool = True,
    should_stop=lambda: False,
) -> dict:
    """Train one model; write ``out_dir/model.pt`` and return its metadata.

    A ``checkpoint.pt`` in ``out_dir`` from the same config is resumed; it is removed once the
    final model is written. ``should_stop()`` is polled after every step: when it returns True
    the run saves a checkpoint and raises ``Interrupted`` (the CLI wires it to SIGTERM/SIGINT).
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    ckpt_path = out / CHECKPOINT

    # data
    splits, manifest = data_mod.load(cfg.dataset, data_dir)
    train_x = splits.train[: cfg.train_subset] if cfg.train_subset else splits.train
    train_x = train_x.to(device)  # [N, 784], kept on the device; binarised there every epoch
    n_batches = train_x.shape[0] // cfg.batch_size

    # model, optimiser, schedule
    model = build_model(cfg, train_x, device)
    plan = epoch_plan(schedule(cfg.stages, cfg.epoch_scale))  # [(stage, lr)] per epoch
    flat = flatten_parameters(model)  # one buffer for all parameters and one for their gradients
    opt = make_optimizer(cfg.optimizer, [flat], lr=plan[0][1])
    noise_gen = torch.Generator(device=device).manual_seed(cfg.seed)

    # resume
    start_epoch, start_step, history, elapsed = 0, 0, [], 0.0
    partial = torch.zeros(n_batches, device=device)  # per-step objective of the current epoch
    if ckpt_path.exists():
        ck = load_checkpoint_file(ckpt_path)
        if ck["train_config"] != asdict(cfg):
            raise RuntimeError(
                f"{ckpt_path} belongs to a different configuration ({ck['train_config']}); "
                f"move it away or delete it to start this run afresh."
            )
        found = ck.get("format", 1)
        if found != CHECKPOINT_FORMAT:
            raise RuntimeError(
                f"{ckpt_path} was written by an {'older' if found < CHECKPOINT_FORMAT else 'newer'} iwae version "
                f"(checkpoint format {found}; this version reads {CHECKPOINT_FORMAT}); delete it to start this "
                f"run afresh, or resume it with the version that wrote it."
            )
        model.load_state_dict(ck["state_dict"])
        opt.load_state_dict(ck["optimizer"])
        noise_gen.set_state(ck["noise_rng"])
        start_epoch, start_step, history, elapsed = ck["epoch"], ck["step"], ck["history"], ck["elapsed"]
        partial = ck["partial"].to(device)
        print(f"resuming {out} from epoch {start_epoch}, step {start_step} ({elapsed:.0f} s trained)")

    def save_checkpoint(epoch: int, step: int) -> None:
        _save_atomic(
            dict(state_dict=model.state_dict(), optimizer=opt.state_dict(), noise_rng=noise_gen.get_state(),
                 epoch=epoch, step=step, history=history, elapsed=elapsed, partial=partial.cpu(),
                 train_config=asdict(cfg), format=CHECKPOINT_FORMAT),
            ckpt_path,
        )

    def check_finite(epoch: int, upto: int) -> None:
        bad = torch.nonzero(~torch.isfinite(partial[:upto]))
        if len(bad):
            raise NonFiniteLoss(
                f"non-finite loss at epoch {epoch} (stage {plan[epoch][0]}, lr {plan[epoch][1]:g}), step {int(bad[0])} "
                f"of {n_batches}. The last good checkpoint is kept"
                + (f" at {ckpt_path}" if ckpt_path.exists() else " (none yet: the run had not saved one)")
                + ". Fix: check the data and the config (learning rate, K); a re-run resumes from that checkpoint."
            )

    model.train()
    bar = tqdm(range(start_epoch, len(plan)), initial=start_epoch, total=len(plan), disable=not progress,
               desc=f"{cfg.dataset} L{cfg.n_layers} {cfg.objective}-k{cfg.k}", unit="epoch", mininterval=2.0)
    last_ckpt = time.monotonic()
    for epoch in bar:
        stage, lr = plan[epoch]
        for group in opt.param_groups:
            group["lr"] = lr
        data_gen = torch.Generator(device=device).manual_seed(epoch_seed(cfg.seed, epoch))
        perm = torch.randperm(train_x.shape[0], generator=data_gen, device=device)
        x_epoch = data_mod.binarize(train_x[perm], data_gen)  # [N, 784] in {0, 1}
        t0 = time.perf_counter()
        for step in range(start_step, n_batches):
            x = x_epoch[step * cfg.batch_size : (step + 1) * cfg.batch_size]
            log_w = model.log_weights(x, cfg.k, generator=noise_gen)  # [k, batch]
            obj = objective(cfg.objective, log_w).sum()  # gradient summed over the minibatch
            flat.grad.zero_()
            (-obj).backward()
            opt.step()
            partial[step] = obj.detach()
            if (step + 1) % 500 == 0:
                check_finite(epoch, step + 1)
            stop = should_stop()
            if (stop or time.monotonic() - last_ckpt > cfg.checkpoint_minutes * 60) and step + 1 < n_batches:
                check_finite(epoch, step + 1)
                elapsed += time.perf_counter() - t0
                t0 = time.perf_counter()
                save_checkpoint(epoch, step + 1)
                last_ckpt = time.monotonic()
                if stop:
                    raise Interrupted(f"stopped at epoch {epoch}, step {step + 1}; checkpoint saved in {ckpt_path}")
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        check_finite(epoch, n_batches)
        epoch_time = time.perf_counter() - t0
        elapsed += epoch_time
        mean_obj = float(partial.sum()) / (n_batches * cfg.batch_size)
        history.append(dict(epoch=epoch, stage=stage, lr=lr, train_objective=mean_obj, seconds=epoch_time))
        bar.set_postfix(stage=stage, loss=f"{-mean_obj:.2f}", it_s=f"{n_batches / max(epoch_time, 1e-9):.0f}")
        partial.zero_()
        start_step = 0
        save_checkpoint(epoch + 1, 0)  # no finished epoch is ever lost
        last_ckpt = time.monotonic()
        if should_stop() and epoch + 1 < len(plan):
            raise Interrupted(f"stopped after epoch {epoch}; checkpoint saved in {ckpt_path}")
    bar.close()

    meta = dict(
        train_config=asdict(cfg),
        model_config=asdict(model.config),
        data=manifest,
        history=history,
        epochs=len(plan),
        updates=len(plan) * n_batches,
        train_seconds=elapsed,
        seconds_per_epoch=elapsed / max(len(history), 1),
        device=device_name(device),
        peak_memory_mb=peak_memory_mb(device),
        code_version=code_version(),
        torch_version=torch.__version__,
        train_path="fast",
    )
    _save_atomic(dict(state_dict=model.state_dict(), model_config=asdict(model.config), metadata=meta),
                 out / "model.pt")
    (out / "train.json").write_text(json.dumps(meta, indent=2))
    ckpt_path.unlink(missing_ok=True)
    return meta


def load_model(path: str | os.PathLike, device: str | torch.device = "cpu") -> IWAEModel:
    """The trained model stored at ``path`` (a ``model.pt`` written by ``iwae train``), in eval mode."""
    blob = load_checkpoint_file(path)
    if "model_config" not in blob:
        raise RuntimeError(f"{path} is not a finished model (no model_config); it may be a training checkpoint.")
    model = IWAEModel(ModelConfig(**blob["model_config"]))
    model.load_state_dict(blob["state_dict"])
    model.metadata = blob.get("metadata", {})
    return model.to(device).eval()
