"""`audit`: index → file checks → features (cached) → out-of-fold probabilities → findings → CSV, page, clean list."""

from __future__ import annotations

import csv
import io
import os
import time
from pathlib import Path

import numpy as np

from ..backbones.registry import DEFAULT_MODEL, get_backbone, with_crop
from ..data.folder import ImageIndex, index_images
from ..data.folds import stratified_folds
from ..errors import TransferkitError, check_positive_int, warn_skipped
from ..extract.cache import cached_features
from ..extract.store import load_features, read_manifest
from ..extract.writer import MANIFEST
from ..files import write_json_atomic, write_text_atomic
from ..search.near_duplicates import DEFAULT_THRESHOLD
from ..data.splits import VALIDATION_NAMES, labelled_pool
from .checks import (image_checks, imbalance_findings, label_findings, out_of_fold_probabilities, search_index,
                     similarity_findings)
from .findings import AuditFindings, Finding
from .page import write_page



def labelled_images(data):
    """(index, split per row, class folder of a class) of a training folder, a plain `<class>/` folder or a
    `path,label` CSV."""
    source = Path(os.path.expanduser(str(data)))
    if source.is_file() and source.suffix.lower() == ".csv":
        index = index_images(source)
        if index.labels is None:
            raise TransferkitError(f"The CSV {str(source)!r} has no `label` column: the audit checks labels. Add "
                                   "a `label` column (path,label).")
        if len(index.class_names) < 2:
            raise TransferkitError(f"The audit needs at least 2 classes; {str(source)!r} has {index.class_names}.")
        return index, [""] * len(index), lambda c: ""
    if not source.is_dir():
        raise TransferkitError(f"{str(source)!r} must be a folder (train/ validation/ <class>/, or <class>/) or a "
                               "path,label CSV" + (" (it does not exist)." if not source.exists() else "."))
    index, split = labelled_pool(source)
    prefix = "train/" if (source / "train").is_dir() else ""
    return index, split, lambda c: f"{prefix}{index.class_names[c]}/"


def _feature_set(data):
    """(index, split per row, class folder of a class) of a labelled feature folder; None for anything else."""
    folder = Path(os.path.expanduser(str(data)))
    if not (folder / MANIFEST).is_file():
        return None
    manifest = read_manifest(folder)
    fs = load_features(folder, layers=[])
    if fs.labels is None or len(fs.class_names) < 2:
        raise TransferkitError(f"The feature set {str(folder)!r} has no labels of 2 or more classes: the audit checks "
                               "labels. Extract a folder of class sub-folders, or import with --labels.")
    root = Path(manifest.get("root") or ".")
    index = ImageIndex(root, list(fs.paths), fs.labels, list(fs.class_names))
    names = {p.split("/", 1)[0] for p in fs.paths}
    split = ([("validation" if p.split("/", 1)[0] in VALIDATION_NAMES else p.split("/", 1)[0]) for p in fs.paths]
             if "train" in names and names & set(VALIDATION_NAMES) else [""] * len(fs.paths))
    return index, split, lambda c: ""


def audit(data, out="audit", *, model: str = DEFAULT_MODEL, folds: int = 5, input_size: int | None = None,
          crop="model", weights="imagenet", precision: str = "auto", threshold: float = DEFAULT_THRESHOLD,
          min_size: int = 32, runs_root="runs", seed: int = 0, write_csv=None, relabel: bool = False,
          batch_size: int = 32, quiet: bool = True) -> AuditFindings:
    """Find what is wrong with a labelled image folder before training. The user's files are only read.

    Finds label issues (confident learning — cleanlab — on out-of-fold probabilities of a logistic regression on
    the backbone's features, `folds` stratified folds), leaks (validation images with a near-duplicate in
    train), near-duplicates within a split, outliers, class imbalance, and unreadable, tiny or one-colour images.

    Args:
        data: a `train/ validation/ <class>/` folder, a plain `<class>/` folder, a `path,label` CSV, or a labelled
            feature folder (extracted, or vectors from elsewhere via `save_features`: its own vectors are audited;
            the file checks and thumbnail matching run only when its images are on disk).
        out: folder for `issues.csv`, `audit.html` and `summary.json` (created).
        model, input_size, crop, weights, precision: the features, as for `extract` (cached in
            `runs_root/.feature-cache`, shared with `train --strategy features` on the same images).
        folds: k of the out-of-fold probabilities (every class needs at least k images).
        threshold: cosine similarity from which two images are near-duplicates (leaks and duplicates).
        min_size: a shorter side below this many pixels is "tiny".
        write_csv: also write a `path,label` CSV of the images without findings (for `train --folds` or
            `--validation-split`); `relabel` keeps label-issue images there with the suggested label.

    Returns:
        `AuditFindings` (also written to `out/issues.csv`).

    Example:
    >>> findings = audit("data/", "audit/", folds=5)  # doctest: +SKIP
    >>> findings.counts()  # doctest: +SKIP
    {'unreadable': 0, 'tiny': 0, 'constant': 0, 'leak': 3, 'label': 41, 'duplicate': 2, 'outlier': 7, ...}
    """
    started = time.perf_counter()
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or not 0 < threshold <= 1:
        raise TransferkitError(f"`threshold` must be a cosine similarity above 0 and at most 1 (e.g. 0.9). "
                               f"Received: threshold={threshold!r}")
    check_positive_int("min_size", min_size)
    spec = with_crop(get_backbone(model), crop)
    index, split, folder_of, fs, out, findings, thumbs = _images_and_features(
        data, out, spec, folds=folds, seed=seed, min_size=min_size, runs_root=runs_root, input_size=input_size,
        weights=weights, precision=precision, batch_size=batch_size, quiet=quiet)
    known = {f.path for f in findings if f.issue == "unreadable"}
    row = {p: i for i, p in enumerate(index.paths)}
    for s in fs.skipped:  # a file the checks could read but extraction could not
        if s["path"] not in known and s["path"] in row:
            i = row[s["path"]]
            findings.append(Finding(s["path"], split[i], "unreadable", 1.0, index.class_names[index.labels[i]],
                                    other=s["reason"]))
    warn_skipped({"path": f.path, "reason": f.other} for f in findings if f.issue == "unreadable")
    rows = np.array([row[p] for p in fs.paths], dtype=np.int64)
    sub = index.subset(rows)
    sub_split = [split[i] for i in rows]
    if len(fs.features) != 1:
        raise TransferkitError(f"{str(data)!r} holds several layers {list(fs.features)}; audit one: extract it "
                               "alone, or audit the image folder.")
    x = fs.matrix.reshape(len(rows), -1).astype(np.float32)
    probs = out_of_fold_probabilities(x, sub.labels, folds, seed, index.class_names)
    findings += label_findings(sub.paths, sub_split, sub.labels, probs, index.class_names)
    findings += similarity_findings(search_index(sub, x), sub_split,
                                    np.stack([thumbs[p] for p in sub.paths]) if thumbs else None, threshold)
    findings += imbalance_findings(index.labels, index.class_names, folder_of)
    assigned = stratified_folds(sub.labels, folds, seed, index.class_names)
    correct = np.argmax(probs, axis=1) == sub.labels
    per_fold = [float(correct[assigned == k].mean()) for k in range(folds)]
    result = AuditFindings(findings, folder=out)
    result.summary = {
        "data": str(Path(data).resolve()),
        "images": len(index), "classes": {n: int(c) for n, c in zip(index.class_names, np.bincount(
            index.labels, minlength=len(index.class_names)))},
        "model": fs.manifest["settings"].get("model", "imported"), "input": fs.manifest["settings"].get("input"),
        "precision": fs.manifest.get("settings", {}).get("precision", "n/a"), "folds": folds,
        "threshold": threshold, "counts": result.counts(), "flagged_images": len(result.flagged()),
        "out_of_fold_accuracy": per_fold, "out_of_fold_accuracy_mean": float(np.mean(per_fold)),
        "out_of_fold_accuracy_std": float(np.std(per_fold, ddof=1)),
        "features": str(Path(fs.folder).resolve()), "seconds": round(time.perf_counter() - started, 2)}
    result.to_csv(out / "issues.csv")
    write_json_atomic(out / "summary.json", result.summary)
    write_page(result, index, out / "audit.html", title=f"Audit of {Path(data).resolve()}")
    if write_csv is not None:
        write_clean_csv(result, index, write_csv, relabel=relabel)
    return result


def _images_and_features(data, out, spec, *, folds: int, seed: int, min_size: int, runs_root, input_size,
                         weights, precision: str, batch_size: int, quiet: bool):
    """The labelled images, the output folder (made once the folds are known to work), the file checks'
    findings and thumbnails, and the features: a feature folder's own vectors, or the backbone's (cached)."""
    given_set = _feature_set(data)
    if given_set is not None:  # a feature folder (extracted, or imported with labels): its own vectors
        index, split, folder_of = given_set
        fs = load_features(data)
        stratified_folds(index.labels, folds, seed, index.class_names)
        out = _output_folder(out)
        readable = all(os.path.isfile(index.absolute(i)) for i in range(len(index)))
        findings, thumbs = image_checks(index, split, min_size=min_size) if readable else ([], None)
        return index, split, folder_of, fs, out, findings, thumbs
    index, split, folder_of = labelled_images(data)
    stratified_folds(index.labels, folds, seed, index.class_names)  # every class has >= k images, first
    out = _output_folder(out)
    findings, thumbs = image_checks(index, split, min_size=min_size)
    fs = cached_features(Path(runs_root) / ".feature-cache", index, model=spec.name, layer=spec.default_layer,
                         pooling=None, input_config=spec.input_config(input_size), weights=weights,
                         precision=precision, batch_size=batch_size, quiet=quiet)
    return index, split, folder_of, fs, out, findings, thumbs


def _output_folder(out) -> Path:
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise TransferkitError(f"{str(out)!r} is a file; pass a folder for the audit's output (-o DIR).")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise TransferkitError(f"Cannot create {str(out)!r}: {exc.strerror or exc}.") from None
    return out


def write_clean_csv(findings: AuditFindings, index, path, *, relabel: bool = False) -> Path:
    """A `path,label` CSV (absolute paths) of every image without a finding; with `relabel`, images whose only
    finding is a label issue stay, with the suggested label. `train` reads it with --folds or --validation-split."""
    issues: dict[str, list[Finding]] = {}
    for f in findings:
        if f.issue != "imbalance":
            issues.setdefault(f.path, []).append(f)
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["path", "label"])
    for i, p in enumerate(index.paths):
        label = index.class_names[index.labels[i]]
        found = issues.get(p, [])
        if relabel and found and all(f.issue == "label" for f in found):
            label = found[0].suggested
        elif found:
            continue
        writer.writerow([index.absolute(i), label])
    path = Path(path)
    if path.is_dir():
        raise TransferkitError(f"--write-csv {str(path)!r} is a folder; pass a file name, e.g. {path / 'clean.csv'}.")
    try:
        write_text_atomic(path, buf.getvalue())
    except OSError as exc:
        raise TransferkitError(f"Cannot write {str(path)!r}: {exc.strerror or exc}.") from None
    return path
