"""Benchmark: peak memory (RSS) of `transferkit extract` for 2,000 vs 20,000 images — it must stay flat.

    python bench/memory.py [--small 2000] [--large 20000] [--model mobilenet_v3_small] [--input-size 64]

Each extraction runs in a fresh process (the CLI, as a user runs it); its peak RSS is read from
`resource.getrusage` at exit. Images are small generated JPEGs so the run stays short.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time

import numpy as np

RUNNER = ("import sys, resource; from transferkit.cli import main; rc = main(sys.argv[1:]); "
          "print('MAXRSS_KB', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss); sys.exit(rc)")


def make(folder: str, n: int) -> None:
    from PIL import Image

    rng = np.random.default_rng(0)
    tiles = [rng.integers(0, 256, (48, 64, 3), dtype=np.uint8) for _ in range(16)]
    for i in range(n):
        d = os.path.join(folder, f"c{i % 4}")
        os.makedirs(d, exist_ok=True)
        Image.fromarray(tiles[i % 16]).save(os.path.join(d, f"{i:06d}.jpg"), quality=85)


def run(folder: str, args) -> tuple[float, float]:
    out = tempfile.mkdtemp(prefix="tk-mem-out-")
    t = time.perf_counter()
    r = subprocess.run([sys.executable, "-c", RUNNER, "extract", folder, "-o", out, "--model", args.model,
                        "--input-size", str(args.input_size), "--weights", "none", "--batch-size", "64", "-q",
                        "--layer", "avg_pool"], capture_output=True, text=True)
    elapsed = time.perf_counter() - t
    shutil.rmtree(out)
    if r.returncode != 0:
        raise SystemExit(r.stderr[-2000:])
    kb = int(next(line.split()[1] for line in r.stdout.splitlines() if line.startswith("MAXRSS_KB")))
    return kb / 1024, elapsed


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--small", type=int, default=2000)
    ap.add_argument("--large", type=int, default=20000)
    ap.add_argument("--model", default="mobilenet_v3_small")
    ap.add_argument("--input-size", type=int, default=64)
    args = ap.parse_args()
    rows = []
    for n in (args.small, args.large):
        folder = tempfile.mkdtemp(prefix="tk-mem-")
        make(folder, n)
        rss, secs = run(folder, args)
        rows.append((n, rss, secs))
        shutil.rmtree(folder)
    print(f"{args.model} avg_pool at {args.input_size} px, batch 64, shards of 1024")
    print(f"{'images':>8}{'peak RSS MiB':>14}{'seconds':>9}")
    for n, rss, secs in rows:
        print(f"{n:>8}{rss:>14.0f}{secs:>9.1f}")
    print(f"peak RSS ratio large/small: {rows[1][1] / rows[0][1]:.3f}")


if __name__ == "__main__":
    main()
