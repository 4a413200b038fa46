"""Benchmark: int8 extraction (OpenVINO + NNCF) against `auto` and float32 — speed end to end, and quality.

    python bench/int8.py [--images 128] [--models resnet50,vgg16,efficientnet_lite0,mobilenet_v2] [--skip-quality]

Speed: a folder of `--images` generated 500 × 375 JPEGs; `transferkit extract` end to end (decoding included,
quantisation excluded: it runs once and is cached, timed separately) for float32 (Keras), auto (Keras),
OpenVINO float32 and int8 (calibrated on 64 of the images), each into a fresh folder, reported as images/s and
as ratios to `auto`. Keras backbones use random weights (no download here; speed does not depend on them).

Quality (real weights, EfficientNet-Lite0 from the offline package): on the photos bundled with scikit-image,
the cosine similarity of int8 to float32 features and whether each photo keeps its nearest neighbour; ImageNet
top-1 agreement of the int8 and float32 classifiers; and the demo's digits head trained on int8 vs float32
features (validation accuracy).
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np


def jpeg_folder(root: Path, n: int) -> Path:
    from PIL import Image

    rng = np.random.default_rng(0)
    root.mkdir(parents=True)
    for i in range(n):
        small = rng.integers(0, 256, (12, 16, 3), dtype=np.uint8)
        Image.fromarray(small).resize((500, 375), Image.Resampling.BICUBIC).save(root / f"{i:04d}.jpg", quality=90)
    return root


def speed(models: list[str], n: int, tmp: Path) -> None:
    import transferkit as tk

    images = jpeg_folder(tmp / "jpegs", n)
    configs = [("float32", dict(precision="float32")), ("auto", dict(precision="auto")),
               ("openvino float32", dict(precision="float32", runtime="openvino")),
               ("int8", dict(precision="int8", calibration=64))]
    print(f"end to end, {n} JPEGs 500 x 375, batch 32, images/s (ratio to auto)")
    for model in models:
        weights = "imagenet" if model.startswith("efficientnet_lite") else "none"
        common = dict(model=model, layers="avg_pool", weights=weights, quiet=True)
        # export + quantise once (cached), so the timed runs measure extraction only
        t = time.perf_counter()
        tk.extract(images, tmp / f"{model}-prepare", precision="int8", calibration=64, **common)
        prepare = time.perf_counter() - t
        rates = {}
        for name, kw in configs:
            out = tmp / f"{model}-{name.replace(' ', '_')}"
            fs = tk.extract(images, out, overwrite=True, load=False, **common, **kw)
            rates[name] = fs.manifest["last_run"]["images_per_second"]
            shutil.rmtree(out)
        auto = rates["auto"]
        cells = "  ".join(f"{name} {rate:.1f} ({rate / auto:.2f}x)" for name, rate in rates.items())
        print(f"  {model:<20} {cells}   [first int8 run incl. export+quantise: {prepare:.0f} s]", flush=True)


def quality(tmp: Path) -> None:
    import transferkit as tk
    from transferkit.demo import write_digits, write_photos
    from transferkit.search import similar
    from transferkit.extract.imagenet import predict_imagenet
    from transferkit.train import fit_head

    photos = write_photos(tmp / "photos")
    f32 = tk.extract(photos, tmp / "p32", model="efficientnet_lite0", layers="avg_pool", precision="float32")
    i8 = tk.extract(photos, tmp / "p8", model="efficientnet_lite0", layers="avg_pool", precision="int8")
    cos = (f32.matrix * i8.matrix).sum(1) / np.linalg.norm(f32.matrix, axis=1) / np.linalg.norm(i8.matrix, axis=1)
    print(f"EfficientNet-Lite0 avg_pool on {len(cos)} real photos: cosine(int8, float32) mean {cos.mean():.4f}, "
          f"min {cos.min():.4f}")
    nn32 = [m.path for m in similar(f32, f32.paths, k=1)[0]]
    nn8 = [m.path for m in similar(i8, i8.paths, k=1)[0]]
    print(f"  nearest neighbour kept: {sum(a == b for a, b in zip(nn32, nn8))}/{len(nn32)}")
    top32 = [best[0][0] for _, best in predict_imagenet(photos, top=1, precision="float32")[0]]
    layer = "predictions"
    c32 = tk.extract(photos, tmp / "c32", model="efficientnet_lite0", layers=layer, precision="float32")
    c8 = tk.extract(photos, tmp / "c8", model="efficientnet_lite0", layers=layer, precision="int8")
    agree = (c32.matrix.argmax(1) == c8.matrix.argmax(1)).mean()
    assert list(c32.matrix.argmax(1)) == top32
    print(f"  ImageNet top-1 agreement int8 vs float32: {agree:.0%} of {len(top32)} photos")
    digits = write_digits(tmp / "digits")
    acc = {}
    for precision in ("float32", "int8"):
        feats = {split: tk.extract(digits / split, tmp / f"d-{precision}-{split}", model="efficientnet_lite0",
                                   layers="avg_pool", input_size=96, precision=precision) for split in
                 ("train", "validation")}
        tr, va = feats["train"], feats["validation"]
        _, hist = fit_head(tr.matrix, tr.labels, va.matrix, va.labels, n_classes=10, epochs=40,
                           learning_rate=1e-3, seed=0)
        acc[precision] = hist["val_accuracy"][-1]
    print(f"  digits head (40 epochs): float32 features {acc['float32']:.2%}, int8 features {acc['int8']:.2%} "
          f"({100 * (acc['int8'] - acc['float32']):+.2f} points)")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--images", type=int, default=128)
    ap.add_argument("--models", default="resnet50,vgg16,efficientnet_lite0,mobilenet_v2")
    ap.add_argument("--skip-quality", action="store_true")
    ap.add_argument("--skip-speed", action="store_true")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        os.environ.setdefault("TRANSFERKIT_CACHE", str(Path(tmp) / "cache"))
        if not args.skip_speed:
            speed(args.models.split(","), args.images, Path(tmp))
        if not args.skip_quality:
            quality(Path(tmp))


if __name__ == "__main__":
    main()
