"""Benchmark: `extract --update` after 1 % of a folder changed, against extracting the whole folder again.

    python bench/update.py [--images 2000] [--model efficientnet_lite0] [--out bench-update]

Writes `--images` generated photos-like images (smooth random fields, 160 × 120 JPEG) in 10 class folders,
extracts them, then adds 0.5 %, rewrites 0.25 % and deletes 0.25 % of them, and times `extract --update` against
a fresh extraction of the changed folder, in this one process. Prints the CPU flags.
"""

from __future__ import annotations

import argparse
import os
import shutil
import time
from pathlib import Path

import numpy as np
from machine import cpu_flags  # bench/machine.py (scripts run as python bench/NAME.py)


def picture(path: Path, rng) -> None:
    from PIL import Image

    field = rng.integers(0, 256, (6, 8, 3)).astype(np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(field).resize((160, 120), Image.BICUBIC).save(path, quality=90)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--images", type=int, default=2000)
    ap.add_argument("--model", default="efficientnet_lite0")
    ap.add_argument("--out", type=Path, default=Path("bench-update"))
    args = ap.parse_args()
    import transferkit as tk

    shutil.rmtree(args.out, ignore_errors=True)
    rng = np.random.default_rng(0)
    src = args.out / "images"
    for i in range(args.images):
        picture(src / f"c{i % 10}" / f"{i:06d}.jpg", rng)
    t = time.perf_counter()
    tk.extract(src, args.out / "set", model=args.model)
    first = time.perf_counter() - t
    k = max(1, args.images // 400)
    for i in range(2 * k):
        picture(src / "c0" / f"new{i:06d}.jpg", rng)
    for i in range(k):
        picture(src / f"c{(10 * i + 1) % 10}" / f"{10 * i + 1:06d}.jpg", rng)  # rewritten
        os.remove(src / f"c{(10 * i + 2) % 10}" / f"{10 * i + 2:06d}.jpg")
    t = time.perf_counter()
    fs = tk.extract(src, args.out / "set", model=args.model, update=True)
    update = time.perf_counter() - t
    t = time.perf_counter()
    tk.extract(src, args.out / "fresh", model=args.model)
    fresh = time.perf_counter() - t
    u = fs.manifest["updates"][-1]
    print(f"transferkit {tk.__version__}, {args.model}, {fs.manifest['settings']['precision']}, CPU flags: "
          f"{cpu_flags()}")
    print(f"{args.images:,} images (first extraction {first:.1f} s); update: added {u['added']}, changed "
          f"{u['changed']}, removed {u['removed']} in {update:.1f} s; a fresh extraction of the folder {fresh:.1f} s "
          f"({fresh / update:.1f}x)")


if __name__ == "__main__":
    main()
