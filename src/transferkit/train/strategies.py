"""The three transfer-learning strategies as named stages: freeze → fit head → unfreeze top blocks → fit slower."""

from __future__ import annotations

import datetime as _dt
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .. import backend, interrupts
from .._version import __version__
from ..backbones.build import weights_identity
from ..backbones.registry import BackboneSpec, get_backbone, with_crop
from ..data.input_config import InputConfig
from ..errors import TransferkitError
from ..files import atomic_path, write_json_atomic
from .config import STRATEGIES, TrainConfig
from ..data.splits import Splits, find_splits
from .data import BatchMix, array_dataset, drop_unreadable, make_dataset, targets
from .heads import compile_classifier
from .model import block_rate_factors, build_classifier, export_model, unfreeze_top
from .report import write_report
from .run_folder import RunFolder
from .use import evaluate_model

__all__ = ["STRATEGIES", "TrainResult", "train_run"]


@dataclass(repr=False)
class TrainResult:
    """What a training run produced: its folder, the Keras model, merged history and validation metrics."""

    run_dir: Path
    model: object
    history: dict
    metrics: dict
    config: dict
    stages: list = field(default_factory=list)

    def __repr__(self) -> str:
        accuracy = self.metrics.get("accuracy")
        shown = f"{accuracy:.1%}" if isinstance(accuracy, (int, float)) else "?"
        return (f"TrainResult(run_dir={str(self.run_dir)!r}, strategy={self.config.get('strategy')!r}, "
                f"model={self.config.get('model')!r}, validation accuracy {shown} of {self.metrics.get('n', '?')})")

    def _repr_html_(self) -> str:
        """What a notebook cell shows: the metrics, per-class scores, the curves and the confusion matrix."""
        from .report import run_view

        return run_view(self.run_dir, self.config, self.metrics)


@dataclass
class Job:
    """What the stages of one run share: its settings, data, folder and the model being trained."""

    cfg: TrainConfig
    spec: BackboneSpec
    splits: Splits
    run: RunFolder
    runs_root: Path
    clf: object = None  # augmentation → preprocessing → base → head
    base: object = None
    class_weight: dict | None = None
    quiet: bool = True
    stages: list = field(default_factory=list)
    feature_cache: dict = field(default_factory=dict)  # split -> folder, for the report's embedding map

    @property
    def onehot(self) -> bool:
        """Whether targets are one-hot rows: more than two classes with label smoothing or mixing."""
        return len(self.splits.class_names) > 2 and bool(self.cfg.label_smoothing or self.mix)

    @property
    def mix(self) -> BatchMix:
        """How the stages on images mix their training batches (the stages on feature vectors: without CutMix)."""
        return BatchMix(mixup=self.cfg.mixup, cutmix=self.cfg.cutmix)

    @property
    def input(self) -> InputConfig:
        """How this run turns image files into tensors (written into config.json as "input")."""
        return self.spec.input_config(self.cfg.input_size)

    def stage(self, label: str, fit, **kwargs) -> None:
        """Run the next numbered stage (restored instead when a resumed run already finished it)."""
        interrupts.check()
        number = len(self.stages) + 1
        self.stages.append(self.run.stage(number, label, self.clf, lambda: fit(self, number, **kwargs)))

    def callbacks(self, number: int, learning_rate: float, epochs: int) -> list:
        """The run folder's callbacks of stage `number`, plus the learning-rate schedule."""
        schedules = {"cosine": cosine_schedule, "onecycle": one_cycle_schedule}
        extra = [schedules[self.cfg.schedule](learning_rate, epochs)] if self.cfg.schedule in schedules else []
        return self.run.callbacks(number, patience=self.cfg.patience) + extra


# --- the strategies -------------------------------------------------------------------------------------------

def features(job: Job) -> None:
    """Extract the conv base's output once (cached), train the dense head on the arrays."""
    job.stage("features: fit head on cached features", fit_head_on_features)


def frozen(job: Job) -> None:
    """The base stays frozen (it was built so); the head trains end to end on (augmented) images."""
    augmented = ", augmented" if job.cfg.augmentation else ""
    job.stage(f"frozen: fit head, base frozen{augmented}", fit_on_images, learning_rate=job.cfg.learning_rate,
              epochs=job.cfg.epochs)


def finetune(job: Job) -> None:
    """Train the head with the base frozen (or take it from `init_from`), then unfreeze the top block(s) and
    train them with the head at the lower `finetune_learning_rate`."""
    if job.cfg.init_from:
        start_from_run(job)
    else:
        frozen(job)
    cfg = job.cfg
    blocks = cfg.unfreeze_blocks or job.spec.finetune_blocks
    # gradual unfreezing (Howard & Ruder 2018): one stage per block, each unfreezing one more, sharing the epochs
    steps = list(range(1, blocks + 1)) if cfg.gradual and cfg.unfreeze_from is None else [cfg.unfreeze_blocks]
    epochs = max(1, math.ceil(cfg.finetune_epochs / len(steps)))
    for n in steps:
        unfrozen = unfreeze_top(job.base, job.spec, blocks=n, from_layer=cfg.unfreeze_from)
        factors = block_rate_factors(job.base, job.spec, unfrozen, cfg.discriminative)
        rates = f", lowest block at rate / {cfg.discriminative:g}" if factors else ""
        job.stage(f"finetune: unfrozen {unfrozen[0]}..{unfrozen[-1]} ({len(unfrozen)} layers{rates})", fit_on_images,
                  learning_rate=cfg.finetune_learning_rate, epochs=epochs if cfg.gradual else cfg.finetune_epochs,
                  rate_factors=factors)


STRATEGY_STAGES = {"features": features, "frozen": frozen, "finetune": finetune}


# --- the stages -----------------------------------------------------------------------------------------------

def cosine_schedule(learning_rate: float, epochs: int):
    """A callback setting the rate of epoch e (0-based, as Keras counts, also after `--resume`) to
    learning_rate × (1 + cos(π e / epochs)) / 2: the full rate first, 2.5 % of it at 90 % of the epochs."""
    import keras

    class CosineEpochs(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            # set, not logged: a new history.csv column would break the appended CSV of a later stage
            self.model.optimizer.learning_rate.assign(learning_rate * (1 + math.cos(math.pi * epoch / epochs)) / 2)

    return CosineEpochs()


def one_cycle_rate(learning_rate: float, progress: float, warm_up: float = 0.25, start_div: float = 25.0,
                   final_div: float = 1e5) -> float:
    """The one-cycle rate (Smith 2018, fastai's `fit_one_cycle` defaults) at `progress` in [0, 1] of a stage:
    up from rate/25 to the rate over the first quarter (cosine-shaped), then down to rate/1e5 (cosine)."""
    if progress < warm_up:
        low, high, t = learning_rate / start_div, learning_rate, progress / warm_up
    else:
        low, high, t = learning_rate / final_div, learning_rate, 1 - (progress - warm_up) / (1 - warm_up)
    return low + (high - low) * (1 - math.cos(math.pi * t)) / 2


def one_cycle_schedule(learning_rate: float, epochs: int):
    """A callback setting every step's rate by `one_cycle_rate` of the stage's progress, which is a function of
    (epoch, step) alone, so `--resume` continues the cycle where it was."""
    import keras

    class OneCycle(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.epoch = epoch

        def on_train_batch_begin(self, batch, logs=None):
            steps = max(1, int(self.params.get("steps") or 1))
            progress = (self.epoch * steps + batch) / max(1, epochs * steps - 1)
            self.model.optimizer.learning_rate.assign(one_cycle_rate(learning_rate, min(1.0, progress)))

    return OneCycle()


def fit_on_images(job: Job, number: int, *, learning_rate: float, epochs: int, rate_factors=None) -> None:
    """`model.fit` of the whole classifier on decoded images (only its trainable layers move)."""
    cfg, n_classes = job.cfg, len(job.splits.class_names)
    compile_classifier(job.clf, n_classes, learning_rate=learning_rate, optimizer=cfg.optimizer,
                       label_smoothing=cfg.label_smoothing, onehot=job.onehot, rate_factors=rate_factors)
    common = dict(onehot=job.onehot, batch_size=cfg.batch_size)
    train_ds = make_dataset(job.splits.train, job.input, shuffle=True, seed=cfg.seed, mix=job.mix,
                            epoch=job.run.epochs_done(number), **common)
    val_ds = make_dataset(job.splits.validation, job.input, shuffle=False, **common)
    # shuffle=False: the dataset orders each epoch itself (`epoch_order`); Keras would shuffle its batches with
    # Python's global random state, which a resumed process does not share
    job.clf.fit(train_ds, validation_data=val_ds, epochs=epochs, class_weight=job.class_weight, shuffle=False,
                callbacks=job.callbacks(number, learning_rate, epochs), verbose=0 if job.quiet else 2)
    job.run.load_best(job.clf, number)


def split_features(job: Job, split: str) -> tuple[np.ndarray, np.ndarray]:
    """(features, labels) of a split: the base's output, pooled as the head pools (Flatten and "flatten" share
    the h, w, c order), extracted once and cached across runs — for exactly that split's images, or, in a k-fold
    run, for all the images the folds were dealt from (one extraction serves every fold)."""
    from ..extract.cache import cached_features

    cfg, index = job.cfg, getattr(job.splits, split)
    source = job.splits.pool or index
    fs = cached_features(job.runs_root / ".feature-cache", source, model=job.spec.name, layer=job.base.layers[-1].name,
                         pooling=cfg.pooling, input_config=job.input, weights=cfg.weights, precision=cfg.precision,
                         quiet=job.quiet)
    matrix = fs.matrix
    if job.splits.pool is None:
        job.feature_cache[split] = str(Path(fs.folder).resolve())
    else:  # the split's rows of the pool's features
        position = {p: i for i, p in enumerate(fs.paths)}
        matrix = matrix[[position[p] for p in index.paths]]
    return matrix, targets(index.labels, len(job.splits.class_names), job.onehot)


def head_trainer(job: Job):
    """The head's core as a model of its own (sharing the core's layers): it holds the optimizer, so none is saved
    inside model.keras, and it trains on cached feature vectors."""
    import keras

    core = job.clf.get_layer("head").get_layer("head_core")
    return keras.Model(core.inputs, core.outputs, name="head_trainer")


def fit_head_on_features(job: Job, number: int) -> None:
    """`model.fit` of the head alone on the base's output for exactly the images of each split."""
    cfg, n_classes = job.cfg, len(job.splits.class_names)
    arrays = {split: split_features(job, split) for split in ("train", "validation")}
    trainer = compile_classifier(head_trainer(job), n_classes, learning_rate=cfg.learning_rate,
                                 optimizer=cfg.optimizer, label_smoothing=cfg.label_smoothing, onehot=job.onehot)
    train_ds = array_dataset(*arrays["train"], batch_size=cfg.batch_size, shuffle=True, seed=cfg.seed,
                             epoch=job.run.epochs_done(number), mix=job.mix.without_cutmix())
    trainer.fit(train_ds, validation_data=arrays["validation"], epochs=cfg.epochs, class_weight=job.class_weight,
                shuffle=False, callbacks=job.callbacks(number, cfg.learning_rate, cfg.epochs),
                verbose=0 if job.quiet else 2)
    job.run.load_best(trainer, number)


def start_from_run(job: Job) -> None:
    """Stage 1 of `finetune --init-from RUN`: the head and base weights of a finished run."""
    import keras

    check_init_run(job.cfg, job.splits.class_names)
    src = keras.saving.load_model(Path(job.cfg.init_from) / "model.keras", safe_mode=True)
    job.clf.get_layer("head").set_weights(src.get_layer("head").get_weights())
    job.base.set_weights(src.get_layer(job.base.name).get_weights())
    job.stages.append({"stage": f"head and base from {job.cfg.init_from}", "first_epoch": 1, "epochs": 0,
                       "best_epoch": None, "seconds": 0.0})


def check_init_run(cfg: TrainConfig, class_names: list[str]) -> None:
    """A run to start fine-tuning from must be finished and match the model, input size and classes."""
    run = Path(cfg.init_from)
    try:
        config = RunFolder.open(run).config()
    except TransferkitError as exc:
        raise TransferkitError(f"`init_from` must be a finished run folder: {exc}") from None
    if not (run / "model.keras").is_file():
        raise TransferkitError(f"`init_from` run {str(run)!r} has no model.keras (did it finish?).")
    got = (config.get("model"), config.get("input_size"), config.get("class_names"))
    if got != (cfg.model, cfg.input_size, class_names):
        raise TransferkitError(f"`init_from` run {str(run)!r} was trained with model={got[0]!r}, input_size={got[1]}, "
                               f"classes={got[2]}; this run has model={cfg.model!r}, input_size={cfg.input_size}, "
                               f"classes={class_names}.")


def _class_weights(mode: str, labels: np.ndarray, n_classes: int) -> dict | None:
    if mode == "none":
        return None
    counts = np.bincount(labels, minlength=n_classes).astype(float)
    return {c: float(len(labels) / (n_classes * counts[c])) for c in range(n_classes) if counts[c]}


# --- the run --------------------------------------------------------------------------------------------------

def train_run(data, config: TrainConfig | None = None, *, run_dir=None, runs_root="runs", name: str | None = None,
              overwrite: bool = False, resume: bool = False, quiet: bool = True, **options) -> TrainResult:
    """One training run (`transferkit.train` also repeats it over folds or seeds): train a classifier on `DATA/train/<class>/` by transfer learning, evaluated on `DATA/validation/`.

    Strategies (the classic cats-vs-dogs tutorial's three):
      - "features": extract the conv base's output once (cached across runs), train a dense head on it.
      - "frozen": base frozen, augmentation layers inside the model, trained end to end on images.
      - "finetune": the "frozen" stage, then the top block(s) unfrozen and trained at `finetune_learning_rate`.

    Args:
        data: folder with train/ and validation/ (or pass `validation_split`), optional test/.
        config: a `TrainConfig`; or pass its fields as keyword `options` (model=, strategy=, epochs=, ...).
        run_dir: the run folder; default `runs_root/name` (name default MODEL-STRATEGY-TIMESTAMP).
        overwrite: replace an existing run folder of that name.
        resume: continue an interrupted run of the same name and settings: finished stages are restored and an
            interrupted stage continues after its last finished epoch, remembering its best epoch.
        quiet: no Keras progress output.

    Returns:
        A `TrainResult`; the run folder holds config.json, history.csv, curves.png, model.keras,
        metrics.json, confusion.png and top_losses.png.

    Example:
    >>> result = train("cats_and_dogs_small/", model="vgg16", strategy="features", input_size=150)  # doctest: +SKIP
    >>> result.metrics["accuracy"]  # doctest: +SKIP
    0.89
    """
    cfg = TrainConfig.from_options(data, options, base=config).resolved()
    spec = with_crop(get_backbone(cfg.model), cfg.crop)
    if cfg.seeds is not None or (cfg.folds is not None and cfg.fold is None):
        raise TransferkitError("train_run trains one run; pass folds/seeds to transferkit.train.")
    splits = find_splits(cfg.data, validation_split=cfg.validation_split, seed=cfg.seed, folds=cfg.folds,
                         fold=cfg.fold)
    if cfg.init_from is not None:
        check_init_run(cfg, splits.class_names)
    run = RunFolder.create(run_dir, runs_root=runs_root, name=name, default_name=f"{spec.name}-{cfg.strategy}",
                           overwrite=overwrite, resume=resume)
    with run.resumable():
        return _train_in(run, cfg, spec, splits, runs_root, resume, quiet)


def _train_in(run: RunFolder, cfg: TrainConfig, spec, splits, runs_root, resume: bool, quiet: bool) -> TrainResult:
    """The run itself, in its folder: drop unreadable files, record the config, build, train the stages, finish."""
    import keras

    splits.train, bad_train = drop_unreadable(splits.train, cfg.input_size)
    splits.validation, bad_val = drop_unreadable(splits.validation, cfg.input_size)
    run.start(cfg, {
        "weights_identity": weights_identity(cfg.weights), "class_names": splits.class_names,
        "backend": backend.name(), "input": spec.input_config(cfg.input_size).to_dict(),
        "transferkit_version": __version__, "keras_version": keras.__version__,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "counts": {"train": len(splits.train), "validation": len(splits.validation)},
        "skipped": bad_train + bad_val})
    if resume and run.finished:
        return _finished_result(run)
    keras.utils.set_random_seed(cfg.seed)
    clf, base = build_classifier(spec, len(splits.class_names), input_size=cfg.input_size, weights=cfg.weights,
                                 augmentation=cfg.augmentation, hidden=cfg.hidden, dropout=cfg.dropout,
                                 pooling=cfg.pooling, layer=cfg.layer, precision=cfg.precision, seed=cfg.seed)
    job = Job(cfg, spec, splits, run, Path(runs_root), clf, base, quiet=quiet,
              class_weight=_class_weights(cfg.class_weight, splits.train.labels, len(splits.class_names)))
    STRATEGY_STAGES[cfg.strategy](job)
    return _finish(job)


def _finish(job: Job) -> TrainResult:
    """Save the inference model, evaluate it on the validation images, draw the pictures, tidy the folder."""
    import keras

    from ..viz.plots import plot_history

    cfg, run = job.cfg, job.run
    # a float32 graph whatever precision trained it (the variables are float32 already): it loads, exports and
    # predicts the same everywhere; precision at inference is the loader's choice
    with atomic_path(run.path / "model.keras") as tmp:
        backend.as_float32(export_model(job.clf, job.base, job.spec, cfg.input_size)).save(tmp)
    model = keras.saving.load_model(run.path / "model.keras", safe_mode=True)
    metrics = evaluate_model(model, job.splits.validation, job.splits.class_names, job.input, out_dir=run.path,
                             batch_size=cfg.batch_size)
    metrics["stages"] = job.stages
    if job.feature_cache:
        metrics["feature_cache"] = job.feature_cache
    metrics["timings"] = {f"stage{i + 1}_s": st["seconds"] for i, st in enumerate(job.stages)}
    metrics["images_per_second"] = {f"stage{i + 1}": round(len(job.splits.train) * st["epochs"] / st["seconds"], 1)
                                    for i, st in enumerate(job.stages) if st["epochs"] and st["seconds"]}
    history = run.history()  # every epoch, also those of an interrupted run
    plot_history(history, run.path / "curves.png", title=f"{cfg.model} {cfg.strategy}")
    write_json_atomic(run.path / "metrics.json", metrics)  # marks the run finished (with model.keras)
    return _finished_result(run, model)


def _finished_result(run: RunFolder, model=None) -> TrainResult:
    """The result of a finished run; the report and the tidy-up, if a kill interrupted them, are done now."""
    import keras

    metrics = run.metrics()
    model = model or keras.saving.load_model(run.path / "model.keras", safe_mode=True)
    if not (run.path / "report.html").is_file() or any(run.path.glob(".stage*")):
        write_report(run.path)
        run.clean_up()
    return TrainResult(run.path, model, run.history(), metrics, run.config(),
                       metrics.get("stages", []))
