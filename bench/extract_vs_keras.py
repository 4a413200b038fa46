"""Benchmark: `transferkit.extract` against plain Keras (`image_dataset_from_directory` + `model.predict`), one run, same data.

Generates a folder of real-size JPEGs (500 × 375), then times end to end (model build included), features in hand:
  baseline   keras.utils.image_dataset_from_directory → preprocess_input → model.predict (VGG16 to fc2)
  transferkit extract(..., precision="float32")  and  precision="auto" (bfloat16 where it pays)
in interleaved rounds, and prints the median images/s and the ratios. Usage:

    python bench/extract_vs_keras.py [--images 128] [--model vgg16] [--layer fc2] [--repeats 3]
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import tempfile
import time

import numpy as np


def make_jpegs(root: str, n: int, seed: int = 0) -> None:
    from PIL import Image

    rng = np.random.default_rng(seed)
    for i in range(n):
        d = os.path.join(root, f"class{i % 2}")
        os.makedirs(d, exist_ok=True)
        # smooth random colour fields: compress like photos, unlike pure noise
        small = rng.integers(0, 256, (12, 16, 3), dtype=np.uint8)
        Image.fromarray(small).resize((500, 375), Image.Resampling.BICUBIC).save(
            os.path.join(d, f"{i:05d}.jpg"), quality=90)


def baseline(folder: str, model_name: str, layer: str, batch_size: int) -> tuple[float, np.ndarray]:
    import keras

    from transferkit.backbones.build import build_model
    from transferkit.backbones.registry import get_backbone

    spec = get_backbone(model_name)
    t = time.perf_counter()  # both paths are timed from nothing to features in hand, model build included
    base = build_model(spec, include_top=layer in spec.top_layers, weights="none")
    out = base.get_layer(layer).output if layer != "avg_pool" else keras.layers.GlobalAveragePooling2D()(base.output)
    cut = keras.Model(base.input, out)
    prep = getattr(keras.applications, {"vgg16": "vgg16", "resnet50": "resnet50"}[spec.name]).preprocess_input
    ds = keras.utils.image_dataset_from_directory(folder, image_size=(spec.input_size,) * 2, batch_size=batch_size,
                                                  shuffle=False, verbose=False)
    ds = ds.map(lambda x, y: prep(x))
    feats = cut.predict(ds, verbose=0)
    return time.perf_counter() - t, feats


def run_transferkit(folder: str, model_name: str, layer: str, batch_size: int, precision: str):
    import transferkit as tk

    out = tempfile.mkdtemp(prefix="tk-bench-")
    t = time.perf_counter()
    fs = tk.extract(folder, out, model=model_name, layers=layer, weights="none", precision=precision,
                    batch_size=batch_size)
    elapsed = time.perf_counter() - t
    shutil.rmtree(out)
    return elapsed, fs


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--images", type=int, default=256)
    ap.add_argument("--model", default="vgg16", choices=["vgg16", "resnet50"])
    ap.add_argument("--layer", default=None)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--repeats", type=int, default=3, help="interleaved rounds; medians are reported")
    args = ap.parse_args()
    layer = args.layer or {"vgg16": "fc2", "resnet50": "avg_pool"}[args.model]
    import keras

    import transferkit as tk
    from transferkit import backend

    folder = tempfile.mkdtemp(prefix="tk-bench-jpegs-")
    make_jpegs(folder, args.images)
    print(f"{args.images} JPEGs 500x375, {args.model} to {layer}, batch {args.batch_size}, "
          f"Keras {keras.__version__} ({keras.backend.backend()}), transferkit {tk.__version__}, "
          f"{os.cpu_count()} CPUs, {platform.processor() or platform.machine()}, auto precision -> "
          f"{backend.resolve_precision('auto')}")
    # warm-up both paths once on a few images so one-time costs (graph tracing, imports) are not timed
    warm = tempfile.mkdtemp(prefix="tk-bench-warm-")
    make_jpegs(warm, 4)
    baseline(warm, args.model, layer, args.batch_size)
    run_transferkit(warm, args.model, layer, args.batch_size, "float32")
    shutil.rmtree(warm)

    n = args.images
    paths = [("baseline: image_dataset_from_directory + model.predict", lambda: baseline(folder, args.model, layer,
                                                                                         args.batch_size)),
             ("transferkit extract --precision float32", lambda: run_transferkit(folder, args.model, layer,
                                                                                 args.batch_size, "float32")),
             ("transferkit extract --precision auto", lambda: run_transferkit(folder, args.model, layer,
                                                                              args.batch_size, "auto"))]
    # interleaved rounds: a slow spell of the machine hits every path alike; the median per path is reported
    times: list[list[float]] = [[] for _ in paths]
    last = [None] * len(paths)
    for _ in range(args.repeats):
        for i, (_, run) in enumerate(paths):
            elapsed, last[i] = run()
            times[i].append(elapsed)
    t_base = float(np.median(times[0]))
    print(f"{'path':<58}{'median s':>9}{'img/s':>8}{'vs baseline':>13}   rounds (s)")
    for (label, _), ts in zip(paths, times):
        t = float(np.median(ts))
        print(f"{label:<58}{t:>9.2f}{n / t:>8.1f}{t_base / t:>12.2f}x   " + " ".join(f"{x:.2f}" for x in ts))
    _, fs32, fsauto = last
    rel = np.linalg.norm(fsauto.matrix - fs32.matrix) / np.linalg.norm(fs32.matrix)
    print(f"auto resolved to {fsauto.manifest['settings']['precision']}; "
          f"relative difference of features, auto vs float32: {rel:.4f}")
    shutil.rmtree(folder)


if __name__ == "__main__":
    main()
