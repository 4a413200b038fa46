"""Benchmark: the ELPV `features` recipe (whole cell, Adam 1e-3 — the default for a pooled head — up to 100 epochs,
patience 20) over seeds 0, 1, 2, alone, with label smoothing 0.1 or mixup 0.2, and at the learning rate
`lr_find` suggests for the task's head; mean ± standard deviation.

    python examples/elpv.py --prepare-only --out elpv-data      # the paper's split, once
    python bench/elpv_seeds.py elpv-data [--tasks 4class,binary] [--recipes features,lr-find] [--runs runs/elpv-seeds]
                                         [--precision auto|float32|bfloat16]

The split is fixed (seed 0); the seed changes the head's initialisation, dropout and data order. The features are
extracted once per task (cached) and shared by every run.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

RECIPES = {"features": {}, "label-smoothing": dict(label_smoothing=0.1), "mixup": dict(mixup=0.2),
           "lr-find": None}  # None: the learning rate lr_find suggests on this task's cached features
BASE = dict(strategy="features", crop="none", epochs=100, patience=20)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("data", type=Path, help="the folder written by examples/elpv.py --prepare-only")
    ap.add_argument("--tasks", default="4class,binary")
    ap.add_argument("--recipes", default=",".join(RECIPES), help=f"comma-separated, from {', '.join(RECIPES)}")
    ap.add_argument("--runs", type=Path, default=Path("runs/elpv-seeds"))
    ap.add_argument("--precision", default="auto", help="extraction and training precision (default: auto)")
    args = ap.parse_args()
    labels = args.recipes.split(",")
    unknown = [r for r in labels if r not in RECIPES]
    if unknown:
        raise SystemExit(f"--recipes must name recipes from {list(RECIPES)}. Received: {unknown}")
    import transferkit as tk

    for task in args.tasks.split(","):
        for label in labels:
            extra = RECIPES[label]
            base = dict(BASE, precision=args.precision)
            t = time.perf_counter()
            if extra is None:
                found = tk.lr_find(args.data / task, runs_root=args.runs, **base)
                extra = dict(learning_rate=found.suggestion)
                print(f"{task}: lr_find suggests {found.suggestion:.2e}", flush=True)
            r = tk.train(args.data / task, seeds=3, runs_root=args.runs, overwrite=True,
                         name=f"{task}-{label}".replace(" ", "_"), **base, **extra)  # seeds 0, 1, 2
            runs = ", ".join(f"{e['accuracy']:.2%}" for e in r.metrics["seeds"])
            print(f"== {task} {label}: {r.metrics['accuracy_mean']:.2%} ± {r.metrics['accuracy_std']:.2%} "
                  f"(seeds 0, 1, 2: {runs}; {time.perf_counter() - t:.0f} s)", flush=True)


if __name__ == "__main__":
    main()
