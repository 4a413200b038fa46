"""`TrainConfig`: every setting of a training run in one dataclass; `asdict` is the run's config.json."""

from __future__ import annotations

import dataclasses
import os
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from .. import backend
from ..backbones.build import check_input_size, normalize_weights
from ..backbones.registry import DEFAULT_MODEL, HEAD_POOLINGS, CROPS, get_backbone, with_crop
from ..errors import TransferkitError, check_one_of, check_positive_int, did_you_mean
from .model import AUGMENTATIONS, Augmentation, named_augmentation

STRATEGIES = ("features", "frozen", "finetune")
OPTIMIZERS = ("rmsprop", "adam", "adamw", "sgd")
CLASS_WEIGHTS = ("none", "balanced")
SCHEDULES = ("constant", "cosine", "onecycle")


@dataclass(frozen=True)
class HeadRecipe:
    """The optimizer and learning rates a head of one kind trains well with, when the user sets none."""

    optimizer: str
    learning_rate: float  # the head stage
    finetune_learning_rate: float  # the unfrozen stage (head and top blocks together)
    why: str


# Chosen by how the head sees the base (the registry's `head_pooling`, or --pooling). Measured with
# `python bench/defaults.py` (docs/performance.md, "Training defaults"): a flattened VGG16 map is 8,192 inputs,
# where the cats-vs-dogs tutorial's RMSprop 2e-5 works; a pooled 1,280-d vector needs 50× larger steps, the
# Adam 1e-3 of Keras' transfer-learning guide and fastai (RMSprop 2e-5 there: 32.5 % on digits after 15 epochs).
HEAD_RECIPES = {
    "flatten": HeadRecipe("rmsprop", 2e-5, 1e-5, "the cats-vs-dogs tutorial's, for a flattened map"),
    "avg": HeadRecipe("adam", 1e-3, 1e-4, "Keras' transfer-learning guide's and fastai's, for a pooled vector"),
    "max": HeadRecipe("adam", 1e-3, 1e-4, "Keras' transfer-learning guide's and fastai's, for a pooled vector"),
}


@dataclass(frozen=True)
class TrainConfig:
    """The settings of one training run (the `transferkit train` options).

    Two runs with equal (resolved) configs are the same run: that is what `--resume` checks.

    Args:
        data: folder with train/<class>/ and validation/<class>/ (or use `validation_split`), optional test/.
        model: registry backbone. input_size: default the model's. weights: "imagenet", "none" or a file.
        crop: "model" (the backbone's own centre crop, if any), "none" (resize the whole image: measured +3
            points on ELPV's 4 classes, docs/elpv.md) or a fraction in (0, 1].
        strategy: "features", "frozen" or "finetune" (see `train`).
        epochs: epochs of the head stage; `finetune_epochs` (default `epochs`) of the unfrozen stage.
        batch_size: images per step.
        learning_rate, optimizer: the head stage's; default chosen by the head (`HEAD_RECIPES`): RMSprop 2e-5
            for a flattened map (VGG, as the tutorial), Adam 1e-3 for a pooled vector (every other backbone).
        finetune_learning_rate: the unfrozen stage's; default by the head too (1e-5 flattened, 1e-4 pooled).
        augment / augmentation: image strategies' random transforms (never applied to validation data): an
            `Augmentation`, or the name of one in `AUGMENTATIONS` — "tutorial" (the default: rotation, shifts,
            shear, zoom, horizontal flip), "flip", "dihedral" (flips and 90° turns only: images without an up,
            such as solar cells) — or "none" (as `augment=False`).
        hidden, dropout: the dense head.
        layer: the base's layer the head sits on (default: the end of the convolutional base).
        pooling: how the head turns that map into a vector: "flatten", "avg" or "max" (default: the
            registry's choice per backbone — flatten for VGG as in the tutorial, avg for the others).
        patience: stop after this many epochs without a better validation score (best weights kept).
        schedule: each stage's learning rate: "constant"; "cosine" (from the stage's rate down towards 0 over
            its epochs, following the epoch number, so `--resume` continues the curve); or "onecycle" (every
            step: up from rate/25 to the rate over the first quarter of the stage, then down to rate/1e5, as
            fastai's `fit_one_cycle`; measured in ELPV fine-tuning, docs/elpv.md: no gain, not a default).
        label_smoothing: ε in [0, 1): targets move ε towards uniform (0: off).
        mixup: α > 0 blends each training example with another of its batch, λ ~ Beta(α, α) (0: off; 0.2–0.4
            are usual). Validation data is never mixed. Neither is a default: measured on ELPV, heads and
            fine-tuning (docs/elpv.md), neither gained beyond the seeds' spread.
        cutmix: α > 0 pastes a box of another image of the batch into each image, targets weighted by area
            (CutMix; 1.0 is usual). Stages on images only (feature vectors have no pixels); with `mixup` too,
            each batch takes one of the two. 0: off (measured in ELPV fine-tuning, docs/elpv.md).
        discriminative: "finetune": the top unfrozen block trains at `finetune_learning_rate`, the lowest at that
            rate / `discriminative`, the blocks between on a geometric scale (1: one rate for all; fastai uses
            about 10–100; measured with "onecycle" in ELPV fine-tuning, no gain, so 1 by default).
        gradual: "finetune": unfreeze one block more per stage (top block first) up to `unfreeze_blocks`, the
            `finetune_epochs` shared among those stages (not with `unfreeze_from`).
        class_weight: "balanced" weights classes by inverse frequency; "none".
        validation_split: without a validation/ folder, hold out this stratified, seeded fraction of train/.
        unfreeze_blocks / unfreeze_from: what "finetune" unfreezes (default: the registry's top block(s)).
        init_from: "finetune" only: a finished "features"/"frozen" run whose head (and base) start the
            unfrozen stage, which then skips the frozen stage.
        seed: data order, augmentation and initialisation.
        precision: "auto", "float32" or "bfloat16".
        folds: k: train k runs, one per stratified fold of every labelled image (train/ and validation/ pooled,
            or a plain `<class>/` folder), each validated on its held-out fold; metrics as mean ± std.
        fold: which fold (1 … folds) one of those runs holds out (set by the k-fold run for each of its runs).
        seeds: N: repeat the run with seeds `seed`, `seed`+1, … (N runs on the same split); mean ± std.

    Example:
    >>> cfg = TrainConfig("data/", model="vgg16", input_size=150, strategy="finetune")  # doctest: +SKIP
    >>> cfg.resolved().finetune_epochs  # doctest: +SKIP
    30
    """

    data: str
    model: str = DEFAULT_MODEL
    strategy: str = "features"
    input_size: int | None = None
    crop: str | float = "model"
    weights: str = "imagenet"
    epochs: int = 30
    finetune_epochs: int | None = None
    batch_size: int = 20
    learning_rate: float | None = None
    finetune_learning_rate: float | None = None
    optimizer: str | None = None
    augment: bool = True
    augmentation: Augmentation | str | None = field(default_factory=Augmentation)
    hidden: int = 256
    dropout: float = 0.5
    layer: str | None = None
    pooling: str | None = None
    patience: int | None = None
    schedule: str = "constant"
    label_smoothing: float = 0.0
    mixup: float = 0.0
    cutmix: float = 0.0
    discriminative: float = 1.0
    gradual: bool = False
    class_weight: str = "none"
    validation_split: float | None = None
    unfreeze_blocks: int | None = None
    unfreeze_from: str | None = None
    init_from: str | None = None
    seed: int = 0
    precision: str = "auto"
    folds: int | None = None
    fold: int | None = None
    seeds: int | None = None

    @classmethod
    def from_options(cls, data, options: dict, base: "TrainConfig | None" = None) -> "TrainConfig":
        """`base` (or the defaults) for the folder `data`, with keyword `options` changed; an unknown option
        is named with close matches."""
        names = [f.name for f in fields(cls)]
        for key in options:
            if key not in names or key == "data":
                raise TransferkitError(f"Unknown training option {key!r}.{did_you_mean(key, names[1:])} "
                                       f"Options: {', '.join(names[1:])}.")
        return dataclasses.replace(base, data=data, **options) if base else cls(data=data, **options)

    @classmethod
    def from_json(cls, config: dict) -> "TrainConfig":
        """The config part of a run's config.json (other keys are facts about the run)."""
        values = {f.name: config[f.name] for f in fields(cls) if f.name in config}
        if isinstance(values.get("augmentation"), dict):
            values["augmentation"] = Augmentation(**values["augmentation"])
        return cls(**values)

    def resolved(self) -> "TrainConfig":
        """Validated, with defaults filled in from the backbone and the machine (what a run actually uses)."""
        self.validate()
        spec = get_backbone(self.model)
        weights = normalize_weights(self.weights)
        size = check_input_size(spec, self.input_size, include_top=False, weights=weights)
        augmentation = (named_augmentation(self.augmentation) if isinstance(self.augmentation, str)
                        else self.augmentation or Augmentation())  # None: the default's transforms
        uses_augmentation = self.augment and self.strategy != "features" and augmentation is not None
        pooling = self.pooling or spec.head_pooling
        recipe = HEAD_RECIPES[pooling]
        return dataclasses.replace(
            self, data=str(Path(os.path.expanduser(str(self.data))).resolve()), model=spec.name, input_size=size,
            crop=self.crop if self.crop in CROPS else float(self.crop),
            weights=weights or "none", finetune_epochs=self.finetune_epochs or self.epochs,
            augmentation=augmentation if uses_augmentation else None,
            class_weight=self.class_weight or "none", pooling=pooling,
            optimizer=self.optimizer or recipe.optimizer,
            learning_rate=recipe.learning_rate if self.learning_rate is None else self.learning_rate,
            finetune_learning_rate=(recipe.finetune_learning_rate if self.finetune_learning_rate is None
                                    else self.finetune_learning_rate),
            init_from=str(Path(self.init_from).resolve()) if self.init_from is not None else None,
            precision=backend.resolve_precision(self.precision, spec.cpu_bfloat16))

    def validate(self) -> None:
        """Raise `TransferkitError` naming the first setting that cannot work."""
        check_one_of("strategy", self.strategy, STRATEGIES)
        if isinstance(self.augmentation, str):
            named_augmentation(self.augmentation)
        elif self.augmentation is not None and not isinstance(self.augmentation, Augmentation):
            raise TransferkitError(f"`augmentation` must be an Augmentation, one of {[*AUGMENTATIONS, 'none']} or "
                                   f"None. Received: augmentation={self.augmentation!r}")
        with_crop(get_backbone(self.model), self.crop)
        if self.optimizer is not None:
            check_one_of("optimizer", self.optimizer, OPTIMIZERS)
        check_one_of("schedule", self.schedule, SCHEDULES)
        check_one_of("class_weight", self.class_weight or "none", CLASS_WEIGHTS)
        if self.pooling is not None:
            check_one_of("pooling", self.pooling, HEAD_POOLINGS)
        check_one_of("precision", self.precision, backend.PRECISIONS + ("float16",))
        for arg in ("epochs", "batch_size"):
            check_positive_int(arg, getattr(self, arg))
        for arg in ("finetune_epochs", "patience", "unfreeze_blocks"):
            if getattr(self, arg) is not None:
                check_positive_int(arg, getattr(self, arg))
        if isinstance(self.hidden, bool) or not isinstance(self.hidden, int) or self.hidden < 0:
            raise TransferkitError(f"`hidden` must be an integer >= 0 (0: no hidden layer). Received: "
                                   f"hidden={self.hidden!r}")
        for arg in ("learning_rate", "finetune_learning_rate"):
            if getattr(self, arg) is not None:
                _check_number(arg, getattr(self, arg), 0, 10, "a number above 0 (typically 1e-5 to 1e-2)")
        _check_number("dropout", self.dropout, 0, 1, "a fraction from 0 to below 1", zero_ok=True)
        _check_number("label_smoothing", self.label_smoothing, 0, 1, "a fraction from 0 to below 1 (e.g. 0.1)",
                      zero_ok=True)
        _check_number("discriminative", self.discriminative, 1, 1e6, "a ratio of at least 1 (e.g. 10)",
                      zero_ok=True)
        _check_number("mixup", self.mixup, 0, 100, "the Beta distribution's α, 0 (off) or above (e.g. 0.2)",
                      zero_ok=True)
        _check_number("cutmix", self.cutmix, 0, 100, "the Beta distribution's α, 0 (off) or above (e.g. 1.0)",
                      zero_ok=True)
        if self.cutmix and self.strategy == "features":
            raise TransferkitError("`cutmix` cuts boxes out of images; the 'features' strategy trains on feature "
                                   "vectors. Use strategy 'frozen' or 'finetune', or `mixup`. "
                                   f"Received: cutmix={self.cutmix!r}, strategy='features'")
        if self.validation_split is not None:
            _check_number("validation_split", self.validation_split, 0, 1, "between 0 and 1 (e.g. 0.2)")
        if self.precision == "int8" and self.strategy != "features":
            raise TransferkitError(f"`precision='int8'` applies to extracted features only (strategy='features'). "
                                   f"Received: strategy={self.strategy!r}")
        if self.gradual and self.unfreeze_from is not None:
            raise TransferkitError("`gradual` unfreezes whole blocks one by one; it cannot start from a layer. "
                                   f"Received: gradual=True, unfreeze_from={self.unfreeze_from!r}")
        for arg in ("folds", "seeds"):
            if getattr(self, arg) is not None:
                check_positive_int(arg, getattr(self, arg))
        if self.folds is not None and self.folds < 2:
            raise TransferkitError(f"`folds` must be at least 2 (e.g. 5). Received: folds={self.folds}")
        if self.folds is not None and self.seeds is not None:
            raise TransferkitError(f"Pass `folds` or `seeds`, not both. Received: folds={self.folds}, "
                                   f"seeds={self.seeds}")
        if self.folds is not None and self.validation_split is not None:
            raise TransferkitError(f"`folds` deals every labelled image into folds; it takes no "
                                   f"`validation_split`. Received: validation_split={self.validation_split}")
        if self.fold is not None and (self.folds is None or isinstance(self.fold, bool)
                                      or not isinstance(self.fold, int) or not 1 <= self.fold <= self.folds):
            raise TransferkitError(f"`fold` must be from 1 to `folds`. Received: fold={self.fold!r}, "
                                   f"folds={self.folds!r}")
        if self.init_from is not None and self.strategy != "finetune":
            raise TransferkitError(f"`init_from` only applies to strategy='finetune'. Received: "
                                   f"strategy={self.strategy!r}")

    def to_json(self) -> dict:
        return asdict(self)

    def describe_optimizer(self, given: "TrainConfig | None" = None) -> str:
        """One line for the start of a run: the optimizer and rates of a resolved config, and whether they are
        the head's defaults or the user's (`given`: the config as the user set it)."""
        recipe = HEAD_RECIPES[self.pooling]
        chosen = given is None or (given.optimizer is None and given.learning_rate is None)
        line = f"head stage: {self.optimizer} at learning rate {self.learning_rate:g}"
        if self.strategy == "finetune":
            line += f"; unfrozen stage at {self.finetune_learning_rate:g}"
        if chosen:
            line += f" ({recipe.why}, chosen for the {self.pooling} head; --learning-rate/--optimizer to change)"
        return line


def _check_number(arg: str, value, low: float, high: float, what: str, zero_ok: bool = False) -> None:
    ok = not isinstance(value, bool) and isinstance(value, (int, float)) and (
        low <= value < high if zero_ok else low < value < high)
    if not ok:
        raise TransferkitError(f"`{arg}` must be {what}. Received: {arg}={value!r}")
