"""Benchmark: where to put the near-duplicate threshold — cosine similarity of edited copies vs different photos.

    python bench/duplicate_threshold.py [--model efficientnet_lite0] [--layer avg_pool]

Takes the real photos bundled with scikit-image, makes edited copies of each (mirror, 10 % crop, half size,
JPEG quality 30, brightness +25 %, grey) and prints, for the chosen model and layer, the lowest similarity of an
edited copy to its original and the highest similarity between two different photos. A threshold between the
two separates them; `transferkit duplicates` uses 0.9 (docs/search.md).
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np


def make_photos(root: Path) -> list[tuple[str, str]]:
    from PIL import Image, ImageEnhance, ImageOps
    from skimage import data

    photos = {"astronaut": data.astronaut(), "coffee": data.coffee(), "chelsea": data.chelsea(),
              "rocket": data.rocket(), "motorcycle_left": data.stereo_motorcycle()[0], "hubble": data.hubble_deep_field(),
              "immunohistochemistry": data.immunohistochemistry(), "retina": data.retina(),
              "colorwheel": data.colorwheel()[..., :3], "logo": data.logo()[..., :3], "page": data.page()}
    pairs = []
    for name, arr in photos.items():
        img = Image.fromarray(arr).convert("RGB")
        img.save(root / f"{name}.png")
        w, h = img.size
        edits = {"mirror": ImageOps.mirror(img), "crop": img.crop((w // 20, h // 20, w - w // 20, h - h // 20)),
                 "half": img.resize((w // 2, h // 2)), "bright": ImageEnhance.Brightness(img).enhance(1.25),
                 "grey": ImageOps.grayscale(img).convert("RGB")}
        for edit, im in edits.items():
            im.save(root / f"{name}__{edit}.png")
            pairs.append((f"{name}.png", f"{name}__{edit}.png"))
        img.save(root / f"{name}__jpeg30.jpg", quality=30)
        pairs.append((f"{name}.png", f"{name}__jpeg30.jpg"))
    return pairs


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="efficientnet_lite0")
    ap.add_argument("--layer", default="avg_pool")
    args = ap.parse_args()
    import transferkit as tk
    from transferkit.search.index import normalize

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "photos"
        root.mkdir()
        pairs = make_photos(root)
        fs = tk.extract(root, Path(tmp) / "f", model=args.model, layers=args.layer, precision="float32")
    x = normalize(fs.matrix)
    row = {p: i for i, p in enumerate(fs.paths)}
    sims = x @ x.T
    edited = {(a, b): float(sims[row[a], row[b]]) for a, b in pairs}
    originals = [p for p in fs.paths if "__" not in p]
    different = [(a, b, float(sims[row[a], row[b]])) for i, a in enumerate(originals) for b in originals[i + 1:]]
    print(f"{args.model} {args.layer}: {len(originals)} photos, {len(pairs)} edited copies")
    by_edit: dict[str, list[float]] = {}
    for (a, b), s in edited.items():
        by_edit.setdefault(b.split("__")[1].split(".")[0], []).append(s)
    for edit, values in by_edit.items():
        print(f"  edited copy vs original, {edit:<7}: min {min(values):.3f}  median {np.median(values):.3f}")
    worst = min(edited.items(), key=lambda kv: kv[1])
    top = max(different, key=lambda t: t[2])
    print(f"lowest edited-copy similarity  : {worst[1]:.3f} ({worst[0][1]})")
    print(f"highest different-photo similarity: {top[2]:.3f} ({top[0]} vs {top[1]})")
    for t in (0.8, 0.85, 0.9, 0.95):
        found = sum(s >= t for s in edited.values())
        false = sum(s >= t for _, _, s in different)
        print(f"  threshold {t:.2f}: {found}/{len(edited)} edited copies found, {false}/{len(different)} "
              "different pairs wrongly grouped")


if __name__ == "__main__":
    main()
