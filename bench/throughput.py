"""Benchmark: end-to-end extraction throughput against the model-only compute limit, in one run.

    python bench/throughput.py [--images 256] [--models vgg16:fc2 resnet50:avg_pool]

For each model and precision (float32, auto) prints:
  model-only   the compiled forward pass on one fixed uint8 batch (no decoding, no writing) — the ceiling;
  end-to-end   `transferkit.extract` on real-size JPEGs, steady state (decode + forward + Parquet writing,
               from the manifest's `last_run`), and overall including model build and tracing;
and the ratio end-to-end / model-only.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, os.path.dirname(__file__))
from extract_vs_keras import make_jpegs  # noqa: E402


def model_only(model: str, layer: str, precision: str, batch_size: int, reps: int = 3) -> float:
    from transferkit.backbones.build import build_feature_model
    from transferkit.extract.extractor import Extractor

    fm = build_feature_model(model, [layer], weights="none", precision=precision)
    ex = Extractor(fm, batch_size)
    x = np.random.default_rng(0).integers(0, 256, (batch_size, fm.input_size, fm.input_size, 3), dtype=np.uint8)
    ex(x)
    t = time.perf_counter()
    for _ in range(reps):
        ex(x)
    return reps * batch_size / (time.perf_counter() - t)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--images", type=int, default=256)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--models", nargs="+", default=["vgg16:fc2", "resnet50:avg_pool"])
    args = ap.parse_args()
    import keras

    import transferkit as tk
    from transferkit import backend

    folder = tempfile.mkdtemp(prefix="tk-tp-")
    make_jpegs(folder, args.images)
    flags = sorted(backend._cpu_flags() & {"amx_bf16", "avx512_bf16", "avx512f"})
    print(f"{args.images} JPEGs 500x375, batch {args.batch_size}, Keras {keras.__version__} "
          f"({keras.backend.backend()}), {os.cpu_count()} CPUs, flags {flags}, auto -> "
          f"{backend.resolve_precision('auto')}")
    print(f"{'model':<20}{'precision':<11}{'model-only':>11}{'e2e steady':>12}{'e2e overall':>13}{'steady/model':>14}")
    for item in args.models:
        model, layer = item.split(":")
        for precision in ("float32", "auto"):
            used = backend.resolve_precision(precision)
            ceiling = model_only(model, layer, used, args.batch_size)
            out = tempfile.mkdtemp(prefix="tk-tp-out-")
            t = time.perf_counter()
            fs = tk.extract(folder, out, model=model, layers=layer, weights="none", precision=precision,
                            batch_size=args.batch_size, load=False)
            overall = args.images / (time.perf_counter() - t)
            steady = fs.manifest["last_run"]["images_per_second"]
            shutil.rmtree(out)
            print(f"{model + ' ' + layer:<20}{used:<11}{ceiling:>11.1f}{steady:>12.1f}{overall:>13.1f}"
                  f"{steady / ceiling:>13.0%}")
    shutil.rmtree(folder)


if __name__ == "__main__":
    main()
