"""Reproduce the classic cats-vs-dogs tutorial's three-row table with transferkit (VGG16 at 150 px).

    python examples/cats_vs_dogs.py [--data DIR_OR_ZIP] [--epochs 30] [--finetune-epochs 100]

Downloads `cats_and_dogs_filtered` (2,000 train / 1,000 validation images) when the network allows; offline it
says so and exits. Pass --data to use a copy you already have (the folder or the zip).
"""

from __future__ import annotations

import argparse
import sys
import time
import urllib.request
import zipfile
from pathlib import Path

URL = "https://storage.googleapis.com/mledu-datasets/cats_and_dogs_filtered.zip"
TUTORIAL = {"features": 0.886, "frozen": 0.899, "finetune": 0.948}
LABELS = {"features": "cached VGG16 features + dense head", "frozen": "frozen base + augmentation",
          "finetune": "fine-tune block5"}


def prepare(source: Path | None, cache: Path) -> Path:
    """Return a folder with train/ and validation/: from `source` (folder or zip) or a download into `cache`."""
    if source is not None and source.is_dir():
        return _find_root(source)
    archive = source if source is not None else cache / "cats_and_dogs_filtered.zip"
    if not archive.exists():
        cache.mkdir(parents=True, exist_ok=True)
        try:
            urllib.request.urlretrieve(URL, archive)
        except OSError as exc:
            raise SystemExit(f"Could not download the data set from {URL} ({exc}). This needs network access; "
                             "or pass --data with the folder or zip.") from None
    with zipfile.ZipFile(archive) as zf:
        zf.extractall(cache)
    return _find_root(cache)


def _find_root(folder: Path) -> Path:
    for candidate in (folder, *folder.glob("*/")):
        if (candidate / "train").is_dir() and (candidate / "validation").is_dir():
            return candidate
    raise SystemExit(f"{folder} has no train/ and validation/ folders.")


def run_table(data: Path, *, model="vgg16", input_size=150, epochs=30, finetune_epochs=100, runs="runs/cats_vs_dogs",
              weights="imagenet", strategies=("features", "frozen", "finetune"), **kwargs) -> list[dict]:
    """Train each strategy with the tutorial's settings; return rows of accuracy and time."""
    from transferkit.train import train

    rows = []
    for strategy in strategies:
        t = time.perf_counter()
        result = train(data, model=model, strategy=strategy, input_size=input_size, weights=weights, epochs=epochs,
                       finetune_epochs=finetune_epochs, runs_root=runs, name=strategy, overwrite=True, **kwargs)
        rows.append({"strategy": strategy, "accuracy": result.metrics["accuracy"],
                     "seconds": time.perf_counter() - t, "tutorial": TUTORIAL[strategy]})
    return rows


def print_table(rows: list[dict]) -> None:
    print(f"{'strategy':<40}{'val. accuracy':>14}{'tutorial':>10}{'time':>10}")
    for r in rows:
        print(f"{LABELS[r['strategy']]:<40}{r['accuracy']:>14.1%}{r['tutorial']:>10.1%}{r['seconds']:>9.0f}s")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=None, help="cats_and_dogs_filtered folder or zip")
    ap.add_argument("--cache", type=Path, default=Path("data"), help="where to download/extract (default: data)")
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument("--finetune-epochs", type=int, default=100)
    args = ap.parse_args(argv)
    data = prepare(args.data, args.cache)
    print_table(run_table(data, epochs=args.epochs, finetune_epochs=args.finetune_epochs))
    return 0


if __name__ == "__main__":
    sys.exit(main())
