"""Benchmark: the Ray Data engine with 1 and 2 model replicas against the local engine, one run.

    python bench/ray_engine.py [--images 256] [--model resnet50] [--layer avg_pool]

Times `extract` end to end (Ray start-up included for the Ray rows) on generated 500 × 375 JPEGs with
`weights=None`, and prints images/s and the ratio to the local engine.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(__file__))
from extract_vs_keras import make_jpegs  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--images", type=int, default=256)
    ap.add_argument("--model", default="resnet50")
    ap.add_argument("--layer", default="avg_pool")
    ap.add_argument("--precision", default="auto")
    args = ap.parse_args()
    import transferkit as tk

    folder = tempfile.mkdtemp(prefix="tk-ray-")
    make_jpegs(folder, args.images)
    rows = []
    for label, kwargs in (("local engine", {}), ("ray, 1 worker", dict(engine="ray", workers=1)),
                          ("ray, 2 workers", dict(engine="ray", workers=2))):
        out = tempfile.mkdtemp(prefix="tk-ray-out-")
        t = time.perf_counter()
        tk.extract(folder, out, model=args.model, layers=args.layer, weights="none", precision=args.precision,
                   load=False, **kwargs)
        rows.append((label, time.perf_counter() - t))
        shutil.rmtree(out)
    print(f"{args.images} JPEGs 500x375, {args.model} {args.layer}, precision {args.precision}, "
          f"{os.cpu_count()} CPUs")
    print(f"{'engine':<18}{'seconds':>9}{'img/s':>8}{'vs local':>10}")
    for label, secs in rows:
        print(f"{label:<18}{secs:>9.1f}{args.images / secs:>8.1f}{rows[0][1] / secs:>9.2f}x")
    shutil.rmtree(folder)


if __name__ == "__main__":
    main()
