"""How many labels each selection strategy of `transferkit label` needs: simulated labelling on scikit-learn's
digits and on ELPV (binary and 4-class), EfficientNet-Lite0 features, mean of 3 seeds, random beside each.

    python bench/label_strategies.py [--data digits,elpv-binary,elpv-4class] [--seeds 3] [--out bench-label]
    python bench/label_strategies.py --speed     # one refit and one batch choice on a 10,000-image pool

For every data set: the pool's images and a truth CSV are written under --out, features extracted once (cached
there), then `transferkit.label.simulate` runs every strategy from zero labels, answering from the truth, and
measures a held-out quarter after every batch. "labels to 95 %": the fewest labels whose mean test accuracy
reaches 95 % of the probe trained on every pool label. The same measurement as `transferkit label --simulate`.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "examples"))

from machine import cpu_flags  # noqa: E402

STRATEGIES = ("random", "typical", "margin", "typical-then-diverse")  # auto is the best of these: margin
# budget and batch per data set: enough labels for random to reach its 95 % on each
SETTINGS = {"digits": (400, 10), "elpv-binary": (1000, 20), "elpv-4class": (1200, 20)}


def write_digits_pool(out: Path) -> tuple[Path, Path]:
    """scikit-learn's 1,797 digits as 32 × 32 PNGs in one folder (no labels), and truth.csv."""
    from PIL import Image
    from sklearn.datasets import load_digits

    pool, truth = out / "digits-pool", out / "digits-truth.csv"
    if truth.exists():
        return pool, truth
    pool.mkdir(parents=True, exist_ok=True)
    digits = load_digits()
    lines = ["path,label"]
    for i, (image, target) in enumerate(zip(digits.images, digits.target)):
        path = pool / f"{i:04d}.png"
        Image.fromarray((image * 255 / 16).astype(np.uint8)).resize((32, 32), Image.BILINEAR).save(path)
        lines.append(f"{path.resolve()},{target}")
    truth.write_text("\n".join(lines) + "\n")
    return pool, truth


def write_elpv_pool(out: Path, task: str) -> tuple[Path, Path]:
    """The 2,624 ELPV cells in one folder (linked, no labels) and truth.csv for the task."""
    from elpv import class_of, find_source

    pool, truth = out / "elpv-pool", out / f"elpv-{task}-truth.csv"
    source = find_source(None)
    rows = source.labels()
    if not pool.exists():
        tmp = out / "elpv-pool.tmp"
        for path, _, _ in rows:
            source.copy(path, tmp / Path(path).name)
        tmp.rename(pool)
    if not truth.exists():
        truth.write_text("path,label\n" + "".join(f"{(pool / Path(p).name).resolve()},{class_of(prob, task)}\n"
                                                  for p, prob, _ in rows))
    return pool, truth


def run(name: str, pool: Path, truth: Path, out: Path, seeds: int, precision: str) -> dict:
    import transferkit as tk
    from transferkit.label import read_truth, simulate, write_simulation

    started = time.perf_counter()
    features = out / f"{pool.name}-features"
    fs = tk.extract(pool, features, model="efficientnet_lite0", labels="none", precision=precision, quiet=True,
                    update=(features / "manifest.json").is_file())
    extracted = time.perf_counter() - started
    rows, labels, classes = read_truth(truth, [str(Path(fs.root) / p) for p in fs.paths])
    budget, batch = SETTINGS[name]
    started = time.perf_counter()
    sim = simulate(np.asarray(fs.matrix, np.float32)[rows], labels, classes, budget=budget, strategies=STRATEGIES,
                   seeds=seeds, batch=batch)
    write_simulation(sim, out / f"{name}-simulation")
    reach = sim.summary["labels_to_reach"]
    return {"data": name, "images": len(rows), "classes": len(classes), "pool": sim.pool_size, "test": sim.test_size,
            "full": sim.summary["full_accuracy_mean"], "reach": reach, "budget": budget, "batch": batch,
            "extract_s": extracted, "simulate_s": time.perf_counter() - started}


def speed(rows: int = 10_000, dim: int = 1280, labelled: int = 500, classes: int = 10) -> None:
    """Seconds of one refit (probe fit, the pool's probabilities, the cross-validated estimate) and of choosing
    the next batch of 10, on random features of EfficientNet-Lite0's width."""
    import tempfile

    from transferkit.label import LabelSession

    rng = np.random.default_rng(0)
    centres = rng.normal(0, 1, (classes, dim))
    truth = rng.integers(0, classes, rows)
    x = (centres[truth] + 2.0 * rng.normal(size=(rows, dim))).astype(np.float32)
    with tempfile.TemporaryDirectory() as tmp:
        paths = [f"/pool/{i}.jpg" for i in range(rows)]
        session = LabelSession(paths, x, Path(tmp) / "labels.csv", classes=[str(c) for c in range(classes)])
        for i in range(labelled):
            session.store.answers[paths[i]] = str(truth[i])  # no journal needed to time the fit
        times = {"refit": [], **{f"next batch ({s})": [] for s in ("auto", "typical", "diverse-margin")}}
        for _ in range(3):
            started = time.perf_counter()
            session.refit()
            times["refit"].append(time.perf_counter() - started)
            for strategy in ("auto", "typical", "diverse-margin"):
                session.strategy = strategy
                started = time.perf_counter()
                session.next_batch()
                times[f"next batch ({strategy})"].append(time.perf_counter() - started)
    print(f"pool {rows} x {dim}, {labelled} labels, {classes} classes: " + ", ".join(
        f"{k} {min(v):.2f} s (best of 3)" for k, v in times.items()), flush=True)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="digits,elpv-binary,elpv-4class")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--precision", default="float32", help="extraction precision (default: float32)")
    parser.add_argument("--out", default="bench-label", type=Path)
    parser.add_argument("--speed", action="store_true", help="time one refit and one batch choice, then stop")
    args = parser.parse_args(argv)
    if args.speed:
        print(f"CPU flags: {cpu_flags()}")
        speed()
        return 0
    args.out.mkdir(parents=True, exist_ok=True)
    print(f"CPU flags: {cpu_flags()}; EfficientNet-Lite0 avg_pool features ({args.precision}); seeds {args.seeds}")
    results = []
    for name in args.data.split(","):
        pool, truth = write_digits_pool(args.out) if name == "digits" else write_elpv_pool(args.out, name[5:])
        result = run(name, pool, truth, args.out, args.seeds, args.precision)
        results.append(result)
        r = result["reach"]
        ratio = ", ".join(f"{s} {r[s] / r['random']:.2f}" for s in STRATEGIES[1:] if r[s] and r["random"])
        print(f"{name}: {result['images']} images, {result['classes']} classes, pool {result['pool']}, test "
              f"{result['test']}; every label: {result['full']:.1%}; labels to 95 %: "
              + ", ".join(f"{s} {r[s] if r[s] else '>' + str(result['budget'])}" for s in STRATEGIES)
              + f"; of random's: {ratio} (extract {result['extract_s']:.0f} s, simulate {result['simulate_s']:.0f} s)",
              flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
