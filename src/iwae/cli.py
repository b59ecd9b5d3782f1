"""iwae: fetch the data, train and evaluate the models of Burda et al. (ICLR 2016), make tables and figures.

Commands: fetch, train, evaluate, report, snr. Every option is described by: iwae COMMAND --help
"""

from __future__ import annotations

import argparse
import itertools
import json
import signal
import sys
from pathlib import Path


def _int_list(text: str) -> list[int]:
    return [int(t) for t in text.split(",") if t.strip()]


def _str_list(text: str) -> list[str]:
    return [t.strip() for t in text.split(",") if t.strip()]


def _choices_list(choices, kind=str):
    """A comma-separated list whose every item is one of ``choices``."""
    def parse(text: str) -> list:
        values = [kind(t) for t in _str_list(text)]
        bad = [v for v in values if v not in choices]
        if bad or not values:
            raise argparse.ArgumentTypeError(f"{text!r}: expected comma-separated values from {list(choices)}")
        return values
    return parse


class _Help(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """Shows every option's default (unless its help says it) and keeps the description's line breaks."""

    def _get_help_string(self, action):
        return action.help if "default" in (action.help or "") else super()._get_help_string(action)


def cmd_fetch(args) -> None:
    from iwae.data import fetch

    manifest = fetch(args.dataset, args.data_dir, mirror=args.mirror, source_file=args.source_file,
                     allow_unverified=args.allow_unverified)
    for rec in manifest["files"]:
        flag = "verified" if rec["verified"] else "UNVERIFIED (explicitly allowed)"
        print(f"{args.dataset}/{rec['file']}: {rec['algorithm']} {rec['checksum']} {flag}; from {rec['source']}")


def _groups(args) -> list[tuple[list, list[Path]]]:
    """The stacks to train: one per (dataset, layers, K) of the product of --dataset, --layers and --k, each
    of every objective with every seed; -> [(configs, output folders)]."""
    from iwae.config import TrainConfig

    groups = list(itertools.product(args.dataset, args.layers, args.k))
    objectives, seeds = args.objectives or [args.objective], args.seeds or [args.seed]
    pairs = list(itertools.product(objectives, seeds))
    if len(pairs) > 1 and not ("{objective}" in args.out or "{seed}" in args.out):
        raise ValueError(f"{len(pairs)} members need one folder each: put {{objective}} and {{seed}} in --out, "
                         f"e.g. --out 'runs/{{objective}}-k{{k}}/seed{{seed}}'")
    out = []
    for dataset, layers, k in groups:
        cfgs, outs = [], []
        for objective, seed in pairs:
            fill = dict(objective=objective, seed=seed, dataset=dataset, layers=layers, k=k)
            cfgs.append(TrainConfig(
                dataset=dataset, n_layers=layers, objective=objective, k=k, seed=seed,
                stages=args.stages, epoch_scale=args.epoch_scale, train_subset=args.train_subset,
                batch_size=args.batch_size, optimizer=args.optimizer, init=args.init, data_order=args.data_order,
                init_from=args.init_from.format(**fill) if args.init_from else None,
                continue_state=not args.fresh_optimizer, budget=args.budget))
            outs.append(Path(args.out.format(**fill)))
        out.append((cfgs, outs))
    folders = [o for _, outs in out for o in outs]
    if len(set(folders)) != len(folders):
        what = "{dataset}, {layers}, {k}, " if len(groups) > 1 else ""
        raise ValueError(f"--out {args.out!r} gives the same folder to several members; add {what}"
                         f"{{objective}}/{{seed}}")
    return out


def cmd_train(args) -> None:
    from iwae.runtime import resolve_device, set_threads, tune_allocator
    from iwae.train import Interrupted, Run, train_together

    set_threads(args.threads)
    tune_allocator()
    groups = _groups(args)
    todo = []
    for cfgs, outs in groups:
        done = [o for o in outs if (o / "model.pt").exists()]
        if len(done) == len(outs) and len(groups) > 1 and not args.force:
            print(f"iwae train: {outs[0].parent} ...: finished (every member has its model.pt); skipped", flush=True)
        elif done and not args.force:
            sys.exit(f"iwae train: {', '.join(f'{o}/model.pt' for o in done)} exist(s): finished. Use --force to "
                     f"train {'them' if len(done) > 1 else 'it'} again" +
                     (", or leave the finished members out of the stack." if len(done) < len(outs) else "."))
        else:
            todo.append((cfgs, outs))
    # A scheduler's SIGTERM (preemption, time limit) or Ctrl-C: checkpoint at the next step, then exit.
    stop = {"requested": False}

    def request_stop(signum, frame):
        stop["requested"] = True

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    device = resolve_device(args.device)
    runs = [Run(cfgs, args.data_dir, outs, device, args.step, args.checkpoint_minutes, progress=not args.no_progress,
                together=len(todo), until_stage=args.until_stage) for cfgs, outs in todo]
    try:
        metas = train_together(runs, should_stop=lambda: stop["requested"])
    except Interrupted as e:
        print(f"iwae train: interrupted: {e}. Run the same command again to resume.", file=sys.stderr)
        sys.exit(143)
    for run, group in zip(runs, metas):
        if not run.finished:
            print(f"{', '.join(map(str, run.outs))}: trained through stage {args.until_stage} (epoch {run.epoch} of "
                  f"{len(run.plan)}); {run.ckpt} holds its state: a later --until-stage, or none, goes on from it",
                  flush=True)
        for meta, out in zip(group, run.outs):
            print(f"{out}: {meta['epochs']} epochs ({meta['updates']} updates) in {meta['train_seconds']:.1f} s "
                  f"(a stack of {meta['stack_size']}) on {meta['device']}; final train objective "
                  f"{meta['history'][-1]['train_objective']:.3f}")


def cmd_evaluate(args) -> None:
    from iwae import data as data_mod
    from iwae.checkpoint import load_model
    from iwae.evaluate import evaluate, metrics_record
    from iwae.runtime import code_version, device_name, peak_memory_mb, resolve_device, set_threads, tune_allocator

    if len(args.model) != len(args.out):
        raise ValueError(f"{len(args.model)} --model files but {len(args.out)} --out files: give one of each per model")
    set_threads(args.threads)
    tune_allocator()
    device = resolve_device(args.device)
    loaded = {}
    for model_path, out in zip(args.model, args.out):
        model = load_model(model_path, device)
        meta = model.metadata
        tc = meta["train_config"]
        if tc["dataset"] not in loaded:  # several models of one data set: the data are read once
            splits, manifest = data_mod.load(tc["dataset"], args.data_dir)
            test_x = splits.test[: args.test_subset] if args.test_subset else splits.test
            train_x = splits.train[: max(args.train_subset, args.active_units_n)]  # all that evaluate() reads
            loaded[tc["dataset"]] = (test_x.to(device), train_x.to(device), manifest)
        test_x, train_x, manifest = loaded[tc["dataset"]]
        result = evaluate(
            model, test_x, train_x, seed=args.seed, k=args.k, bound_ks=tuple(args.bound_ks) + (tc["k"],),
            train_subset=args.train_subset, active_units_n=args.active_units_n, max_rows=args.max_rows,
            activity_ddof=args.activity_ddof, active_only=not args.no_active_only,
            progress=lambda msg: print(f"{model_path}: {msg}", flush=True),
        )
        eval_config = dict(k=args.k, test_subset=args.test_subset, train_subset=args.train_subset,
                           active_units_n=args.active_units_n, seed=args.seed, max_rows=args.max_rows,
                           activity_ddof=args.activity_ddof, active_only=not args.no_active_only)
        metrics = metrics_record(meta, manifest, result, eval_config, device_name(device), peak_memory_mb(device),
                                 code_version())
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        Path(out).write_text(json.dumps(metrics, indent=1))
        au = "+".join(str(a) for a in result["active_units"])
        print(f"{model_path}: test log-likelihood (K={args.k}) {result['test_ll']:.3f}, active units {au} "
              f"({result['eval_seconds']:.1f} s on {metrics['eval']['device']})", flush=True)


def cmd_peek(args) -> None:
    from iwae.checkpoint import models_so_far, save_atomic

    blobs = models_so_far(args.checkpoint)
    if len(blobs) != len(args.out):
        raise ValueError(f"{args.checkpoint} holds a stack of {len(blobs)} model(s) but {len(args.out)} --out "
                         f"file(s) were given: give one per member, in the stack's order")
    for blob, out in zip(blobs, args.out):
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        save_atomic(blob, Path(out))
        at = blob["metadata"]["in_training"]
        print(f"{out}: {blob['metadata']['train_config']['objective']} K={blob['metadata']['train_config']['k']} "
              f"seed {blob['metadata']['train_config']['seed']} as trained so far ({blob['metadata']['epochs']:,} "
              f"epochs and {at['step']:,} minibatches of the next, in stage {at['stage']})", flush=True)


def cmd_report(args) -> None:
    import pandas as pd

    from iwae import figures, records, report, snr

    if args.what == "samples":
        figures.samples(args.inputs, Path(args.out))
    elif args.what == "family":
        if not (args.table3 or args.estimators or args.snr):
            raise SystemExit("iwae report family: nothing to write; give --table3, --estimators and/or --snr")
        out = Path(args.out)
        t3 = report.write_table3(args.table3, out / "tables" / "table3") if args.table3 else None
        te = report.write_estimators(args.estimators, out / "tables" / "estimators") if args.estimators else None
        fitted = None
        if args.snr:  # the slopes `iwae snr` fitted, beside its summaries
            rows = pd.read_csv(args.snr)
            fitted = pd.read_csv(Path(args.snr).with_name(Path(args.snr).stem + "_slopes.csv"))
            rows, fitted = snr.name_with_epochs(rows, snr.split_undefined(rows, fitted))
            report.write_snr_table(rows, fitted, out / "tables" / "snr")
            figures.snr_figure(rows, fitted, out / "figures" / "snr")
        report.write_family_claims(t3, te, fitted, out / "tables" / "family_claims")
    else:
        df = records.one_per_model(records.collect(args.inputs, args.first_images))
        curve_df = None
        if args.curve:  # a learning curve on one set of images: the first N that every point was evaluated on
            curve_df = records.collect(args.curve, args.first_images)
            if curve_df.n_test.nunique() > 1:
                curve_df = records.collect(args.curve, int(curve_df.n_test.min()))
        if args.what == "tables":
            floor = pd.read_csv(args.noise_floor) if args.noise_floor else None
            report.write_tables(df, Path(args.out), curve_df, floor)
        else:
            print("figures:", ", ".join(figures.write_figures(df, Path(args.out), curve_df)))


def _report_arguments(p) -> None:
    sub = p.add_subparsers(dest="what", required=True, metavar="WHAT")
    for what, helptext in (("tables", "Table 1, Table 2, wall-clock, learning curve, noise floor, claims (csv, md, tex)"),
                           ("figures", "the figures (pdf and png); those against K only for a run with several K")):
        s = sub.add_parser(what, help=helptext, formatter_class=_Help)
        s.add_argument("inputs", nargs="+", help="metrics JSON files")
        s.add_argument("--curve", nargs="*", default=None, help="metrics of stage snapshots: a learning curve")
        s.add_argument("--first-images", type=int, default=None,
                       help="the test NLL and every comparison on the first N evaluated test images only (to put runs "
                            "evaluated on different subsets side by side)")
        s.add_argument("--out", required=True, help="output folder")
        if what == "tables":
            s.add_argument("--noise-floor", default=None,
                           help="noise_floor.csv of a run with several seeds: shown beside a one-seed run's intervals")
    s = sub.add_parser("samples", help="samples of each generative model, one labelled matrix per data set and "
                                       "architecture", formatter_class=_Help)
    s.add_argument("inputs", nargs="+", help="model.pt files")
    s.add_argument("--out", required=True, help="output file name without extension (writes .pdf and .png)")
    s = sub.add_parser("family", help="beyond the paper: Table 3, the estimators, the SNR slopes and figure "
                                      "(each part whose inputs are given)", formatter_class=_Help)
    s.add_argument("--table3", nargs="+", default=[], help="metrics of the Table 3 runs")
    s.add_argument("--estimators", nargs="+", default=[], help="metrics of the estimator runs")
    s.add_argument("--snr", default=None, help="snr.csv of `iwae snr` (its fitted slopes are read from snr_slopes.csv beside it)")
    s.add_argument("--out", required=True, help="results folder (writes tables/ and figures/ in it)")


def cmd_snr(args) -> None:
    from iwae import snr

    snr.main(args)


def build_parser() -> argparse.ArgumentParser:
    from iwae import __version__
    from iwae.config import DATA_ORDERS, TrainConfig
    from iwae.data import DATASETS
    from iwae.evaluate import AUTHORS_DDOF
    from iwae.model import INITS
    from iwae.optim import OPTIMIZERS
    from iwae import objectives
    from iwae.stack import STEP_MODES

    d = TrainConfig()
    p = argparse.ArgumentParser(prog="iwae", description=__doc__, formatter_class=_Help)
    p.add_argument("--version", action="version", version=f"iwae {__version__}")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    f = sub.add_parser("fetch", help="download (or copy from a mirror) and verify a dataset", formatter_class=_Help,
                       description="Put a dataset's files in the cache folder and verify their checksums.")
    f.add_argument("dataset", choices=sorted(DATASETS))
    f.add_argument("--data-dir", default="data", help="cache folder")
    f.add_argument("--mirror", default=None, help="local mirror folder tried before the internet "
                   "(default: $IWAE_DATA_MIRROR); it holds <dataset>/<file>")
    f.add_argument("--source-file", default=None, help="use this local file as the dataset's file (still checksummed)")
    f.add_argument("--allow-unverified", action="store_true",
                   help="accept a file whose checksum does not match; every result records it")
    f.set_defaults(func=cmd_fetch)

    t = sub.add_parser(
        "train", formatter_class=_Help, help="train a model, or a stack of models together, with the paper's schedule",
        description="Train with the paper's schedule (resumes the checkpoints in the output folders).\n"
                    "Several --objectives/--seeds train as one stack (one process, batched): each member ends\n"
                    "where training it alone would. The defaults are the authors' procedure.",
        epilog="objectives and estimators (--objective, --objectives):\n" + objectives.describe())
    t.add_argument("--dataset", type=_choices_list(DATASETS), default=[d.dataset],
                   help="data set; several (comma-separated) train as separate stacks in one process")
    t.add_argument("--layers", type=_choices_list((1, 2), int), default=[d.n_layers],
                   help="stochastic layers; several (comma-separated): separate stacks in one process")
    t.add_argument("--objective", default=d.objective,
                   help="training objective or estimator: a name of the registry (listed below)")
    t.add_argument("--objectives", type=_str_list, default=None, help="comma-separated: train these together")
    t.add_argument("--k", type=_int_list, default=[d.k],
                   help="samples per data point in the objective; several (comma-separated): separate stacks in one "
                        "process (on CUDA each on its own stream, side by side on the GPU)")
    t.add_argument("--seed", type=int, default=d.seed, help="seed of every random draw of the run")
    t.add_argument("--seeds", type=_int_list, default=None, help="comma-separated: train these seeds together")
    t.add_argument("--stages", type=_int_list, default=None,
                   help="comma-separated stage indices 0..7 to run (default: all 8, the paper)")
    t.add_argument("--epoch-scale", type=float, default=d.epoch_scale, help="epochs of stage i = round(3^i x scale), >= 1")
    t.add_argument("--train-subset", type=int, default=None, help="use only the first N training images")
    t.add_argument("--batch-size", type=int, default=d.batch_size, help="minibatch size (the paper's)")
    t.add_argument("--optimizer", choices=OPTIMIZERS, default=d.optimizer,
                   help="published: Adam as the authors' code ran it (Theano's order); published_torch_order: the "
                        "same constants in torch's order; paper_text: torch's Adam, beta1 = 0.9")
    t.add_argument("--init", choices=INITS, default=d.init,
                   help="authors: the published initial weights (the same for every seed); seeded: independent "
                        "Glorot-uniform weights from the seed")
    t.add_argument("--data-order", choices=DATA_ORDERS, default=d.data_order,
                   help="fixed: minibatch i is rows 20i..20i+19 every epoch (the authors'); reshuffle: a new order "
                        "every epoch")
    t.add_argument("--init-from", default=None,
                   help="model.pt to continue training from (Table 2); may contain {objective} and {seed}")
    t.add_argument("--fresh-optimizer", action="store_true",
                   help="with --init-from: start a new optimiser and random state instead of continuing the "
                        "first run's (the authors continue them)")
    t.add_argument("--budget", default=d.budget, help="name of the budget, recorded in the metadata")
    t.add_argument("--data-dir", default="data", help="where `iwae fetch` put the data")
    t.add_argument("--out", required=True,
                   help="run folder (model.pt, train.json; checkpoint.pt while running); for several members a "
                        "pattern with {objective} and {seed} (and {dataset}, {layers}, {k} for several stacks)")
    t.add_argument("--until-stage", type=int, default=None,
                   help="train only up to the end of this stage (its snapshots written, its state kept in "
                        "checkpoint.pt); the same command with a later stage, or without it, goes on (default: all)")
    t.add_argument("--checkpoint-minutes", type=float, default=10.0,
                   help="checkpoint every N minutes (and at every stage's end, and on SIGTERM)")
    t.add_argument("--step", choices=STEP_MODES, default="auto",
                   help="how the step runs: eager; captured (recorded as a CUDA graph and replayed; CUDA only); "
                        "compiled (torch.compile'd forward, backward and update); fused (compiled and captured; CUDA "
                        "only); auto: captured on CUDA, eager elsewhere. All but eager run the published Adam update only: "
                        "with --optimizer paper_text or published_torch_order, auto runs eager")
    t.add_argument("--device", default="auto", help="auto (CUDA if present), cpu, cuda, cuda:N")
    t.add_argument("--threads", type=int, default=None, help="CPU threads (default: all cores)")
    t.add_argument("--force", action="store_true", help="train again even if model.pt exists")
    t.add_argument("--no-progress", action="store_true", help="print nothing per epoch")
    t.set_defaults(func=cmd_train)

    e = sub.add_parser("evaluate", formatter_class=_Help,
                       help="K=5000 log-likelihood, bounds and active units of models -> metrics JSON",
                       description="Evaluate one or several models (one process; data read once).")
    e.add_argument("--model", required=True, nargs="+", help="model.pt file(s) written by `iwae train`")
    e.add_argument("--out", required=True, nargs="+", help="metrics JSON file(s) to write, one per model")
    e.add_argument("--data-dir", default="data", help="where `iwae fetch` put the data")
    e.add_argument("--k", type=int, default=5000, help="samples of the log-likelihood estimator (the paper's)")
    e.add_argument("--bound-ks", type=_int_list, default=[1, 5, 50],
                   help="also the test bounds L_K for these K (and the model's training K)")
    e.add_argument("--test-subset", type=int, default=None, help="evaluate on the first N test images (default: all)")
    e.add_argument("--train-subset", type=int, default=1000, help="training images for the train log-likelihood")
    e.add_argument("--active-units-n", type=int, default=500, help="training images for active units (the paper's)")
    e.add_argument("--activity-ddof", type=int, choices=[0, 1], default=AUTHORS_DDOF,
                   help="variance of the activity statistic: 0 as the published code (np.var), 1 unbiased")
    e.add_argument("--max-rows", type=int, default=None,
                   help="memory bound: images x samples per chunk, ~9.4 kB each (default: 5,000 on CPU, 250,000 on GPU)")
    e.add_argument("--seed", type=int, default=1234, help="seed of the binarisation and samples")
    e.add_argument("--no-active-only", action="store_true",
                   help="skip the test log-likelihood with the inactive units removed (a second K=5000 estimate)")
    e.add_argument("--device", default="auto", help="auto (CUDA if present), cpu, cuda, cuda:N")
    e.add_argument("--threads", type=int, default=None, help="CPU threads (default: all cores)")
    e.set_defaults(func=cmd_evaluate)

    pk = sub.add_parser("peek", formatter_class=_Help,
                       help="the models of a run in training as they are now (from its checkpoint) -> model files",
                       description="Write the models a run's checkpoint.pt holds as model files that `iwae evaluate` "
                                   "and `iwae report samples` read, to see a long stage's progress before it ends. "
                                   "The run is not touched; a model file says where it was taken (in_training).")
    pk.add_argument("checkpoint", help="checkpoint.pt of a run in training (in its first member's folder)")
    pk.add_argument("--out", required=True, nargs="+", help="model file(s) to write, one per member of the stack")
    pk.set_defaults(func=cmd_peek)

    r = sub.add_parser("report", help="tables, figures and sample images from metrics and model files",
                       formatter_class=_Help)
    _report_arguments(r)
    r.set_defaults(func=cmd_report)

    from iwae.snr import add_arguments as snr_arguments

    s = sub.add_parser("snr", help="gradient signal-to-noise ratios of the estimators against K (Rainforth et al.)",
                       formatter_class=_Help)
    snr_arguments(s)
    s.set_defaults(func=cmd_snr)
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
