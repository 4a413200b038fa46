"""Benchmark: what bfloat16 costs in accuracy — feature error and head validation accuracy, bf16 vs float32.

    python bench/precision_accuracy.py [--model efficientnet_lite0] [--input-size 96] [--epochs 40]

Uses real data offline: scikit-learn's handwritten digits written as an image folder (as in the demo) and the
EfficientNet-Lite0 ImageNet weights. Extracts features in both precisions, prints their relative error, then
trains the same head (same seed) on each and prints validation accuracy.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="efficientnet_lite0")
    ap.add_argument("--input-size", type=int, default=96)
    ap.add_argument("--epochs", type=int, default=40)
    args = ap.parse_args()
    import transferkit as tk
    from transferkit.demo import write_digits
    from transferkit.train import fit_head

    root = Path(tempfile.mkdtemp(prefix="tk-prec-"))
    data = write_digits(root / "digits")
    feats, rates = {}, {}
    for precision in ("float32", "bfloat16"):
        for split in ("train", "validation"):
            t = time.perf_counter()
            feats[precision, split] = tk.extract(data / split, root / precision / split, model=args.model,
                                                 layers="avg_pool", input_size=args.input_size, precision=precision)
            rates[precision, split] = len(feats[precision, split]) / (time.perf_counter() - t)
    print(f"{args.model} avg_pool at {args.input_size} px on scikit-learn digits "
          f"({len(feats['float32', 'train'])} train / {len(feats['float32', 'validation'])} validation)")
    a, b = feats["float32", "validation"].matrix, feats["bfloat16", "validation"].matrix
    print(f"relative feature error bf16 vs fp32: {np.linalg.norm(a - b) / np.linalg.norm(a):.4f} (norm), "
          f"median per-image {np.median(np.linalg.norm(a - b, axis=1) / np.linalg.norm(a, axis=1)):.4f}")
    for precision in ("float32", "bfloat16"):
        tr, va = feats[precision, "train"], feats[precision, "validation"]
        _, hist = fit_head(tr.matrix, tr.labels, va.matrix, va.labels, epochs=args.epochs, seed=0)
        print(f"{precision:<9} head validation accuracy {hist['val_accuracy'][-1]:.4f} "
              f"(best {max(hist['val_accuracy']):.4f}); extraction {rates[precision, 'train']:.0f} img/s")


if __name__ == "__main__":
    main()
