"""Benchmark: training speed per strategy (features / frozen / finetune), float32 vs auto precision.

    python bench/train_speed.py [--images 200] [--size 150] [--model vgg16] [--head-only]

Generates a two-class folder of `--size` px images, then trains one epoch of each strategy (finetune: one
epoch per stage) with `weights=None`, and prints images/s per stage from the run's metrics.json. Also times
head epochs of the features strategy on 2,000 cached 4 × 4 × 512 samples (the tutorial's shape), and the
`features` strategy's head stage against a plain Keras head fitted on the very same cached arrays (side by
side, same epochs, batch size and validation data), as a ratio.
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np


def make_folder(root: Path, n: int, size: int) -> Path:
    from PIL import Image

    rng = np.random.default_rng(0)
    for split, count in (("train", n), ("validation", max(20, n // 4))):
        for c in range(2):
            d = root / split / f"class{c}"
            d.mkdir(parents=True, exist_ok=True)
            for i in range(count // 2):
                small = rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)
                small[..., c] = 255
                Image.fromarray(small).resize((size, size)).save(d / f"{i}.jpg")
    return root


def head_epochs(n=2000, shape=(4, 4, 512), epochs=5) -> float:
    import keras

    from transferkit.train.heads import build_head, compile_classifier

    rng = np.random.default_rng(0)
    x = rng.normal(size=(n, *shape)).astype("float32")
    y = rng.integers(0, 2, n).astype("float32")
    model = compile_classifier(build_head(shape, 2), 2, learning_rate=2e-5, optimizer="rmsprop")

    class Timer(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.t = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            self.times.append(time.perf_counter() - self.t)

    timer = Timer()
    timer.times = []
    model.fit(x, y, validation_data=(x[:500], y[:500]), epochs=epochs, batch_size=20, verbose=0, callbacks=[timer])
    return float(np.median(timer.times[1:]))


def head_stage_vs_plain_keras(root: Path, model: str, size: int, epochs: int = 20) -> tuple[float, float]:
    """Seconds per epoch: transferkit's `features` head stage vs `keras.Sequential(...).fit` on its cached arrays."""
    import keras

    import transferkit as tk
    from transferkit.train import train

    common = dict(model=model, strategy="features", input_size=size, weights="none", batch_size=32,
                  runs_root=root / "runs", overwrite=True)  # the optimizer and rate the head chooses
    train(root / "data", epochs=1, name="warm-cache", **common)  # extraction happens here, once
    r = train(root / "data", epochs=epochs, name="head", **common)
    ours = r.metrics["stages"][0]["seconds"] / r.metrics["stages"][0]["epochs"]
    caches = sorted((root / "runs" / ".feature-cache").iterdir(), key=lambda d: -len(tk.load_features(d)))
    tr, va = (tk.load_features(d) for d in caches[:2])
    plain = keras.Sequential([keras.Input(tr.matrix.shape[1:]), keras.layers.Dense(256, activation="relu"),
                              keras.layers.Dropout(0.5), keras.layers.Dense(1, activation="sigmoid")])
    plain.compile(optimizer=keras.optimizers.Adam(1e-3), loss="binary_crossentropy", metrics=["accuracy"])
    t = time.perf_counter()
    plain.fit(tr.matrix, tr.labels.astype("float32"), validation_data=(va.matrix, va.labels.astype("float32")),
              epochs=epochs, batch_size=32, verbose=0)
    return ours, (time.perf_counter() - t) / epochs


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--images", type=int, default=200)
    ap.add_argument("--size", type=int, default=150)
    ap.add_argument("--model", default="vgg16")
    ap.add_argument("--head-only", action="store_true", help="only the head-stage comparison")
    args = ap.parse_args()
    from transferkit import backend
    from transferkit.train import train

    flags = [f for f in backend._cpu_flags() if f in ("avx2", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile")]
    print(f"CPU flags: {' '.join(sorted(flags)) or 'none of avx2/avx512f/avx512_bf16/amx'}; {os.cpu_count()} cores; "
          f"precision auto -> {backend.resolve_precision('auto')}")
    root = Path(tempfile.mkdtemp(prefix="tk-train-"))
    data = make_folder(root / "data", args.images, args.size)
    ours, plain = head_stage_vs_plain_keras(root, args.model, args.size)
    print(f"features head stage, {args.model} pooled as the registry says, {args.images} images: {ours * 1e3:.1f} ms "
          f"per epoch; plain Keras head on the same arrays: {plain * 1e3:.1f} ms; ratio {ours / plain:.2f}x")
    if args.head_only:
        shutil.rmtree(root)
        return
    print(f"features-strategy head epoch, 2,000 samples of 4x4x512, batch 20: {head_epochs():.2f} s (median)")
    print(f"{args.model} at {args.size} px, {args.images} training images, batch 20, auto -> "
          f"{backend.resolve_precision('auto')}")
    print(f"{'strategy':<10}{'precision':<11}{'stage 1 img/s':>14}{'stage 2 img/s':>14}")
    for strategy in ("features", "frozen", "finetune"):
        for precision in ("float32", "auto"):
            r = train(data, model=args.model, strategy=strategy, input_size=args.size, weights="none", epochs=1,
                      finetune_epochs=1, runs_root=root / "runs", precision=precision, overwrite=True,
                      name=f"{strategy}-{precision}", augment=False)
            ips = r.metrics["images_per_second"]
            print(f"{strategy:<10}{r.config['precision']:<11}{ips.get('stage1', float('nan')):>14.1f}"
                  f"{ips.get('stage2', float('nan')):>14.1f}")
    shutil.rmtree(root)


if __name__ == "__main__":
    main()
