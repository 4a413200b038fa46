"""Benchmark: does bfloat16 pay, per backbone? Model-only float32 against bfloat16, one run, interleaved rounds.

    python bench/precision_speed.py [--models vgg16 resnet50 ...] [--batch-size 16] [--rounds 2]

For each backbone (default layer, default input size, `weights=None`, BatchNorm folded as extraction runs it)
times the compiled forward pass on one fixed uint8 batch in float32 and in bfloat16 and prints the median
images/s and the ratio. `--precision auto` picks bfloat16 on this hardware only for backbones where it pays.
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np

DEFAULT = ["vgg16", "resnet50", "resnet50_v2", "inception_v3", "xception", "densenet121", "mobilenet",
           "mobilenet_v2", "mobilenet_v3_small", "mobilenet_v3_large", "efficientnet_b0", "efficientnet_v2_b0",
           "efficientnet_lite0", "convnext_tiny", "nasnet_mobile"]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", nargs="+", default=DEFAULT)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--rounds", type=int, default=2)
    args = ap.parse_args()
    import keras

    from transferkit import backend
    from transferkit.backbones.build import build_feature_model

    print(f"Keras {keras.__version__} ({keras.backend.backend()}), {os.cpu_count()} CPUs, batch {args.batch_size}, "
          f"auto -> {backend.resolve_precision('auto')}")
    print(f"{'model':<22}{'layer':<22}{'px':>5}{'float32':>9}{'bfloat16':>10}{'bf16/fp32':>11}")
    rng = np.random.default_rng(0)
    for name in args.models:
        fns = {}
        for precision in ("float32", "bfloat16"):
            fm = build_feature_model(name, None, weights="none", precision=precision)
            fns[precision] = fm.compile(args.batch_size)
        x = rng.integers(0, 256, (args.batch_size, fm.input_size, fm.input_size, 3), dtype=np.uint8)
        rates: dict[str, list[float]] = {p: [] for p in fns}
        for fn in fns.values():
            fn(x)
        for _ in range(args.rounds):
            for precision, fn in fns.items():
                t = time.perf_counter()
                fn(x)
                fn(x)
                rates[precision].append(2 * args.batch_size / (time.perf_counter() - t))
        fp32, bf16 = (float(np.median(rates[p])) for p in ("float32", "bfloat16"))
        print(f"{name:<22}{fm.layers[0]:<22}{fm.input_size:>5}{fp32:>9.1f}{bf16:>10.1f}{bf16 / fp32:>10.2f}x",
              flush=True)


if __name__ == "__main__":
    main()
