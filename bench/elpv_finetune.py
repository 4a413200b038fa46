"""Benchmark: the ELPV `finetune` recipe of examples/elpv.py with one option changed at a time, per seed.

    python examples/elpv.py --prepare-only --out elpv-data      # the paper's split, once
    python bench/elpv_finetune.py elpv-data [--tasks 4class] [--options recipe,label-smoothing] [--seeds 0,1,2]
                                            [--runs runs/elpv-finetune] [--results finetune.jsonl] [--quick]

Every run starts, as the example's does, from the `features` recipe's run of the same task and seed (trained here
first when `RUNS/<task>-features-<seed>` is missing) and changes exactly one thing of the fine-tune recipe (the top
3 blocks of EfficientNet-Lite0 unfrozen, Adam 1e-4, cosine over 15 epochs, flips and 90° turns):

    recipe            the example's recipe as it is
    label-smoothing   + label smoothing 0.1
    mixup             + mixup, α = 0.2
    cutmix            + CutMix, α = 1.0
    one-cycle         fastai's `fine_tune` schedule: one cycle up to 3e-4, discriminative rates (lowest block 10× lower)
    gradual           the 3 blocks unfrozen one at a time, top first (the 15 epochs shared among the 3 stages)

Prints the saved model's validation accuracy, ROC-AUC (binary) and the accuracy with the eight test-time
orientations per run, then mean ± std per option over the seeds; with --results, one JSON line per run. A run
takes 22–26 minutes on 2 CPU cores (docs/elpv.md); --quick (1 epoch each) is a smoke test, not the benchmark.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "examples"))
from elpv import RECIPES  # noqa: E402  the recipes live in the example, once

OPTIONS = {
    "recipe": {},
    "label-smoothing": dict(label_smoothing=0.1),
    "mixup": dict(mixup=0.2),
    "cutmix": dict(cutmix=1.0),
    "one-cycle": dict(schedule="onecycle", discriminative=10.0, finetune_learning_rate=3e-4),
    "gradual": dict(gradual=True),
}


def start_run(data: Path, runs: Path, task: str, seed: int, quick: bool) -> Path:
    """The `features` run of this task and seed that the fine-tune starts from (trained when missing)."""
    import transferkit as tk

    run = runs / f"{task}-features-{seed}"
    if not (run / "metrics.json").is_file():
        strategy, options = RECIPES["features"]
        if quick:
            options = dict(options, epochs=2)
        tk.train(data / task, strategy=strategy, seed=seed, runs_root=runs, name=run.name, overwrite=True,
                 **options)
    return run


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("data", type=Path, help="the folder written by examples/elpv.py --prepare-only")
    ap.add_argument("--tasks", default="4class")
    ap.add_argument("--options", default="recipe", help=f"comma-separated, from {', '.join(OPTIONS)}")
    ap.add_argument("--seeds", default="0", help="comma-separated seeds (default: 0)")
    ap.add_argument("--runs", type=Path, default=Path("runs/elpv-finetune"))
    ap.add_argument("--results", type=Path, default=None, help="append one JSON line per run to this file")
    ap.add_argument("--quick", action="store_true", help="one epoch per stage: a smoke test, not the benchmark")
    args = ap.parse_args(argv)
    labels = [o for o in args.options.split(",") if o]
    unknown = [o for o in labels if o not in OPTIONS]
    if unknown:
        raise SystemExit(f"--options must name options from {list(OPTIONS)}. Received: {unknown}")
    try:
        seeds = [int(s) for s in args.seeds.split(",")]
    except ValueError:
        raise SystemExit(f"--seeds must be comma-separated integers, e.g. 0,1,2. Received: {args.seeds!r}") from None
    import transferkit as tk

    for task in args.tasks.split(","):
        if not (args.data / task / "train").is_dir():
            raise SystemExit(f"{args.data / task} has no train/ folder: run "
                             f"`python examples/elpv.py --prepare-only --out {args.data}` first.")
        for label in labels:
            scores = []
            for seed in seeds:
                strategy, options = RECIPES["finetune"]
                options = {**options, **OPTIONS[label], "seed": seed,
                           "init_from": start_run(args.data, args.runs, task, seed, args.quick)}
                if args.quick:
                    options["finetune_epochs"] = 3 if label == "gradual" else 1
                t = time.perf_counter()
                result = tk.train(args.data / task, strategy=strategy, runs_root=args.runs, overwrite=True,
                                  name=f"{task}-finetune-{label}-{seed}", **options)
                seconds = time.perf_counter() - t
                tta = tk.evaluate(result.run_dir, args.data / task / "validation", tta="dihedral")["accuracy"]
                row = {"task": task, "option": label, "seed": seed, "accuracy": result.metrics["accuracy"],
                       "roc_auc": result.metrics.get("roc_auc"), "tta_dihedral": tta, "train_s": round(seconds),
                       "run": str(result.run_dir)}
                scores.append(row["accuracy"])
                auc = f", ROC-AUC {row['roc_auc']:.3f}" if row["roc_auc"] is not None else ""
                print(f"{task} {label} seed {seed}: {row['accuracy']:.2%}{auc}, --tta dihedral {tta:.2%} "
                      f"({seconds / 60:.0f} min)", flush=True)
                if args.results:
                    with open(args.results, "a") as f:
                        f.write(json.dumps(row) + "\n")
            spread = f" ± {np.std(scores, ddof=1):.2%}" if len(scores) > 1 else ""
            print(f"== {task} {label}: {np.mean(scores):.2%}{spread} (seeds {args.seeds})", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
