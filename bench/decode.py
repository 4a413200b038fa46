"""Benchmark: JPEG decode + resize to 224 on one core, by decoder, on real-size (500 × 375) JPEGs.

    python bench/decode.py [--images 200]

Compares PIL (transferkit's path: draft mode, then bilinear), PIL without draft, simplejpeg and OpenCV when
installed, and tf.io when TensorFlow is installed; prints images/s per core and the ratio to transferkit's path.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, os.path.dirname(__file__))
from extract_vs_keras import make_jpegs  # noqa: E402


def decoders(size: int):
    from PIL import Image

    from transferkit.data.decode import load_image

    out = {"transferkit (PIL, draft + bilinear)": lambda p: load_image(p, size)}

    def pil_plain(p):
        with Image.open(p) as im:
            return np.asarray(im.convert("RGB").resize((size, size), Image.Resampling.BILINEAR))

    out["PIL, no draft"] = pil_plain
    try:
        import simplejpeg

        def sj(p):
            with open(p, "rb") as f:
                arr = simplejpeg.decode_jpeg(f.read(), min_height=size, min_width=size)
            return np.asarray(Image.fromarray(arr).resize((size, size), Image.Resampling.BILINEAR))

        out["simplejpeg (DCT scaling) + PIL resize"] = sj
    except ImportError:
        pass
    try:
        import cv2

        out["OpenCV imread + INTER_AREA"] = lambda p: cv2.resize(cv2.imread(p)[..., ::-1], (size, size),
                                                                  interpolation=cv2.INTER_AREA)
    except ImportError:
        pass
    try:
        import tensorflow as tf

        def tfio(p):
            img = tf.io.decode_jpeg(tf.io.read_file(p), channels=3)
            return tf.image.resize(img, (size, size)).numpy()

        out["tf.io.decode_jpeg + tf.image.resize"] = tfio
    except ImportError:
        pass
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--images", type=int, default=200)
    ap.add_argument("--size", type=int, default=224)
    args = ap.parse_args()
    folder = tempfile.mkdtemp(prefix="tk-decode-")
    make_jpegs(folder, args.images)
    files = sorted(os.path.join(d, f) for d, _, fs in os.walk(folder) for f in fs)
    results = {}
    for name, fn in decoders(args.size).items():
        fn(files[0])
        t = time.perf_counter()
        for f in files:
            fn(f)
        results[name] = len(files) / (time.perf_counter() - t)
    base = results["transferkit (PIL, draft + bilinear)"]
    print(f"{len(files)} JPEGs 500x375 -> {args.size}x{args.size}, one thread")
    print(f"{'decoder':<44}{'img/s':>9}{'vs transferkit':>16}")
    for name, rate in results.items():
        print(f"{name:<44}{rate:>9.0f}{rate / base:>15.2f}x")


if __name__ == "__main__":
    main()
