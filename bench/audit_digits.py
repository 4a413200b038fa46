"""Benchmark: how well `transferkit audit` finds planted errors — scikit-learn's digits with a seeded 8 % of train
labels flipped and validation images copied into train re-encoded — and how long the audit takes.

    python bench/audit_digits.py [--out bench-audit] [--model efficientnet_lite0] [--flip 0.08] [--leaks 12] [--seed 0]

Writes the digits (1,797 images, 8 × 8 upscaled to 64 × 64) as `train/ validation/ <digit>/` PNGs (75 % / 25 %,
stratified, seeded), plants the errors, audits twice (the first run extracts the features, the second reuses the
cache) and prints precision / recall / F1 of the label findings, the leaks found and the false leak rows, the
times, and the CPU flags that decide the precision `auto` chose.
"""

from __future__ import annotations

import argparse
import io
import shutil
import time
from pathlib import Path

import numpy as np
from machine import cpu_flags  # bench/machine.py (scripts run as python bench/NAME.py)


def write_digits(root: Path, flip: float, leaks: int, seed: int = 0) -> tuple[set[str], dict[str, str]]:
    """The folder, with the flipped train paths (new name → true class) and the planted leaks (train copy →
    validation original)."""
    from PIL import Image
    from sklearn.datasets import load_digits

    digits = load_digits()
    rng = np.random.default_rng(seed)
    n = len(digits.target)
    val = np.zeros(n, bool)
    for c in range(10):
        rows = np.flatnonzero(digits.target == c)
        val[rng.choice(rows, size=round(len(rows) * 0.25), replace=False)] = True
    labels = digits.target.copy()
    train_rows = np.flatnonzero(~val)
    flipped_rows = rng.choice(train_rows, size=round(len(train_rows) * flip), replace=False)
    for r in flipped_rows:
        labels[r] = rng.choice([c for c in range(10) if c != digits.target[r]])
    images = {}
    flipped = set()
    for r in range(n):
        im = Image.fromarray((digits.images[r] * (255 / 16)).astype(np.uint8), "L").resize((64, 64), Image.BICUBIC)
        split = "validation" if val[r] else "train"
        rel = f"{split}/{labels[r]}/{r:04d}.png"
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        im.save(root / rel)
        images[r] = (rel, im)
        if r in set(flipped_rows.tolist()):
            flipped.add(rel)
    planted = {}
    for r in rng.choice(np.flatnonzero(val), size=leaks, replace=False):
        rel, im = images[r]
        buf = io.BytesIO()
        im.resize((60, 60), Image.BILINEAR).save(buf, "JPEG", quality=70)  # re-encoded and resized
        copy = f"train/{labels[r]}/copy-of-{r:04d}.jpg"
        (root / copy).write_bytes(buf.getvalue())
        planted[copy] = rel
    return flipped, planted


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=Path("bench-audit"))
    ap.add_argument("--model", default="efficientnet_lite0")
    ap.add_argument("--flip", type=float, default=0.08)
    ap.add_argument("--leaks", type=int, default=12)
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--seed", type=int, default=0, help="the split and the planted errors")
    args = ap.parse_args()
    import transferkit as tk
    from transferkit.audit import audit

    shutil.rmtree(args.out, ignore_errors=True)
    data = args.out / "digits"
    flipped, planted = write_digits(data, args.flip, args.leaks, args.seed)
    times = []
    for _ in range(2):
        t = time.perf_counter()
        found = audit(data, args.out / "audit", model=args.model, folds=args.folds, runs_root=args.out / "runs")
        times.append(time.perf_counter() - t)
    labels = {f.path for f in found.of("label")}
    tp = len(labels & flipped)
    precision, recall = tp / max(1, len(labels)), tp / max(1, len(flipped))
    f1 = 2 * precision * recall / max(1e-9, precision + recall)
    leak_rows = found.of("leak")
    hit = {f.other for f in leak_rows if planted.get(f.other) == f.path}
    print(f"transferkit {tk.__version__}, {args.model}, precision {found.summary['precision']}, CPU flags: "
          f"{cpu_flags()}")
    print(f"seed {args.seed}: images {found.summary['images']}, flipped train labels {len(flipped)}, planted leaks {len(planted)}")
    print(f"label findings {len(labels)}: precision {precision:.3f}, recall {recall:.3f}, F1 {f1:.3f}")
    print(f"leaks found {len(hit)}/{len(planted)}, leak rows {len(leak_rows)} ({len(leak_rows) - len(hit)} not "
          f"planted); duplicates {len(found.of('duplicate'))}, outliers {len(found.of('outlier'))}")
    print(f"out-of-fold accuracy of the features' logistic regression: "
          f"{found.summary['out_of_fold_accuracy_mean']:.1%} ± {found.summary['out_of_fold_accuracy_std']:.1%}")
    print(f"audit: {times[0]:.1f} s with extraction, {times[1]:.1f} s with the features cached")


if __name__ == "__main__":
    main()
