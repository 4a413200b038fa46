"""Runs that are several runs: k stratified folds, or one split with N seeds — accuracy as mean ± std."""

from __future__ import annotations

import dataclasses
import datetime as _dt
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .. import backend
from .._version import __version__
from ..backbones.build import weights_identity
from ..backbones.registry import get_backbone, with_crop
from ..files import write_json_atomic
from .config import TrainConfig
from ..data.splits import find_splits
from .report import write_report
from .run_folder import RunFolder
from .strategies import TrainResult, train_run

__all__ = ["RepeatedResult", "train"]


@dataclass
class RepeatedResult:
    """A k-fold or repeated-seed run: its folder, every run's `TrainResult`, and the summary metrics
    (`folds` or `seeds`: one entry per run; `accuracy_mean`, `accuracy_std`, `loss_mean`, `loss_std`)."""

    run_dir: Path
    runs: list[TrainResult]
    metrics: dict
    config: dict
    stages: list = field(default_factory=list)


def train(data, config: TrainConfig | None = None, *, run_dir=None, runs_root="runs", name: str | None = None,
          overwrite: bool = False, resume: bool = False, quiet: bool = True, **options):
    """Train a classifier on `DATA/train/<class>/` by transfer learning, evaluated on `DATA/validation/` — or,
    with `folds=K`, K runs on stratified folds of all labelled images, or with `seeds=N`, N runs with seeds
    `seed` … `seed`+N-1; see `train_run` for the strategies and the other arguments.

    Args:
        data: folder with train/ and validation/ (or pass `validation_split`; with `folds`, a plain `<class>/`
            folder also works).
        config: a `TrainConfig`; or pass its fields as keyword `options` (model=, strategy=, epochs=, folds=, ...).
        run_dir, runs_root, name, overwrite, resume, quiet: as for `train_run`; a repeated run keeps its runs in
            sub-folders `fold-1/` … or `seed-0/` … and resumes them one by one.

    Returns:
        A `TrainResult` for one run; a `RepeatedResult` for folds or seeds, whose metrics.json (and report.html)
        lists every run's accuracy and loss with their mean and standard deviation (sample, ddof=1).

    Example:
    >>> result = train("flowers/", strategy="features", folds=5)  # doctest: +SKIP
    >>> result.metrics["accuracy_mean"], result.metrics["accuracy_std"]  # doctest: +SKIP
    (0.912, 0.011)
    """
    cfg = TrainConfig.from_options(data, options, base=config).resolved()
    if cfg.seeds is None and (cfg.folds is None or cfg.fold is not None):
        return train_run(cfg.data, cfg, run_dir=run_dir, runs_root=runs_root, name=name, overwrite=overwrite,
                         resume=resume, quiet=quiet)
    kind = "folds" if cfg.folds is not None else "seeds"
    splits = find_splits(cfg.data, validation_split=cfg.validation_split, seed=cfg.seed, folds=cfg.folds,
                         fold=1 if cfg.folds else None)  # checks the folder (and every class against k) first
    spec = with_crop(get_backbone(cfg.model), cfg.crop)
    count = cfg.folds or cfg.seeds
    run = RunFolder.create(run_dir, runs_root=runs_root, name=name, overwrite=overwrite, resume=resume,
                           default_name=f"{spec.name}-{cfg.strategy}-{count}{kind}")
    members = _members(cfg)
    run.start(cfg, {"weights_identity": weights_identity(cfg.weights), "class_names": splits.class_names,
                    "backend": backend.name(), "input": spec.input_config(cfg.input_size).to_dict(),
                    "transferkit_version": __version__, "runs": [label for label, _ in members],
                    "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"), "skipped": []})
    results, entries, skipped = [], [], []
    for label, member in members:
        folder = run.path / label
        with run.resumable():  # Ctrl-C in a member: resume the whole set, which continues with that member
            result = train_run(cfg.data, member, run_dir=folder, resume=resume and folder.exists(), quiet=quiet,
                               runs_root=runs_root)
        results.append(result)
        m = result.metrics
        entries.append({"run": label, **({"fold": member.fold} if kind == "folds" else {"seed": member.seed}),
                        "accuracy": m["accuracy"], "loss": m["loss"], "n": m["n"], "stages": m.get("stages", [])})
        skipped += [{**s, "run": label} for s in result.config.get("skipped", [])]
    metrics = {kind: entries, **summary(entries), "n": int(sum(e["n"] for e in entries))}
    if skipped:  # unreadable images, as each run found them
        write_json_atomic(run.config_file, {**run.config(), "skipped": skipped})
    write_json_atomic(run.path / "metrics.json", metrics)
    write_report(run.path)
    return RepeatedResult(run.path, results, metrics, run.config())


def _members(cfg: TrainConfig) -> list[tuple[str, TrainConfig]]:
    """(sub-folder name, config) of every run: one per fold, or one per seed."""
    if cfg.folds is not None:
        return [(f"fold-{i}", dataclasses.replace(cfg, fold=i)) for i in range(1, cfg.folds + 1)]
    return [(f"seed-{cfg.seed + i}", dataclasses.replace(cfg, seeds=None, seed=cfg.seed + i))
            for i in range(cfg.seeds)]


def summary(entries: list[dict]) -> dict:
    """Mean and sample standard deviation (ddof=1; 0 for one run) of the runs' accuracy and loss."""
    out = {}
    for key in ("accuracy", "loss"):
        values = np.array([e[key] for e in entries], dtype=float)
        out[f"{key}_mean"] = float(values.mean())
        out[f"{key}_std"] = float(values.std(ddof=1)) if len(values) > 1 else 0.0
    return out
