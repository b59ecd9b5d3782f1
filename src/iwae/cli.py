"""Command line: ``iwae fetch | train | evaluate | report``. Every option is explained by ``--help``."""

from __future__ import annotations

import argparse
import json
import signal
import sys
from dataclasses import fields
from pathlib import Path


def _int_list(text: str) -> list[int]:
    return [int(t) for t in text.split(",") if t.strip()]


def cmd_fetch(args) -> None:
    from iwae.data import fetch

    manifest = fetch(args.dataset, args.data_dir, mirror=args.mirror, source_file=args.source_file,
                     allow_unverified=args.allow_unverified)
    for rec in manifest["files"]:
        flag = "verified" if rec["verified"] else "UNVERIFIED (explicitly allowed)"
        print(f"{args.dataset}/{rec['file']}: {rec['algorithm']} {rec['checksum']} {flag}; from {rec['source']}")


def cmd_train(args) -> None:
    from iwae.runtime import resolve_device, set_threads, tune_allocator
    from iwae.train import Interrupted, TrainConfig, train

    set_threads(args.threads)
    tune_allocator()
    cfg = TrainConfig(
        dataset=args.dataset, n_layers=args.layers, objective=args.objective, k=args.k, seed=args.seed,
        stages=args.stages, epoch_scale=args.epoch_scale, train_subset=args.train_subset,
        batch_size=args.batch_size, optimizer=args.optimizer, checkpoint_minutes=args.checkpoint_minutes,
        init_from=args.init_from, budget=args.budget,
    )
    if (Path(args.out) / "model.pt").exists() and not args.force:
        sys.exit(f"{args.out}/model.pt exists: this run is finished. Use --force to train it again.")
    # A scheduler's SIGTERM (preemption, time limit) or Ctrl-C: checkpoint at the next step, then exit.
    stop = {"requested": False}

    def request_stop(signum, frame):
        stop["requested"] = True

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    try:
        meta = train(cfg, args.data_dir, args.out, resolve_device(args.device), progress=not args.no_progress,
                     should_stop=lambda: stop["requested"])
    except Interrupted as e:
        print(f"iwae train: interrupted: {e}. Run the same command again to resume.", file=sys.stderr)
        sys.exit(143)
    print(f"trained {meta['epochs']} epochs ({meta['updates']} updates) in {meta['train_seconds']:.1f} s "
          f"on {meta['device']}; final train objective {meta['history'][-1]['train_objective']:.3f}")


def cmd_evaluate(args) -> None:
    import torch

    from iwae import data as data_mod
    from iwae.evaluate import evaluate
    from iwae.runtime import code_version, device_name, peak_memory_mb, resolve_device, set_threads, tune_allocator
    from iwae.train import load_model

    set_threads(args.threads)
    tune_allocator()
    device = resolve_device(args.device)
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = False  # the estimate is float32 exactly
    model = load_model(args.model, device)
    meta = model.metadata
    dataset = meta["train_config"]["dataset"]
    splits, manifest = data_mod.load(dataset, args.data_dir)
    test_x = splits.test[: args.test_subset] if args.test_subset else splits.test
    train_x = splits.train[: max(args.train_subset, args.active_units_n)]  # all that evaluate() reads
    result = evaluate(
        model, test_x.to(device), train_x.to(device), seed=args.seed, k=args.k,
        train_subset=args.train_subset, active_units_n=args.active_units_n, max_rows=args.max_rows,
        progress=lambda msg: print(msg, flush=True),
    )
    metrics = dict(
        run=dict(dataset=dataset, n_layers=meta["model_config"]["n_layers"],
                 objective=meta["train_config"]["objective"], k=meta["train_config"]["k"],
                 seed=meta["train_config"]["seed"], budget=meta["train_config"]["budget"],
                 continued_from=meta["train_config"]["init_from"]),
        train={k: v for k, v in meta.items() if k not in ("data",)},
        data=dict(train=meta["data"], eval=manifest, verified=bool(meta["data"]["verified"] and manifest["verified"])),
        eval=dict(result, device=device_name(device), peak_memory_mb=peak_memory_mb(device),
                  eval_config=dict(k=args.k, test_subset=args.test_subset, train_subset=args.train_subset,
                                   active_units_n=args.active_units_n, seed=args.seed, max_rows=args.max_rows),
                  eval_path="fast", code_version=code_version()),
    )
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(metrics, indent=2))
    au = "+".join(str(a) for a in result["active_units"])
    print(f"test log-likelihood (K={args.k}): {result['test_ll']:.3f}  active units: {au}  "
          f"({result['eval_seconds']:.1f} s on {metrics['eval']['device']})")


def cmd_report(args) -> None:
    from iwae import report

    report.main(args)


def build_parser() -> argparse.ArgumentParser:
    from iwae.train import TrainConfig

    defaults = {f.name: f.default for f in fields(TrainConfig)}
    p = argparse.ArgumentParser(prog="iwae", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)

    f = sub.add_parser("fetch", help="download (or copy from a mirror) and verify a dataset")
    f.add_argument("dataset", choices=["mnist", "omniglot"])
    f.add_argument("--data-dir", default="data", help="cache folder (default: data)")
    f.add_argument("--mirror", default=None, help="local mirror folder tried before the internet "
                   "(default: $IWAE_DATA_MIRROR); it holds <dataset>/<file>")
    f.add_argument("--source-file", default=None, help="use this local file as the dataset's file (still checksummed)")
    f.add_argument("--allow-unverified", action="store_true",
                   help="accept a file whose checksum does not match; every result records it")
    f.set_defaults(func=cmd_fetch)

    t = sub.add_parser("train", help="train one model with the paper's schedule (resumes a checkpoint in --out)")
    t.add_argument("--dataset", choices=["mnist", "omniglot"], default=defaults["dataset"])
    t.add_argument("--layers", type=int, choices=[1, 2], default=defaults["n_layers"], help="stochastic layers")
    t.add_argument("--objective", choices=["vae", "iwae"], default=defaults["objective"],
                   help="vae: K-sample average of ELBO terms; iwae: the bound L_K")
    t.add_argument("--k", type=int, default=defaults["k"], help="samples per data point in the objective")
    t.add_argument("--seed", type=int, default=0, help="seed of every random draw of the run")
    t.add_argument("--stages", type=_int_list, default=None,
                   help="comma-separated stage indices 0..7 to run (default: all 8, the paper)")
    t.add_argument("--epoch-scale", type=float, default=1.0, help="epochs of stage i = round(3^i * scale), >= 1")
    t.add_argument("--train-subset", type=int, default=None, help="use only the first N training images")
    t.add_argument("--batch-size", type=int, default=20, help="minibatch size (paper: 20)")
    t.add_argument("--optimizer", choices=["published", "paper_text"], default="published",
                   help="published: Adam as the authors' code ran it (Table 1); paper_text: torch Adam, beta1=0.9")
    t.add_argument("--checkpoint-minutes", type=float, default=10.0, help="also checkpoint every N minutes mid-epoch")
    t.add_argument("--init-from", default=None, help="model.pt to continue training from (Table 2)")
    t.add_argument("--budget", default="custom", help="name of the budget, recorded in the metadata")
    t.add_argument("--data-dir", default="data", help="where `iwae fetch` put the data")
    t.add_argument("--out", required=True, help="run folder: model.pt, train.json, checkpoint.pt while running")
    t.add_argument("--device", default="auto", help="auto (CUDA if present), cpu, cuda, cuda:N")
    t.add_argument("--threads", type=int, default=None, help="CPU threads (default: all cores)")
    t.add_argument("--force", action="store_true", help="train again even if model.pt exists")
    t.add_argument("--no-progress", action="store_true", help="no progress bar")
    t.set_defaults(func=cmd_train)

    e = sub.add_parser("evaluate", help="K=5000 log-likelihood, bounds and active units of a model -> metrics JSON")
    e.add_argument("--model", required=True, help="model.pt written by `iwae train`")
    e.add_argument("--out", required=True, help="metrics JSON to write")
    e.add_argument("--data-dir", default="data")
    e.add_argument("--k", type=int, default=5000, help="samples of the log-likelihood estimator (paper: 5000)")
    e.add_argument("--test-subset", type=int, default=None, help="evaluate on the first N test images (default: all)")
    e.add_argument("--train-subset", type=int, default=1000, help="training images for the train log-likelihood")
    e.add_argument("--active-units-n", type=int, default=500, help="training images for active units (paper: 500)")
    e.add_argument("--max-rows", type=int, default=5_000,
                   help="memory bound: images x samples per chunk (~ rows * 9.4 kB of peak memory)")
    e.add_argument("--seed", type=int, default=1234, help="seed of the binarisation and samples")
    e.add_argument("--device", default="auto")
    e.add_argument("--threads", type=int, default=None)
    e.set_defaults(func=cmd_evaluate)

    r = sub.add_parser("report", help="tables and figures from metrics JSON files")
    from iwae.report import add_arguments

    add_arguments(r)
    r.set_defaults(func=cmd_report)
    return p


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    from iwae.data import DataError
    from iwae.train import NonFiniteLoss

    try:
        args.func(args)
    except (DataError, NonFiniteLoss, ValueError, RuntimeError) as e:
        sys.exit(f"iwae {args.command}: error: {e}")


if __name__ == "__main__":
    main()
