"""Benchmark: images/s of an exported classifier (ONNX Runtime, OpenVINO) vs its model.keras, on this CPU.

    python bench/export_speed.py [--model efficientnet_lite0] [--batch 32] [--rounds 5]

Trains nothing: builds the run folder of a `features` classifier with ImageNet weights (EfficientNet-Lite0's
install offline) on a small generated folder, exports it to ONNX and OpenVINO with `transferkit export`, then
times the same float32 batch through `model.keras` (`predict_on_batch`, TensorFlow), ONNX Runtime and OpenVINO,
interleaved for `--rounds` rounds, and prints median images/s and the ratio to model.keras. Model only.
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
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()
    import keras

    import transferkit as tk
    from transferkit.train.export import FORMATS

    root = Path(tempfile.mkdtemp(prefix="tk-export-"))
    rng = np.random.default_rng(0)
    from PIL import Image

    for split, n in (("train", 16), ("validation", 8)):
        for c in ("a", "b"):
            (root / "data" / split / c).mkdir(parents=True)
            for i in range(n):
                Image.fromarray(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(root / "data" / split / c / f"{i}.png")
    run = tk.train(root / "data", model=args.model, strategy="features", epochs=1, runs_root=root / "runs",
                   precision="float32").run_dir
    model = keras.saving.load_model(run / "model.keras")
    size = int(model.inputs[0].shape[1])
    x = rng.uniform(0, 255, (args.batch, size, size, 3)).astype("float32")
    engines = {"model.keras (TensorFlow)": lambda: model.predict_on_batch(x)}
    for fmt, name in (("onnx", "c.onnx"), ("openvino", "c.xml")):
        tk.export(run, format=fmt, path=root / name)
        runner = FORMATS[fmt].runner(root / name)
        engines[f"{fmt}"] = (lambda r: lambda: r(x))(runner)
    times = {name: [] for name in engines}
    for fn in engines.values():
        fn()  # warm up
    for _ in range(args.rounds):
        for name, fn in engines.items():
            t = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t)
    base = args.batch / np.median(times["model.keras (TensorFlow)"])
    print(f"{args.model} classifier at {size} px, batch {args.batch}, float32, median of {args.rounds} rounds")
    for name, ts in times.items():
        ips = args.batch / np.median(ts)
        print(f"  {name:<26}{ips:>8.1f} img/s  {ips / base:>5.2f}x")


if __name__ == "__main__":
    main()
