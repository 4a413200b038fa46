"""Benchmark: how close the backbone runs to the machine's compute limit, per precision, in one run.

    python bench/peak.py [--models vgg16:fc2 resnet50:avg_pool] [--batch-size 32]

Measures the machine's dense peak as the best of a large matrix product and a VGG-sized 3 × 3 convolution
(compiled through the current Keras backend, float32 and bfloat16), counts each backbone's multiply-adds from its
Conv2D/Dense layers, and prints model-only images/s (see throughput.py), the GFLOP/s that makes, and its share
of the measured peak.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(__file__))
from throughput import model_only  # noqa: E402


def dense_peak(precision: str, reps: int = 5) -> float:
    """Best GFLOP/s of two dense kernels through Keras: a 4096² matrix product and a 3 × 3 convolution
    (256 → 256 channels, 56 × 56, batch 32 — a VGG16 block3 layer)."""
    import keras

    from transferkit import backend

    policy = "mixed_bfloat16" if precision == "bfloat16" else "float32"
    rng = np.random.default_rng(0)
    kernels = [((4096,), keras.layers.Dense(4096, use_bias=False, dtype=policy), (4096, 4096), 2 * 4096 ** 3),
               ((56, 56, 256), keras.layers.Conv2D(256, 3, padding="same", use_bias=False, dtype=policy),
                (32, 56, 56, 256), 2 * 32 * 56 * 56 * 9 * 256 * 256)]
    best = 0.0
    for in_shape, layer, batch_shape, flop in kernels:
        inp = keras.Input(in_shape)
        fn = backend.compile_inference(keras.Model(inp, layer(inp)), lambda call, x: [call(x)])
        x = rng.standard_normal(batch_shape).astype(np.float32)
        fn(x)
        for _ in range(reps):
            t = time.perf_counter()
            fn(x)
            best = max(best, flop / (time.perf_counter() - t) / 1e9)
    return best


def gflop_per_image(model_name: str, layer: str) -> float:
    """2 × multiply-adds of the Conv2D, DepthwiseConv2D and Dense layers up to `layer`, at the default input size."""
    import keras

    from transferkit.backbones.build import build_feature_model

    fm = build_feature_model(model_name, [layer], weights="none")
    def layers(model):
        for lyr in model.layers:
            yield from layers(lyr) if isinstance(lyr, keras.Model) else [lyr]

    macs = 0
    for lyr in layers(fm.model):
        if isinstance(lyr, (keras.layers.Conv2D, keras.layers.DepthwiseConv2D, keras.layers.Dense)):
            out = lyr.output.shape  # (None, h, w, c) or (None, c)
            kernel = lyr.kernel.shape  # (kh, kw, cin, cout) / (kh, kw, cin, multiplier) / (cin, cout)
            positions = int(np.prod(out[1:-1])) if len(out) == 4 else 1
            macs += positions * int(np.prod(kernel))
    return 2 * macs / 1e9


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", nargs="+", default=["vgg16:fc2", "resnet50:avg_pool"])
    ap.add_argument("--batch-size", type=int, default=32)
    args = ap.parse_args()
    import keras

    from transferkit import backend

    flags = sorted(backend._cpu_flags() & {"amx_bf16", "avx512_bf16", "avx512f"})
    print(f"Keras {keras.__version__} ({keras.backend.backend()}), {os.cpu_count()} CPUs, flags {flags}")
    peaks = {p: dense_peak(p) for p in ("float32", "bfloat16")}
    print("measured dense peak GFLOP/s: " + ", ".join(f"{p} {v:.0f}" for p, v in peaks.items()))
    print(f"{'model':<20}{'GFLOP/img':>10}{'precision':>11}{'img/s':>8}{'GFLOP/s':>9}{'of peak':>9}")
    for item in args.models:
        model, layer = item.split(":")
        gflop = gflop_per_image(model, layer)
        for precision in ("float32", "bfloat16"):
            rate = model_only(model, layer, precision, args.batch_size)
            print(f"{item:<20}{gflop:>10.2f}{precision:>11}{rate:>8.1f}{rate * gflop:>9.0f}"
                  f"{rate * gflop / peaks[precision]:>9.0%}")


if __name__ == "__main__":
    main()
