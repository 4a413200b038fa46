"""Using a trained classifier: load a run or a `.keras` file, predict a folder to CSV, evaluate a labelled folder."""

from __future__ import annotations

import csv
import warnings
from pathlib import Path

import numpy as np

from ..data.folder import index_images
from ..data.input_config import InputConfig
from ..errors import TransferkitError, check_one_of, warn_skipped
from ..files import atomic_open, write_json_atomic
from ..extract.reader import ImageReader
from .metrics import classification_metrics, probabilities_2d
from .run_folder import RunFolder

TTA_MODES = ("none", "hflip", "flips", "dihedral")


def load_run(run_or_model, *, unsafe: bool = False):
    """Load a trained classifier (Keras safe mode) and its settings from a run folder or a `.keras` file.

    A run folder (or a `.keras` file with the run's config.json beside it) gives the class names and the
    `InputConfig` the run was trained with. A bare `.keras` file has neither: its images are resized whole
    (bilinear) and its classes are numbered, with a warning.

    Args:
        unsafe: allow Lambda layers and other code in the file (only for files you trust).

    Returns:
        (model, info) where info has "class_names" and "input" (an `InputConfig`).

    Example:
    >>> model, info = load_run("runs/lite0-features")  # doctest: +SKIP
    >>> info["input"].describe()  # doctest: +SKIP
    '224 px, centre 87.5% crop, bicubic, lite preprocessing'
    """
    path = Path(run_or_model)
    model_file = path / "model.keras" if path.is_dir() else path
    members = RunFolder(path).members() if path.is_dir() else []
    if path.is_dir() and not model_file.is_file() and members:
        raise TransferkitError(f"{str(path)!r} holds {len(members)} runs (k folds or seeds), each with its own model; "
                               f"pass one of them, e.g. {str(members[0].path)!r}.")
    if path.is_dir() and not model_file.is_file():
        raise TransferkitError(f"{str(path)!r} is not a finished run folder: it has no model.keras (train it to the "
                               "end, or pass another run).")
    if not model_file.is_file():
        raise TransferkitError(f"{str(path)!r} is neither a run folder with model.keras nor a .keras file.")
    run = RunFolder(model_file.parent)
    config_file = run.config_file
    model = _load_keras(model_file, unsafe)
    size = int(model.inputs[0].shape[1])
    if config_file.is_file():
        names, input_config = run.config()["class_names"], run.input_config()
        if input_config.size != size:
            raise TransferkitError(f"{config_file} records input size {input_config.size}, but {model_file.name} "
                                   f"takes {size} px: the two files belong to different runs.")
        return model, {"class_names": names, "input": input_config}
    if path.is_dir():
        raise TransferkitError(f"The run folder {str(path)!r} has no config.json, which says how its images are "
                               "cropped and resized; copy it back from the run, or pass the .keras file itself.")
    n = int(model.outputs[0].shape[-1])
    warnings.warn(f"{model_file.name} has no config.json beside it: images are resized whole (bilinear) and "
                  "classes are numbered; keep the run's config.json with the model for its own settings.",
                  stacklevel=2)
    return model, {"class_names": [str(i) for i in range(2 if n == 1 else n)], "input": InputConfig(size)}


def _load_keras(model_file: Path, unsafe: bool):
    import zipfile

    import keras

    if not zipfile.is_zipfile(model_file):
        raise TransferkitError(f"{model_file} is damaged (not a complete .keras archive: truncated or overwritten?). "
                               "Train the run again or restore the file.")
    try:
        return keras.saving.load_model(model_file, safe_mode=not unsafe)
    except Exception as exc:
        text = str(exc)
        if "safe_mode" in text or "unsafe" in text.lower():
            raise TransferkitError(f"{model_file} contains code (e.g. a Lambda layer), which safe mode refuses to "
                                   "load. If you trust the file, pass --unsafe (unsafe=True).") from None
        raise TransferkitError(f"Cannot load {model_file}: it is damaged or not a Keras model "
                               f"({text.splitlines()[0][:300] if text else type(exc).__name__}).") from None


def predict(run_or_model, images, output=None, *, batch_size: int = 32, unsafe: bool = False, tta: str = "none",
            quiet: bool = True):
    """Predict the class of every image; optionally write a CSV (path, predicted class, one probability per class).

    Args:
        images: a folder, an image file, a CSV with a path column, or a list of these.
        tta: test-time augmentation: "none", "hflip" (average with the mirrored image), "flips" (also
            upside down and both; for images whose label survives any flip) or "dihedral" (all 8 orientations:
            the flips and 90° turns).
        quiet: no progress bar (the command line shows one unless --quiet).

    Returns:
        (rows, skipped): rows are dicts with "path", "predicted", "probabilities".

    Example:
    >>> rows, skipped = predict("runs/vgg16-finetune", "new_photos/", "predictions.csv")  # doctest: +SKIP
    """
    model, info = load_run(run_or_model, unsafe=unsafe)
    index = _query_index(images)
    positions, probs, skipped = predict_index(model, index, info["input"], batch_size=batch_size, tta=tta,
                                              quiet=quiet)
    names = info["class_names"]
    rows = [{"path": index.paths[p], "predicted": names[int(np.argmax(pr))], "probabilities": pr.tolist()}
            for p, pr in zip(positions, probs)]
    if output is not None:
        write_predictions(output, [r["path"] for r in rows], probs, None, names)
    return rows, skipped


def _query_index(images):
    """The images of a folder, file or CSV — or of several of them (each file once, in the order given)."""
    if not isinstance(images, (list, tuple)):
        return index_images(images, labels="none")
    files = []
    for item in images:
        found = index_images(item, labels="none")
        files += [found.absolute(i) for i in range(len(found))]
    return index_images(list(dict.fromkeys(files)), labels="none")


def evaluate(run_or_model, data, out_dir=None, *, batch_size: int = 32, unsafe: bool = False,
             tta: str = "none") -> dict:
    """Accuracy, top-k accuracy, loss, ROC-AUC, per-class precision/recall/F1 and the confusion matrix on a
    labelled `<class>/` folder or a `path,label` CSV.

    With `out_dir`, also writes metrics.json, predictions.csv (one row per image: path, true, predicted, loss,
    probabilities), confusion.png and top_losses.png there; `tta` as in `predict`.

    Example:
    >>> m = evaluate("runs/vgg16-finetune", "data/test", "eval/")  # doctest: +SKIP
    >>> m["accuracy"], m["roc_auc"], m["top_k_accuracy"]  # doctest: +SKIP
    (0.94, 0.981, {})
    """
    model, info = load_run(run_or_model, unsafe=unsafe)
    index = index_images(data, class_names=info["class_names"])
    if index.labels is None:
        raise TransferkitError(f"{str(data)!r} has no labels to evaluate against: pass a folder with one "
                               "sub-folder per class, or a CSV with path and label columns.")
    metrics = evaluate_model(model, index, info["class_names"], info["input"], out_dir=out_dir,
                             batch_size=batch_size, tta=tta)
    if out_dir is not None:
        write_json_atomic(Path(out_dir) / "metrics.json", metrics)
    return metrics


def tta_views(images: np.ndarray, tta: str = "none") -> list[np.ndarray]:
    """The test-time-augmentation views of a (n, h, w, 3) batch: "none", "hflip" (+ mirrored), "flips"
    (+ mirrored, upside down, both: for images whose label survives any flip), or "dihedral" (those 4 and
    their transposes: all 8 orientations of a square, for labels that also survive 90° turns)."""
    check_one_of("tta", tta, TTA_MODES)
    views = [images]
    if tta != "none":
        views.append(images[:, :, ::-1])
    if tta in ("flips", "dihedral"):
        views += [images[:, ::-1], images[:, ::-1, ::-1]]
    if tta == "dihedral":
        views += [v.transpose(0, 2, 1, 3) for v in views]
    return views


def predict_index(model, index, input_config: InputConfig, *, batch_size: int = 32, tta: str = "none",
                  quiet: bool = True):
    """Class probabilities (n, n_classes) of the images of `index` (averaged over the `tta` views), plus the
    skipped files; images become tensors as `input_config` says (the run's own)."""
    from tqdm.auto import tqdm

    check_one_of("tta", tta, TTA_MODES)
    reader = ImageReader(index, input_config, batch_size=batch_size)
    positions, probs, skipped = [], [], []
    bar = tqdm(total=len(index), unit="img", desc="predict", disable=quiet, leave=False)
    for batch in reader.iter_range(0, len(index)):
        bar.update(len(batch.positions) + len(batch.errors))
        n = len(batch.positions)
        if n:
            x = batch.images.astype("float32")
            if n < batch_size:  # one input shape for the compiled predict function
                x = np.concatenate([x, np.zeros((batch_size - n, *x.shape[1:]), "float32")])
            views = [probabilities_2d(np.asarray(model.predict_on_batch(np.ascontiguousarray(v)))[:n])
                     for v in tta_views(x, tta)]
            probs.append(np.mean(views, axis=0))
            positions.append(batch.positions)
        skipped += [{"path": index.paths[i], "reason": r} for i, r in batch.errors]
    bar.close()
    warn_skipped(skipped)
    if not probs:
        return np.zeros(0, int), np.zeros((0, 0)), skipped
    return np.concatenate(positions), np.concatenate(probs), skipped


def evaluate_model(model, index, class_names, input_config: InputConfig, *, out_dir=None, batch_size=32,
                   tta: str = "none") -> dict:
    """Metrics of `model` on a labelled index; with `out_dir`, also predictions.csv, confusion.png and
    top_losses.png."""
    positions, probs, skipped = predict_index(model, index, input_config, batch_size=batch_size, tta=tta)
    labels = index.labels[positions]
    metrics = classification_metrics(probs, labels, class_names)
    metrics["skipped"] = skipped
    metrics["tta"] = tta
    if out_dir is not None:
        from ..viz.plots import plot_confusion, plot_top_losses

        try:
            Path(out_dir).mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise TransferkitError(f"Cannot create the output folder {str(out_dir)!r}: {exc.strerror or exc}.") from None
        write_predictions(Path(out_dir) / "predictions.csv", [index.paths[i] for i in positions], probs, labels,
                          class_names)
        plot_confusion(metrics, Path(out_dir) / "confusion.png")
        plot_top_losses(probs, labels, [index.paths[i] for i in positions], index.root, class_names,
                        Path(out_dir) / "top_losses.png")
    return metrics


def write_predictions(path, paths: list[str], probs: np.ndarray, labels: np.ndarray | None, class_names) -> Path:
    """One row per image: path, [true class,] predicted class, [its loss,] one probability per class."""
    labelled = labels is not None
    with atomic_open(path, newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["path", *(["true"] if labelled else []), "predicted", *(["loss"] if labelled else []),
                         *[f"p_{n}" for n in class_names]])
        for i, (p, pr) in enumerate(zip(paths, probs)):
            truth = [class_names[int(labels[i])]] if labelled else []
            loss = [f"{-np.log(max(float(pr[int(labels[i])]), 1e-7)):.6f}"] if labelled else []
            writer.writerow([p, *truth, class_names[int(np.argmax(pr))], *loss, *[f"{v:.6f}" for v in pr]])
    return Path(path)
