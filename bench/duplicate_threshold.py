"""Benchmark: where to put the near-duplicate threshold — cosine similarity of edited copies vs different photos.

    python bench/duplicate_threshold.py [--model efficientnet_lite0] [--layer avg_pool]
    python bench/duplicate_threshold.py --rules      # which pairs the near-duplicate rule groups, per setting

Takes the real photos bundled with scikit-image, makes edited copies of each (mirror, 10 % crop, half size,
JPEG quality 30, brightness +25 %, grey) and prints, for the chosen model and layer, the lowest similarity of an
edited copy to its original and the highest similarity between two different photos. A threshold between the
two separates them; `transferkit duplicates` uses 0.85 (docs/search.md).

`--rules` measures the whole near-duplicate rule (threshold, and standing out from the 10th neighbour) against
settings of its two numbers, on four sets: scikit-learn's 1,797 digits written as 32 px PNGs and extracted at the
model's size and at 96 px (no two are copies: every pair grouped is a mistake), the demo's photos with its
edited copies (5 true pairs), the 11 photos with 6 edits each above (66 true pairs) and 20,000 clustered vectors
with 400 planted pairs at cosine 0.95 (bench/search.py's generator, threshold 0.9).
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


def rules(model: str, layer: str) -> None:
    """Pairs the rule finds, per (neighbourhood, standout), on digits, the demo's photos, the edits, planted."""
    import transferkit as tk
    from transferkit.demo import write_digits, write_edited_copies, write_photos
    from transferkit.search import load_index, near_duplicates as nd
    from transferkit.search.index import SearchIndex, normalize

    from machine import cpu_flags
    from search import planted

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        sets = {}
        digits = write_digits(tmp / "digits")
        for name, size in (("digits", None), ("digits96", 96)):
            tk.extract(digits, tmp / f"{name}_f", model=model, layers=layer, input_size=size, labels="none", quiet=True)
            sets[name] = load_index(tmp / f"{name}_f")
        photos = write_edited_copies(write_photos(tmp / "photos"), tmp / "demo")
        tk.extract(photos, tmp / "demo_f", model=model, layers=layer, quiet=True)
        sets["demo"] = load_index(tmp / "demo_f")
        (tmp / "edits").mkdir()
        edits = make_photos(tmp / "edits")
        tk.extract(tmp / "edits", tmp / "edits_f", model=model, layers=layer, quiet=True)
        sets["edits"] = load_index(tmp / "edits_f")
    x, first, second = planted(20_000, 512, 400)
    sets["planted"] = SearchIndex(normalize(x), [str(i) for i in range(len(x))], None, [], "", "v", "exact")
    truth = {"demo": [("chelsea.png", "chelsea_mirrored.png"), ("chelsea.png", "chelsea_crop.png"),
                      ("coffee.png", "coffee_q40.jpg"), ("coffee.png", "coffee_brighter.png"),
                      ("motorcycle_left.png", "motorcycle_right.png")],
             "edits": edits, "planted": list(zip(map(str, first), map(str, second)))}
    planted_pairs = {frozenset(p) for p in truth["planted"]}
    family = {"demo": lambda p: p.split("_")[0].split(".")[0], "edits": lambda p: p.split("__")[0].split(".")[0]}
    print(f"{model} {layer}; CPU flags: {cpu_flags()}")
    print("| neighbourhood | standout | digits (wrong pairs) | digits 96 px | demo photos (found/5, wrong) | "
          "edited photos (found/66, wrong) | planted (found/400, wrong) |")
    print("|---|---|---|---|---|---|---|")
    for k in (0, 1, 3, 5, 10, 20):
        for f in ((0.0,) if k == 0 else (0.5, 0.67, 0.75)):
            nd.NEIGHBOURHOOD, nd.STANDOUT = max(k, 1), f
            cells = []
            for name, index in sets.items():
                threshold = 0.9 if name == "planted" else nd.DEFAULT_THRESHOLD
                candidates, neighbours = nd.candidate_pairs(index, threshold)
                pairs = candidates if k == 0 else nd.standing_out(index, candidates, threshold, neighbours)
                found = {(index.paths[a], index.paths[b]) for a, b in zip(pairs.a, pairs.b)}
                found |= {(b, a) for a, b in found}
                if name.startswith("digits"):
                    cells.append(str(len(pairs)))
                    continue
                hits = sum(pair in found for pair in truth[name])
                if name == "planted":
                    wrong = sum(frozenset(pair) not in planted_pairs for pair in found) // 2
                else:
                    wrong = sum(family[name](a) != family[name](b) for a, b in found) // 2
                cells.append(f"{hits}/{len(truth[name])}, {wrong}")
            print(f"| {k or 'threshold only'} | {f:g} | " + " | ".join(cells) + " |", flush=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="efficientnet_lite0")
    ap.add_argument("--layer", default="avg_pool")
    ap.add_argument("--rules", action="store_true", help="measure the near-duplicate rule's settings")
    args = ap.parse_args()
    if args.rules:
        return rules(args.model, args.layer)
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
