"""The learning-rate finder (fastai's `lr_find`): an exponential sweep of the learning rate over a few hundred
steps of the head stage (or of a run's unfrozen stage), stopped when the loss diverges, with a suggested rate."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..backbones.registry import get_backbone, with_crop
from .. import interrupts
from ..errors import TransferkitError, check_positive_int
from .config import TrainConfig
from ..data.splits import find_splits
from .data import array_dataset, drop_unreadable, make_dataset
from .heads import compile_classifier
from .model import build_classifier, unfreeze_top
from .strategies import Job, head_trainer, split_features, start_from_run

SMOOTHING = 0.98  # of the loss curve: an exponential moving average, bias-corrected (as fastai's recorder)
DIVERGED = 4.0  # the sweep stops once the smoothed loss exceeds this many times its minimum


@dataclass(repr=False)
class LRFinderResult:
    """The sweep: learning rates, raw and smoothed losses per step, and the suggested rate (the "valley")."""

    learning_rates: list[float]
    losses: list[float]
    smoothed: list[float]
    suggestion: float
    stage: str
    plot: Path | None = None
    stopped_early: bool = False
    config: dict = field(default_factory=dict)

    def __repr__(self) -> str:
        return f"LRFinderResult({self.summary()})"

    def _repr_html_(self) -> str:
        """What a notebook cell shows: the plot of loss against learning rate and the suggested rate."""
        from ..templates import png_data_url, render_template

        return render_template("nb_lr_find.html", summary=self.summary(),
                               plot=png_data_url(self.plot) if self.plot else "")

    def summary(self) -> str:
        end = "stopped when the loss diverged" if self.stopped_early else "swept to the end"
        return (f"{self.stage}: {len(self.losses)} steps from {self.learning_rates[0]:.1e} to "
                f"{self.learning_rates[-1]:.1e} ({end}); suggested learning rate: {self.suggestion:.2e}")


def sweep_rates(start: float, end: float, steps: int) -> np.ndarray:
    """`steps` learning rates growing exponentially from `start` to `end`."""
    return start * (end / start) ** (np.arange(steps) / max(1, steps - 1))


def smooth(losses, beta: float = SMOOTHING) -> list[float]:
    """Bias-corrected exponential moving average of a loss curve."""
    out, avg = [], 0.0
    for i, loss in enumerate(losses, 1):
        avg = beta * avg + (1 - beta) * float(loss)
        out.append(avg / (1 - beta ** i))
    return out


def valley(learning_rates, smoothed) -> float:
    """The suggested rate: within the longest stretch over which the loss keeps falling (the longest decreasing
    run of points, gaps allowed), a point two thirds of the way down — steep descent, well before the minimum.
    This is the rule fastai's `lr_find` suggests by default ("valley")."""
    n = len(smoothed)
    if n < 3:
        return float(learning_rates[0])
    length, start = [1] * n, list(range(n))
    for i in range(1, n):
        for j in range(i):
            if smoothed[i] < smoothed[j] and length[j] + 1 > length[i]:
                length[i], start[i] = length[j] + 1, start[j]
    end = max(range(n), key=lambda i: (length[i], -i))
    first = start[end]
    pick = first + (end - first) * 2 // 3
    return float(learning_rates[pick])


def _sweep(model, batches, rates) -> tuple[list[float], bool]:
    """One training step per rate, over the batches (epoch after epoch); the losses, and whether the loss
    diverged (not finite, or `DIVERGED` × its smoothed best) before the last rate."""
    losses: list[float] = []
    best = math.inf
    with interrupts.deferred():  # Ctrl-C between steps, never inside AutoGraph's conversion of the step
        for step, rate in enumerate(rates):
            epoch, i = divmod(step, len(batches))
            if i == 0 and epoch:
                batches.on_epoch_end()
            x, y = batches[i]
            model.optimizer.learning_rate.assign(float(rate))
            loss = float(model.train_on_batch(x, y, return_dict=True)["loss"])
            interrupts.check()
            losses.append(loss)
            smoothed = smooth(losses)[-1]
            best = min(best, smoothed)
            if not math.isfinite(loss) or (step > 10 and smoothed > DIVERGED * best):
                return losses, True
    return losses, False


def lr_find(data, config=None, *, init_from=None, start: float = 1e-7, end: float = 10.0, steps: int = 200,
            out=None, runs_root="runs", quiet: bool = True, **options) -> LRFinderResult:
    """fastai's learning-rate finder: train on `steps` batches while the rate grows exponentially from `start`
    to `end`, stop when the loss diverges, and suggest a rate (the "valley" of the smoothed loss curve).

    Without `init_from` it sweeps the head stage, on the conv base's cached features (the same cache `train`
    uses, so it costs one extraction at most). With `init_from` (a finished `features` or `frozen` run) it sweeps
    that run's unfrozen stage: the head and top blocks on images, as `finetune --init-from` trains them. Nothing
    is saved; the models are thrown away.

    Args:
        data: the training folder, as for `train`.
        config / options: a `TrainConfig` or its fields (model=, batch_size=, optimizer=, unfreeze_blocks=, ...).
        init_from: a finished run whose unfrozen stage to sweep.
        start, end, steps: the sweep.
        out: a PNG of loss against learning rate (log scale), the suggestion marked.

    Returns:
        An `LRFinderResult` (`.suggestion`, `.summary()`).

    Example:
    >>> result = lr_find("data/", model="efficientnet_lite0", out="lr.png")  # doctest: +SKIP
    >>> result.suggestion  # doctest: +SKIP
    0.0021
    """
    import keras

    steps = check_positive_int("steps", steps)
    if not (isinstance(start, (int, float)) and isinstance(end, (int, float)) and 0 < start < end):
        raise TransferkitError(f"The sweep needs 0 < start < end. Received: start={start!r}, end={end!r}")
    if init_from is not None:
        options = {**options, "strategy": "finetune", "init_from": init_from}
    cfg = TrainConfig.from_options(data, options, base=config).resolved()
    spec = with_crop(get_backbone(cfg.model), cfg.crop)
    splits = find_splits(cfg.data, validation_split=cfg.validation_split, seed=cfg.seed)
    splits.train, _ = drop_unreadable(splits.train, cfg.input_size)
    n_classes = len(splits.class_names)
    keras.utils.set_random_seed(cfg.seed)
    clf, base = build_classifier(spec, n_classes, input_size=cfg.input_size, weights=cfg.weights,
                                 augmentation=cfg.augmentation if init_from is not None else None, hidden=cfg.hidden,
                                 dropout=cfg.dropout, pooling=cfg.pooling, layer=cfg.layer, precision=cfg.precision,
                                 seed=cfg.seed)
    job = Job(cfg, spec, splits, None, Path(runs_root), clf, base, quiet=quiet)
    if init_from is None:
        stage = f"head stage ({cfg.optimizer}, batch {cfg.batch_size}, on cached features)"
        model = head_trainer(job)
        batches = array_dataset(*split_features(job, "train"), batch_size=cfg.batch_size, shuffle=True,
                                seed=cfg.seed, mix=job.mix.without_cutmix())
    else:
        start_from_run(job)
        unfrozen = unfreeze_top(base, spec, blocks=cfg.unfreeze_blocks, from_layer=cfg.unfreeze_from)
        stage = (f"unfrozen stage of {Path(init_from).name} ({cfg.optimizer}, batch {cfg.batch_size}, "
                 f"{len(unfrozen)} layers from {unfrozen[0]})")
        model = clf
        batches = make_dataset(splits.train, job.input, batch_size=cfg.batch_size, shuffle=True, seed=cfg.seed,
                               onehot=job.onehot, mix=job.mix)
    compile_classifier(model, n_classes, learning_rate=start, optimizer=cfg.optimizer,
                       label_smoothing=cfg.label_smoothing, onehot=job.onehot)
    rates = sweep_rates(start, end, steps)
    losses, stopped = _sweep(model, batches, rates)
    shown = smooth(losses)
    if not math.isfinite(shown[-1]):
        shown, losses = shown[:-1], losses[:-1]
    used = [float(r) for r in rates[:len(losses)]]
    if len(losses) < 3:
        raise TransferkitError(f"The loss diverged within {len(losses)} steps of the sweep; start lower "
                               f"(--start {start / 100:g}).")
    result = LRFinderResult(used, losses, shown, valley(used, shown), stage, stopped_early=stopped,
                            config=cfg.to_json())
    if out is not None:
        from ..viz.plots import plot_lr_find

        result.plot = plot_lr_find(used, losses, shown, result.suggestion, out, title=f"{cfg.model}: {stage}")
    return result
