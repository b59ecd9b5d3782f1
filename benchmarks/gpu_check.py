"""The GPU check (run by benchmarks/gpu_check.sh): CUDA tests, step timings, a K=5000 evaluation, and the
paper budget projected on this GPU from what it measured.

1. tests/test_gpu.py (CUDA against CPU, captured against eager, the K=5000 estimate against the CPU's);
2. per-model step time, eager and captured, for stacks of M = 1, 2, 5, 10 models, K in {1, 5, 50}, 1 and 2
   stochastic layers (the real training step: binarisation, noise, forward, backward, published Adam);
3. one K=5000 evaluation of the 10,000 MNIST test images (the whole `iwae evaluate`, and its K=5000
   log-likelihood alone), for each architecture;
4. the paper budget (Table 1 + Table 2, evaluations included) for one seed and for five, from those
   measurements: each (dataset, layers, K) group a stack of its VAE and IWAE members (x seeds), and,
   as the baseline, one eager model per job;
5. end to end, as a user runs it: `iwae train` (MNIST, 2 layers, VAE and IWAE at K=50 as one stack, the
   first two stages = 4 epochs, the captured step) and `iwae evaluate` of both (K=5000, all test images),
   timed from outside, against what item 2 measured for the same stack.
Writes results/benchmarks/gpu_train.csv, gpu_eval.csv, gpu_projection.csv, gpu_end_to_end.csv and
gpu_check.json, each naming the GPU; each CSV is rewritten after every row, so a stopped check keeps what
it measured. Usage: python benchmarks/gpu_check.py [--steps N] [--skip-tests] [--skip-end-to-end]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from common import OUT, REPO, make_stack, time_rounds, write_csv

from iwae.evaluate import evaluate, log_likelihood
from iwae.model import IWAEModel, ModelConfig, initialise
from iwae.projection import paper_jobs, project
from iwae.runtime import device_name, no_tf32

KS, MEMBERS, LAYERS = (1, 5, 50), (1, 2, 5, 10), (1, 2)


def step_ms(layers: int, k: int, members: int, mode: str, grey: torch.Tensor, steps: int) -> float:
    """Milliseconds per step of a stack of `members` models (the whole stack; divide by M per model), after 20
    warm-up steps (and, captured, the recording)."""
    st = make_stack(grey, layers, k, members, mode=mode)
    ms = 1e3 * time_rounds({mode: st.step}, torch.device("cuda"), rounds=1, number=steps, warmup=20)[mode][0]
    if not torch.isfinite(st.partial).all():
        raise RuntimeError(f"non-finite loss while timing L{layers} K={k} M={members} {mode}")
    return ms


def run_tests() -> dict:
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/test_gpu.py"],
                          cwd=REPO, capture_output=True, text=True)
    print(proc.stdout[-3000:], proc.stderr[-2000:], flush=True)
    return dict(passed=proc.returncode == 0, seconds=round(time.perf_counter() - t0, 1),
                summary=proc.stdout.strip().splitlines()[-1] if proc.stdout.strip() else proc.stderr[-300:])


def end_to_end(data_dir: str, name: str, stack_ms: float) -> dict:
    """`iwae train` + `iwae evaluate` as a user runs them, timed from outside (start-up and I/O included)."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "{objective}-k50"
        cli = [sys.executable, "-m", "iwae"]
        train_cmd = cli + ["train", "--dataset", "mnist", "--layers", "2", "--objectives", "vae,iwae", "--k", "50",
                           "--stages", "0,1", "--step", "captured", "--device", "cuda", "--data-dir", data_dir,
                           "--no-progress", "--out", str(out)]
        t0 = time.perf_counter()
        proc = subprocess.run(train_cmd, capture_output=True, text=True)
        train_s = time.perf_counter() - t0
        print(proc.stdout[-1500:], proc.stderr[-1500:], flush=True)
        row = dict(device=name, what="MNIST L2 VAE+IWAE K=50, stages 0-1, captured", train_ok=proc.returncode == 0,
                   train_wall_s=round(train_s, 1))
        if proc.returncode == 0:
            meta = json.loads((Path(tmp) / "iwae-k50" / "train.json").read_text())
            row.update(updates=meta["updates"], train_seconds_in_loop=round(meta["train_seconds"], 1),
                       ms_per_update_stack=round(1e3 * meta["train_seconds"] / meta["updates"], 4),
                       timed_stack_ms_same_config=stack_ms)
            models = [str(Path(tmp) / f"{o}-k50" / "model.pt") for o in ("vae", "iwae")]
            metrics = [str(Path(tmp) / f"{o}-k50" / "metrics.json") for o in ("vae", "iwae")]
            t0 = time.perf_counter()
            proc = subprocess.run(cli + ["evaluate", "--model", *models, "--out", *metrics, "--device", "cuda",
                                         "--data-dir", data_dir], capture_output=True, text=True)
            row.update(evaluate_ok=proc.returncode == 0, evaluate_wall_s_two_models=round(time.perf_counter() - t0, 1))
            print(proc.stdout[-1500:], proc.stderr[-1500:], flush=True)
            if proc.returncode == 0:
                for o, path in zip(("vae", "iwae"), metrics):
                    m = json.loads(Path(path).read_text())
                    row[f"{o}_test_nll"] = round(-m["eval"]["test_ll"], 3)
                    row[f"{o}_active_units"] = m["eval"]["active_units_total"]
                    row[f"{o}_eval_seconds"] = round(m["eval"]["eval_seconds"], 2)
    write_csv([row], "gpu_end_to_end.csv")
    print(f"end to end: {row}", flush=True)
    return row


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--data-dir", default=os.environ.get("IWAE_DATA_DIR", str(REPO / "data")),
                    help="a data cache with MNIST (gpu_check.sh fetches it from $IWAE_DATA_MIRROR)")
    ap.add_argument("--steps", type=int, default=200, help="timed steps per measurement")
    ap.add_argument("--skip-tests", action="store_true")
    ap.add_argument("--skip-end-to-end", action="store_true")
    args = ap.parse_args()
    if not torch.cuda.is_available():
        sys.exit("gpu_check: no CUDA GPU here")
    no_tf32()
    device = torch.device("cuda")
    name = device_name(device)
    summary = dict(device=name, torch=torch.__version__, started=time.strftime("%Y-%m-%d %H:%M:%S"))
    print(f"GPU check on {name}, torch {torch.__version__}", flush=True)
    summary["tests"] = {"passed": None} if args.skip_tests else run_tests()

    from iwae import data as data_mod

    splits, _ = data_mod.load("mnist", args.data_dir)
    grey = splits.train.to(device)

    rows = []
    for layers in LAYERS:
        for k in KS:
            for members in MEMBERS:
                for mode in ("eager", "captured"):
                    try:
                        ms = step_ms(layers, k, members, mode, grey, args.steps)
                        error = ""
                    except Exception as e:  # a failed capture is a result too
                        ms, error = float("nan"), f"{type(e).__name__}: {e}"[:300]
                    rows.append(dict(device=name, layers=layers, k=k, members=members, mode=mode,
                                     stack_ms=round(ms, 4), ms_per_model=round(ms / members, 4), error=error))
                    print(f"L{layers} K={k:>2} M={members:>2} {mode:>8}: {ms:8.3f} ms/step, "
                          f"{ms / members:7.3f} ms per model {error}", flush=True)
                    write_csv(rows, "gpu_train.csv")

    evals = []
    for layers in LAYERS:
        model = initialise(IWAEModel(ModelConfig(layers)), "authors", torch.zeros(784)).to(device).eval()
        test, train = splits.test.to(device), splits.train[:1000].to(device)
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        log_likelihood(model, (test > 0.5).float(), 5000, generator=torch.Generator(device=device).manual_seed(0),
                       max_rows=250_000)
        torch.cuda.synchronize()
        ll_s = time.perf_counter() - t0
        result = evaluate(model, test, train, k=5000)
        evals.append(dict(device=name, layers=layers, test_images=test.shape[0], k=5000,
                          log_likelihood_seconds=round(ll_s, 2), evaluate_seconds=round(result["eval_seconds"], 2)))
        print(f"L{layers}: K=5000 on {test.shape[0]} test images: {ll_s:.1f} s (log-likelihood), "
              f"{result['eval_seconds']:.1f} s (the whole evaluation)", flush=True)
        write_csv(evals, "gpu_eval.csv")

    step = {(r["layers"], r["k"], r["members"], r["mode"]): r["stack_ms"] for r in rows}

    def best(layers, k, members):
        options = {m: step[(layers, k, members, m)] for m in ("eager", "captured")
                   if step[(layers, k, members, m)] == step[(layers, k, members, m)]}  # not NaN
        mode = min(options, key=options.get)
        return options[mode], mode

    eval_s = {e["layers"]: e["evaluate_seconds"] for e in evals}
    proj = []
    for seeds in (1, 5):
        jobs = paper_jobs(seeds)  # each group: VAE and IWAE of every seed, trained together
        stacked = project(jobs, lambda j: best(j.layers, j.k, j.members)[0], lambda j: j.members * eval_s[j.layers])
        baseline = project(jobs, lambda j: j.members * step[(j.layers, j.k, 1, "eager")],
                           lambda j: j.members * eval_s[j.layers])  # one eager model per job
        modes = {best(j.layers, j.k, j.members)[1] for j in jobs}
        proj.append(dict(device=name, seeds=seeds, models=sum(j.members for j in jobs),
                         step_modes="/".join(sorted(modes)), train_hours=round(stacked["train_hours"], 2),
                         eval_hours=round(stacked["eval_hours"], 2), total_hours=round(stacked["total_hours"], 2),
                         baseline_one_eager_model_per_job_hours=round(baseline["total_hours"], 2)))
        p = proj[-1]
        print(f"paper budget, {seeds} seed(s), {p['models']} models: {p['total_hours']} GPU-hours "
              f"(train {p['train_hours']} h with {p['step_modes']} stacked steps, evaluation {p['eval_hours']} h); "
              f"one eager model per job: {p['baseline_one_eager_model_per_job_hours']} h", flush=True)
    write_csv(proj, "gpu_projection.csv")
    summary.update(projection=proj, evaluation=evals)
    (OUT / "gpu_check.json").write_text(json.dumps(summary, indent=2))
    if not args.skip_end_to_end:
        summary["end_to_end"] = end_to_end(args.data_dir, name, step[(2, 50, 2, "captured")])
    summary["finished"] = time.strftime("%Y-%m-%d %H:%M:%S")
    (OUT / "gpu_check.json").write_text(json.dumps(summary, indent=2))
    print(f"wrote {OUT}/gpu_train.csv, gpu_eval.csv, gpu_projection.csv, gpu_check.json", flush=True)
    if summary["tests"]["passed"] is False:
        sys.exit("gpu_check: the CUDA tests failed (see above); the timings are written, but a step mode whose "
                 "test fails must not be the default on CUDA (iwae.stack.resolve_step_mode)")


if __name__ == "__main__":
    main()
