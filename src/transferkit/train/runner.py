"""The three transfer-learning strategies as named stages, writing a self-contained run directory."""

from __future__ import annotations

import csv
import datetime as _dt
import hashlib
import json
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .. import __version__, backend
from ..backbones.build import weights_identity
from ..backbones.registry import get_backbone
from ..errors import TransferkitError, check_one_of
from .data import Splits, drop_unreadable, find_splits, make_dataset
from .heads import compile_classifier
from .metrics import classification_metrics, plot_confusion, plot_top_losses
from .model import Augmentation, build_classifier, unfreeze_top

STRATEGIES = ("features", "frozen", "finetune")


@dataclass
class TrainResult:
    """What a training run produced: its folder, the Keras model, merged history and validation metrics."""

    run_dir: Path
    model: object
    history: dict
    metrics: dict
    config: dict
    stages: list = field(default_factory=list)


def _callbacks(run_dir: Path, best: Path, *, patience: int | None):
    """CSV history, best-weights checkpoint on validation accuracy, optional early stopping."""
    import keras

    cbs = [keras.callbacks.CSVLogger(str(run_dir / "history.csv"), append=True),
           keras.callbacks.ModelCheckpoint(str(best), monitor="val_accuracy", save_best_only=True,
                                           save_weights_only=True)]
    if patience:
        cbs.append(keras.callbacks.EarlyStopping(monitor="val_accuracy", patience=patience,
                                                 restore_best_weights=True))
    return cbs


def _fit(model, x, run_dir: Path, *, stage: str, patience, **kwargs):
    """`model.fit` with the run's callbacks (history, best weights, early stopping, and a backup of each
    finished epoch so that `resume=True` continues an interrupted stage), then back to the best weights."""
    import keras

    best = run_dir / f".best-{stage}.weights.h5"
    backup = keras.callbacks.BackupAndRestore(str(run_dir / ".backup" / stage), delete_checkpoint=True)
    hist = model.fit(x, callbacks=[backup, *_callbacks(run_dir, best, patience=patience)], **kwargs)
    if best.exists():
        model.load_weights(best)
        best.unlink()
    return hist.history


def _run_stage(clf, run_dir: Path, number: int, fit, history: dict, stages: list, timings: dict, label: str):
    """Run one named stage, or restore it when an earlier (interrupted) run of this folder finished it."""
    done_weights = run_dir / f".stage{number}.weights.h5"
    done_info = run_dir / f".stage{number}.json"
    if done_weights.exists() and done_info.exists():
        clf.load_weights(done_weights)
        info = json.loads(done_info.read_text())
        stages.append(info["stage"])
        timings[f"stage{number}_s"] = info["seconds"]
        return
    t = time.perf_counter()
    h = fit()
    _merge(history, h, label, stages)
    timings[f"stage{number}_s"] = time.perf_counter() - t
    clf.save_weights(done_weights)
    done_info.write_text(json.dumps({"stage": stages[-1], "seconds": timings[f"stage{number}_s"]}))


def export_model(clf, base, spec, size: int):
    """The inference model saved as model.keras: preprocessing → base → head, without augmentation layers."""
    import keras

    from .model import preprocessing_layer

    inputs = keras.Input((size, size, 3), name="image")
    x = clf.get_layer("preprocess")(inputs) if "preprocess" in [la.name for la in clf.layers] else (
        preprocessing_layer(spec)(inputs))
    x = base(x, training=False)
    return keras.Model(inputs, clf.get_layer("head")(x), name=f"{spec.name}_classifier")


def _merge(history: dict, new: dict, stage: str, stages: list) -> None:
    start = len(history.get("loss", []))
    for key, values in new.items():
        history.setdefault(key, []).extend(float(v) for v in values)
    stages.append({"stage": stage, "first_epoch": start + 1, "epochs": len(new.get("loss", []))})


def _class_weights(mode, labels: np.ndarray, n_classes: int):
    if mode in (None, "none"):
        return None
    if mode != "balanced":
        raise TransferkitError(f"`class_weight` must be 'balanced' or 'none'. Received: class_weight={mode!r}")
    counts = np.bincount(labels, minlength=n_classes).astype(float)
    return {c: float(len(labels) / (n_classes * counts[c])) for c in range(n_classes) if counts[c]}


def _new_run_dir(run_dir, runs_root, name, spec_name, strategy, overwrite, resume=False) -> Path:
    if run_dir is None:
        if resume and not name:
            raise TransferkitError("`resume` needs the run's --name (or run_dir) to find it.")
        stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
        run_dir = Path(runs_root) / (name or f"{spec_name}-{strategy}-{stamp}")
    run_dir = Path(run_dir)
    if resume and run_dir.exists():
        return run_dir
    if run_dir.exists() and any(run_dir.iterdir()):
        if not overwrite:
            raise TransferkitError(f"The run folder {str(run_dir)!r} already exists. Choose another --name/--run-dir, "
                                   "pass --resume to continue it, or --overwrite to replace it.")
        shutil.rmtree(run_dir)
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise TransferkitError(f"Cannot create the run folder {str(run_dir)!r}: {exc.strerror or exc}.") from None
    return run_dir


def train(data, *, model: str = "vgg16", strategy: str = "features", run_dir=None, runs_root="runs",
          name: str | None = None, input_size: int | None = None, weights="imagenet", epochs: int = 30,
          finetune_epochs: int | None = None, batch_size: int = 20, learning_rate: float = 2e-5,
          finetune_learning_rate: float = 1e-5, optimizer: str = "rmsprop", augment: bool = True,
          augmentation: Augmentation | None = None, hidden: int = 256, dropout: float = 0.5,
          patience: int | None = None, class_weight: str | None = None, validation_split: float | None = None,
          unfreeze_blocks: int | None = None, unfreeze_from: str | None = None, init_from=None, seed: int = 0,
          precision: str = "auto", overwrite: bool = False, resume: bool = False, quiet: bool = True) -> TrainResult:
    """Train a classifier on `DATA/train/<class>/` by transfer learning, evaluated on `DATA/validation/`.

    Strategies (the classic cats-vs-dogs tutorial's three):
      - "features": extract the conv base's output once (cached across runs), train a dense head on it.
      - "frozen": base frozen, augmentation layers inside the model, trained end to end on images.
      - "finetune": the "frozen" stage, then the top block(s) unfrozen and trained at `finetune_learning_rate`.

    Args:
        data: folder with train/ and validation/ (or use `validation_split`), optional test/.
        model: registry backbone. input_size: default the model's. weights: as in `extract`.
        epochs: epochs of the head stage; `finetune_epochs` (default `epochs`) of the unfrozen stage.
        batch_size, learning_rate, optimizer: training settings (tutorial defaults: 20, 2e-5, RMSprop).
        augment / augmentation: image strategies' random transforms (never applied to validation data).
        hidden, dropout: the dense head.
        patience: early stopping on validation accuracy, restoring the best weights.
        class_weight: "balanced" weights classes by inverse frequency.
        unfreeze_blocks / unfreeze_from: what "finetune" unfreezes (default: the registry's top block(s)).
        init_from: "finetune" only: a finished "features" or "frozen" run folder whose head (and base)
            start the unfrozen stage, which then skips the frozen stage.
        seed: makes data order, augmentation and initialisation reproducible.
        precision: "auto", "float32" or "bfloat16".
        resume: continue an interrupted run of the same name and settings: finished stages are restored and an
            interrupted stage continues after its last finished epoch (Keras `BackupAndRestore`).

    Returns:
        A `TrainResult`; the run folder holds config.json, history.csv, curves.png, model.keras,
        metrics.json, confusion.png and top_losses.png.

    Example:
    >>> result = train("cats_and_dogs_small/", model="vgg16", strategy="features", input_size=150)  # doctest: +SKIP
    >>> result.metrics["accuracy"]
    0.89
    """
    import keras

    spec = get_backbone(model)
    check_one_of("strategy", strategy, STRATEGIES)
    check_one_of("precision", precision, ("auto", "float32", "bfloat16"))
    for arg, value in (("epochs", epochs), ("batch_size", batch_size)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise TransferkitError(f"`{arg}` must be a positive integer. Received: {arg}={value!r}")
    size = input_size or spec.input_size
    used_precision = backend.resolve_precision(precision, spec.cpu_bfloat16)
    splits = find_splits(data, validation_split=validation_split, seed=seed)
    if init_from is not None:
        _check_init_run(init_from, strategy, spec.name, size, splits.class_names)
    run_dir = _new_run_dir(run_dir, runs_root, name, spec.name, strategy, overwrite, resume)
    n_classes = len(splits.class_names)
    splits.train, bad_train = drop_unreadable(splits.train, size)
    splits.validation, bad_val = drop_unreadable(splits.validation, size)
    augmentation = (augmentation or Augmentation()) if augment and strategy != "features" else None
    config = {
        "transferkit_version": __version__, "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "data": str(Path(data).resolve()), "model": spec.name, "strategy": strategy, "input_size": size,
        "weights": weights_identity(weights), "preprocessing": spec.preprocessing, "crop_fraction": spec.crop_fraction,
        "resample": spec.resample, "class_names": splits.class_names, "epochs": epochs,
        "finetune_epochs": finetune_epochs or epochs, "batch_size": batch_size, "learning_rate": learning_rate,
        "finetune_learning_rate": finetune_learning_rate, "optimizer": optimizer,
        "augmentation": augmentation.to_dict() if augmentation else None,
        "head": {"hidden": hidden, "dropout": dropout},
        "patience": patience, "class_weight": class_weight, "validation_split": validation_split,
        "unfreeze_blocks": unfreeze_blocks, "unfreeze_from": unfreeze_from, "seed": seed,
        "init_from": str(Path(init_from).resolve()) if init_from is not None else None,
        "precision": used_precision, "backend": backend.name(), "keras_version": keras.__version__,
        "counts": {"train": len(splits.train), "validation": len(splits.validation)},
        "skipped": bad_train + bad_val,
    }
    if resume and (run_dir / "config.json").exists():
        _check_resumable(run_dir, config)
        if (run_dir / "metrics.json").exists():  # finished already: nothing to do
            return _finished_result(run_dir)
    else:
        (run_dir / "config.json").write_text(json.dumps(config, indent=1) + "\n")
    keras.utils.set_random_seed(seed)
    clf, base = build_classifier(spec, n_classes, input_size=size, weights=weights, augmentation=augmentation,
                                 hidden=hidden, dropout=dropout, precision=used_precision, seed=seed)
    weights_cw = _class_weights(class_weight, splits.train.labels, n_classes)
    history: dict = {}
    stages: list = []
    timings = {}
    kw = dict(spec=spec, size=size, batch_size=batch_size, seed=seed, n_classes=n_classes, quiet=quiet)

    if init_from is not None:
        src = keras.saving.load_model(Path(init_from) / "model.keras", safe_mode=True)
        clf.get_layer("head").set_weights(src.get_layer("head").get_weights())
        base.set_weights(src.get_layer(base.name).get_weights())
        stages.append({"stage": f"head and base from {init_from}", "first_epoch": 1, "epochs": 0})
        timings["stage1_s"] = 0.0
    elif strategy == "features":
        _run_stage(clf, run_dir, 1, lambda: _stage_fit_head_on_features(
            clf, base, splits, run_dir, runs_root=runs_root, weights=weights, epochs=epochs, lr=learning_rate,
            optimizer=optimizer, patience=patience, class_weight=weights_cw, precision=used_precision, **kw),
            history, stages, timings, "features: fit head on cached features")
    else:
        compile_classifier(clf, n_classes, learning_rate=learning_rate, optimizer=optimizer)
        _run_stage(clf, run_dir, 1, lambda: _stage_fit_images(
            clf, splits, run_dir, stage="stage1", epochs=epochs, patience=patience, class_weight=weights_cw, **kw),
            history, stages, timings, "frozen: fit head, base frozen" + (", augmented" if augmentation else ""))
    if strategy == "finetune":
        unfrozen = unfreeze_top(base, spec, blocks=unfreeze_blocks, from_layer=unfreeze_from)
        compile_classifier(clf, n_classes, learning_rate=finetune_learning_rate, optimizer=optimizer)
        _run_stage(clf, run_dir, 2, lambda: _stage_fit_images(
            clf, splits, run_dir, stage="stage2", epochs=finetune_epochs or epochs, patience=patience,
            class_weight=weights_cw, **kw),
            history, stages, timings, f"finetune: unfrozen {unfrozen[0]}..{unfrozen[-1]} ({len(unfrozen)} layers)")
    export_model(clf, base, spec, size).save(run_dir / "model.keras")
    clf = keras.saving.load_model(run_dir / "model.keras", safe_mode=True)
    metrics = evaluate_model(clf, splits.validation, splits.class_names, size=size, crop_fraction=spec.crop_fraction,
                             resample=spec.resample, out_dir=run_dir, batch_size=batch_size)
    metrics["stages"] = stages
    metrics["timings"] = timings
    metrics["images_per_second"] = {
        f"stage{i + 1}": round(len(splits.train) * st["epochs"] / max(timings[f"stage{i + 1}_s"], 1e-9), 1)
        for i, st in enumerate(stages) if f"stage{i + 1}_s" in timings and st["epochs"]}
    (run_dir / "metrics.json").write_text(json.dumps(metrics, indent=1) + "\n")
    from ..viz.plots import plot_history

    history = read_history_csv(run_dir / "history.csv")  # every epoch, also those of an interrupted run
    plot_history(history, run_dir / "curves.png", title=f"{spec.name} {strategy}")
    for marker in run_dir.glob(".stage*"):
        marker.unlink()
    shutil.rmtree(run_dir / ".backup", ignore_errors=True)
    return TrainResult(run_dir, clf, history, metrics, config, stages)


_VOLATILE = ("created", "transferkit_version", "keras_version", "counts", "skipped")


def _check_resumable(run_dir: Path, config: dict) -> None:
    try:
        old = json.loads((run_dir / "config.json").read_text())
    except ValueError as exc:
        raise TransferkitError(f"{run_dir / 'config.json'} is not valid JSON ({exc}); cannot resume.") from None
    diff = [k for k in sorted(set(old) | set(config)) if k not in _VOLATILE and old.get(k) != config.get(k)]
    if diff:
        changes = "; ".join(f"{k}: {old.get(k)!r} -> {config.get(k)!r}" for k in diff)
        raise TransferkitError(f"Cannot resume {str(run_dir)!r}: its settings differ ({changes}). Use the same "
                               "settings, another --name, or --overwrite.")


def _finished_result(run_dir: Path) -> TrainResult:
    import keras

    metrics = json.loads((run_dir / "metrics.json").read_text())
    config = json.loads((run_dir / "config.json").read_text())
    model = keras.saving.load_model(run_dir / "model.keras", safe_mode=True)
    return TrainResult(run_dir, model, read_history_csv(run_dir / "history.csv"), metrics, config,
                       metrics.get("stages", []))


def _check_init_run(init_from, strategy: str, model: str, size: int, class_names: list[str]) -> None:
    """A run to start fine-tuning from must be finished and match the model, input size and classes."""
    if strategy != "finetune":
        raise TransferkitError(f"`init_from` only applies to strategy='finetune'. Received: strategy={strategy!r}")
    run = Path(init_from)
    try:
        config = json.loads((run / "config.json").read_text())
    except (OSError, ValueError) as exc:
        raise TransferkitError(f"`init_from` must be a finished run folder; cannot read {run / 'config.json'}: "
                               f"{exc}") from None
    if not (run / "model.keras").is_file():
        raise TransferkitError(f"`init_from` run {str(run)!r} has no model.keras (did it finish?).")
    got = (config.get("model"), config.get("input_size"), config.get("class_names"))
    if got != (model, size, class_names):
        raise TransferkitError(f"`init_from` run {str(run)!r} was trained with model={got[0]!r}, input_size={got[1]}, "
                               f"classes={got[2]}; this run has model={model!r}, input_size={size}, "
                               f"classes={class_names}.")


def _stage_fit_images(clf, splits: Splits, run_dir, *, stage, spec, size, batch_size, seed, n_classes, epochs,
                      patience, class_weight, quiet):
    binary = n_classes == 2
    common = dict(crop_fraction=spec.crop_fraction, resample=spec.resample, binary=binary, batch_size=batch_size)
    train_ds = make_dataset(splits.train, size, shuffle=True, seed=seed, **common)
    val_ds = make_dataset(splits.validation, size, shuffle=False, **common)
    return _fit(clf, train_ds, run_dir, stage=stage, patience=patience, validation_data=val_ds, epochs=epochs,
                class_weight=class_weight, verbose=0 if quiet else 1)


def feature_cache_dir(runs_root, spec, layer: str, size: int, weights, precision: str, index) -> Path:
    """Where cached conv-base features of one split live: a hash of everything that changes them."""
    key = json.dumps([spec.name, layer, size, weights_identity(weights), precision, backend.name(),
                      str(index.root), index.fingerprint()], sort_keys=True)
    return Path(runs_root) / ".feature-cache" / f"{spec.name}-{hashlib.sha256(key.encode()).hexdigest()[:16]}"


def _stage_fit_head_on_features(clf, base, splits: Splits, run_dir, *, runs_root, spec, size, weights, batch_size,
                                seed, n_classes, epochs, lr, optimizer, patience, class_weight, precision, quiet):

    from ..extract import extract

    layer = base.layers[-1].name
    feats = {}
    for split in ("train", "validation"):
        index = getattr(splits, split)
        cache = feature_cache_dir(runs_root, spec, layer, size, weights, precision, index)
        feats[split] = extract(index.root, cache,
                               model=spec, layers=layer, input_size=size, weights=weights, precision=precision,
                               batch_size=32, quiet=quiet, labels="inferred")
    head = clf.get_layer("head")
    compile_classifier(head, n_classes, learning_rate=lr, optimizer=optimizer)
    tr, va = feats["train"], feats["validation"]
    ytr = _align_labels(tr, splits.class_names)
    yva = _align_labels(va, splits.class_names)
    cast = "float32" if n_classes == 2 else "int32"
    return _fit(head, tr.matrix, run_dir, stage="stage1", patience=patience, y=ytr.astype(cast),
                validation_data=(va.matrix, yva.astype(cast)), epochs=epochs, batch_size=batch_size,
                class_weight=class_weight, verbose=0 if quiet else 2)


def _align_labels(fs, class_names) -> np.ndarray:
    """Labels of the extracted rows in the training class order (extraction skips unreadable files)."""
    position = {c: i for i, c in enumerate(class_names)}
    return np.array([position[p.split("/", 1)[0]] for p in fs.paths], dtype=np.int32)


def predict_index(model, index, *, size: int, batch_size: int = 32, crop_fraction=None, resample="bilinear"):
    """Class probabilities (n, n_classes) of the images of `index`, plus the skipped files."""
    from ..extract.reader import ImageReader
    from .metrics import probabilities_2d

    reader = ImageReader(index, size, batch_size=batch_size, crop_fraction=crop_fraction, resample=resample)
    positions, probs, skipped = [], [], []
    for batch in reader.iter_range(0, len(index)):
        n = len(batch.positions)
        if n:
            x = batch.images.astype("float32")
            if n < batch_size:  # one input shape for the compiled predict function
                x = np.concatenate([x, np.zeros((batch_size - n, *x.shape[1:]), "float32")])
            probs.append(probabilities_2d(np.asarray(model.predict_on_batch(x))[:n]))
            positions.append(batch.positions)
        skipped += [{"path": index.paths[i], "reason": r} for i, r in batch.errors]
    if not probs:
        return np.zeros(0, int), np.zeros((0, 0)), skipped
    return np.concatenate(positions), np.concatenate(probs), skipped


def evaluate_model(model, index, class_names, *, size=None, crop_fraction=None, resample="bilinear", out_dir=None,
                   batch_size=32) -> dict:
    """Metrics of `model` on a labelled index; with `out_dir`, also confusion.png and top_losses.png."""
    size = size or int(model.inputs[0].shape[1])
    positions, probs, skipped = predict_index(model, index, size=size, batch_size=batch_size,
                                              crop_fraction=crop_fraction, resample=resample)
    labels = index.labels[positions]
    metrics = classification_metrics(probs, labels, class_names)
    metrics["skipped"] = skipped
    if out_dir is not None:
        plot_confusion(metrics, Path(out_dir) / "confusion.png")
        plot_top_losses(probs, labels, [index.paths[i] for i in positions], index.root, class_names,
                        Path(out_dir) / "top_losses.png")
    return metrics


def read_history_csv(path) -> dict:
    """history.csv (written by Keras' CSVLogger) as a dict of lists."""
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    return {k: [float(r[k]) for r in rows if r.get(k) not in (None, "")] for k in (rows[0] if rows else {})
            if k != "epoch"}

