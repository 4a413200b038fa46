"""Benchmark: do the training defaults learn? The defaults chosen by the head against the tutorial's RMSprop 2e-5,
side by side, on the default backbone (EfficientNet-Lite0, real ImageNet weights, offline):

  1. `features` on scikit-learn's 1,797 digits (1,347 train / 450 validation), 10 epochs;
  2. `frozen` on an easy generated two-class set (filled ellipses vs rectangles, 120 + 40 images), 3 epochs.

    python bench/defaults.py [--digits-size 96]

Prints validation accuracy per recipe and the CPU flags. Everything else is each strategy's default.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np


def write_shapes(root: Path, train: int = 60, validation: int = 20, size: int = 160, seed: int = 0) -> Path:
    """Filled ellipses vs rectangles of random size, position and colours on noisy backgrounds."""
    from PIL import Image, ImageDraw

    rng = np.random.default_rng(seed)
    for split, n in (("train", train), ("validation", validation)):
        for shape in ("ellipse", "rectangle"):
            folder = root / split / shape
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(n):
                back = rng.integers(0, 120, (size, size, 3), dtype=np.uint8)
                image = Image.fromarray(back)
                w, h = rng.integers(size // 4, size * 3 // 4, 2)
                x, y = rng.integers(0, size - w), rng.integers(0, size - h)
                colour = tuple(int(c) for c in rng.integers(130, 256, 3))
                draw = ImageDraw.Draw(image)
                (draw.ellipse if shape == "ellipse" else draw.rectangle)([x, y, x + w, y + h], fill=colour)
                image.save(folder / f"{i:03d}.png")
    return root


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--digits-size", type=int, default=96, help="side of the digit PNGs (upscaled 8 × 8)")
    args = ap.parse_args()
    import transferkit as tk
    from transferkit import backend
    from transferkit.demo import write_digits

    flags = [f for f in backend._cpu_flags() if f in ("avx2", "avx512f", "avx512_bf16", "amx_bf16")]
    print(f"CPU flags: {' '.join(sorted(flags))}; {os.cpu_count()} cores; precision auto -> "
          f"{backend.resolve_precision('auto', tk.get_backbone('efficientnet_lite0').cpu_bfloat16)}")
    root = Path(tempfile.mkdtemp(prefix="tk-defaults-"))
    digits = write_digits(root / "digits", size=args.digits_size)
    shapes = write_shapes(root / "shapes")
    tutorial = dict(optimizer="rmsprop", learning_rate=2e-5)
    print(f"{'task':<32}{'recipe':<34}{'val. accuracy':>14}{'seconds':>9}")
    for task, data, strategy, epochs in (("digits, features, 10 epochs", digits, "features", 10),
                                         ("shapes, frozen, 3 epochs", shapes, "frozen", 3)):
        for label, recipe in (("defaults (chosen by the head)", {}), ("tutorial's RMSprop 2e-5", tutorial)):
            t = time.perf_counter()
            r = tk.train(data, strategy=strategy, epochs=epochs, runs_root=root / "runs", **recipe)
            chosen = f"{r.config['optimizer']} {r.config['learning_rate']:g}"
            print(f"{task:<32}{label + ' = ' + chosen:<34}{r.metrics['accuracy']:>13.1%}"
                  f"{time.perf_counter() - t:>9.0f}", flush=True)


if __name__ == "__main__":
    main()
