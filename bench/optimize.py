"""Benchmark: model-only throughput with the inference rewrites (`optimize_for_inference`) against without, one run.

    python bench/optimize.py [--models resnet50:avg_pool ...] [--batch-size 32] [--rounds 3]

For each model and precision (float32, bfloat16) times the compiled forward pass on one fixed uint8 batch with
`FeatureModel.optimize` off (the baseline: the Keras graph as it is) and on (BatchNorm folded, channel-wise grouped
convs as depthwise), in interleaved rounds, and prints the median images/s, the speed-up and the relative
difference of the features.
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np


def timed_rate(fn, x: np.ndarray, reps: int = 3) -> float:
    t = time.perf_counter()
    for _ in range(reps):
        fn(x)
    return reps * len(x) / (time.perf_counter() - t)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", nargs="+", default=["resnet50:avg_pool", "inception_v3:avg_pool",
                                                    "mobilenet_v2:avg_pool", "efficientnet_lite0:avg_pool",
                                                    "convnext_tiny:avg_pool"])
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    import keras

    from transferkit import backend
    from transferkit.backbones.build import build_feature_model
    from transferkit.backbones.optimize import channelwise_grouped, foldable_pairs

    print(f"Keras {keras.__version__} ({keras.backend.backend()}), {os.cpu_count()} CPUs, batch {args.batch_size}, "
          f"weights=None with random BN statistics")
    print(f"{'model':<28}{'BN folded':>10}{'grouped':>8}{'precision':>11}{'original':>10}{'optimized':>10}"
          f"{'speed-up':>10}{'rel diff':>10}")
    rng = np.random.default_rng(0)
    for item in args.models:
        name, layer = item.split(":")
        for precision in ("float32", "bfloat16"):
            fm = build_feature_model(name, [layer], weights="none", precision=precision)
            for lyr in fm.model.layers:  # non-trivial statistics, so folding has something to get right
                if isinstance(lyr, keras.layers.BatchNormalization):
                    c = lyr.moving_mean.shape[0]
                    lyr.moving_mean.assign(rng.normal(0, 0.1, c).astype("float32"))
                    lyr.moving_variance.assign(rng.uniform(0.5, 2, c).astype("float32"))
            shape = (args.batch_size, fm.input_size, fm.input_size, 3)
            x = rng.integers(0, 256, shape, dtype=np.uint8)
            fns = []
            for optimize in (False, True):
                fm.optimize = optimize
                fns.append(fm.compile(args.batch_size))
            outs = [fn(x)[0] for fn in fns]  # also the first, untimed call of each
            rates: list[list[float]] = [[], []]
            for _ in range(args.rounds):
                for i, fn in enumerate(fns):
                    rates[i].append(timed_rate(fn, x))
            plain, folded = (float(np.median(r)) for r in rates)
            rel = np.linalg.norm(outs[1] - outs[0]) / np.linalg.norm(outs[0])
            n_bn = sum(isinstance(lyr, keras.layers.BatchNormalization) for lyr in fm.model.layers)
            print(f"{item:<28}{len(foldable_pairs(fm.model)):>6}/{n_bn:<3}{len(channelwise_grouped(fm.model)):>8}"
                  f"{precision:>11}{plain:>10.1f}{folded:>10.1f}{folded / plain:>9.2f}x{rel:>10.1e}")
    print(f"auto precision here -> {backend.resolve_precision('auto')}")


if __name__ == "__main__":
    main()
