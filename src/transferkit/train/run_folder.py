"""A run folder: config.json, history.csv, the best epoch of each stage, and what `--resume` needs to continue."""

from __future__ import annotations

import contextlib
import copy
import csv
import datetime as _dt
import functools
import json
import shutil
import time
from pathlib import Path

from .. import interrupts
from ..data.input_config import InputConfig
from ..errors import Interrupted, TransferkitError, settings_diff
from ..files import atomic_open, atomic_path, write_json_atomic
from .config import TrainConfig

# Facts about a run that must match for --resume besides the config (the classes found, the backend).
IDENTITY = ("class_names", "backend", "weights_identity")


def read_history_csv(path) -> dict:
    """history.csv as a dict of lists (one column per metric, the epoch column left out)."""
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    return {k: [float(r[k]) for r in rows if r.get(k) not in (None, "")] for k in (rows[0] if rows else {})
            if k != "epoch"}


def _better(score: list[float], best: list[float] | None) -> bool:
    return best is None or score > best


def _seed_states(model) -> list:
    """The random-number states of the model's layers (dropout, augmentation): Keras does not save them with the
    weights, so a resumed epoch would draw other random numbers than the uninterrupted one."""
    return [v for v in model.non_trainable_variables if v.path.endswith("seed_generator_state")]


def run_input_config(config: dict, source="config.json") -> InputConfig:
    """The `InputConfig` a run was trained with, from its config.json (runs before 0.2 kept its parts as
    separate keys; those are read too)."""
    if "input" in config:
        return InputConfig.from_dict(config["input"], source=str(source))
    try:
        if "resample" not in config:  # what runs before 0.2 recorded beside input_size
            raise KeyError("input")
        return InputConfig(config["input_size"], config.get("crop_fraction"), config.get("resample", "bilinear"),
                           config.get("preprocessing", "none"))
    except (KeyError, TransferkitError):
        raise TransferkitError(f"{source} is damaged: it records no input configuration ('input'). Train the "
                               "run again.") from None



@functools.cache
def _checkpoint_class():
    import keras
    import numpy as np

    class EpochCheckpoint(keras.callbacks.Callback):
        """The one commit point of a stage's progress: after every epoch, the model's weights and optimizer state,
        the random-number states, the epoch's metrics and the best epoch so far (highest validation accuracy,
        lower validation loss breaking ties) become the stage's state with one atomic write of `state_path`.

        A killed process resumes from the last committed epoch — as if it had not been killed: the same weights,
        optimizer moments, random draws and data order — and history.csv and the best epoch agree with it
        (Keras' `BackupAndRestore`, `CSVLogger` and `ModelCheckpoint` each write their own file in place, so a
        kill between or during them leaves them disagreeing or damaged). With `patience`, training stops after
        that many epochs without a better one, counted across restarts.
        """

        def __init__(self, folder: Path, number: int, patience: int | None, first_epoch: int, on_commit=None):
            super().__init__()
            self.folder, self.number = Path(folder), number
            self.state_path = self.folder / f".stage{number}.json"
            self.patience, self.first_epoch, self.on_commit = patience, first_epoch, on_commit

        def on_train_begin(self, logs=None):
            self.state = json.loads(self.state_path.read_text()) if self.state_path.exists() else {}
            self.rows = list(self.state.get("rows", []))
            self.best, self.best_epoch = self.state.get("score"), self.state.get("best_epoch")
            self.wait = self.state.get("wait", 0)
            backup = self.state.get("backup")
            if backup and (self.folder / backup).exists():
                optimizer = getattr(self.model, "optimizer", None)
                if optimizer is not None and not optimizer.built:
                    optimizer.build(self.model.trainable_variables)
                self.model.load_weights(self.folder / backup)
                for variable, value in zip(_seed_states(self.model), self.state.get("seeds", [])):
                    variable.assign(np.asarray(value, dtype=variable.dtype))
                self.model._initial_epoch = len(self.rows)  # what BackupAndRestore sets: fit continues there
            if self.on_commit:
                self.on_commit()

        def on_epoch_end(self, epoch, logs=None):
            logs = {k: float(v) for k, v in (logs or {}).items()}
            run_epoch = self.first_epoch + epoch  # 1-based over the whole run
            score = [logs.get("val_accuracy", 0.0), -logs.get("val_loss", 0.0)]
            if _better(score, self.best):  # one file is this epoch's best weights and its backup
                backup = f".best-stage{self.number}-e{run_epoch}.weights.h5"
                self.best, self.best_epoch, self.wait = score, run_epoch, 0
                self.state["best_file"] = backup
            else:
                backup = f".backup-stage{self.number}-e{run_epoch}.weights.h5"
                self.wait += 1
            with atomic_path(self.folder / backup) as tmp:
                self.model.save_weights(tmp)  # weights and optimizer state
            self.rows.append({"epoch": run_epoch - 1, **logs})
            self.state.update(rows=self.rows, score=self.best, best_epoch=self.best_epoch, wait=self.wait,
                              backup=backup, seeds=[np.asarray(v.numpy()).tolist() for v in _seed_states(self.model)])
            write_json_atomic(self.state_path, self.state)  # the commit
            keep = {self.state_path.name, backup, self.state.get("best_file")}
            for stale in [*self.folder.glob(f".backup-stage{self.number}-*"), *self.folder.glob(
                    f".best-stage{self.number}-*")]:
                if stale.name not in keep:
                    stale.unlink(missing_ok=True)
            if self.on_commit:
                self.on_commit()
            if self.patience and self.wait >= self.patience:
                self.model.stop_training = True

    return EpochCheckpoint


@functools.cache
def _safe_interrupt_class():
    import keras

    class SafeInterrupt(keras.callbacks.Callback):
        """Stops `fit` on a Ctrl-C that arrived inside `interrupts.deferred()`: the model's `stop_training` is set
        at once, so the current batch is the last, and the KeyboardInterrupt is raised where validation would
        begin or the epoch end — before the epoch checkpoint (after this callback in the list) commits the
        unfinished epoch. No batch hook: Keras keeps dispatching batch ends without waiting for each loss."""

        def on_train_begin(self, logs=None):
            self.stop = lambda: setattr(self.model, "stop_training", True)
            interrupts.add_action(self.stop)
            interrupts.check()

        def on_train_end(self, logs=None):
            interrupts.remove_action(self.stop)

        def on_test_begin(self, logs=None):
            if interrupts.requested():
                interrupts.remove_action(self.stop)
                interrupts.check()

        def on_epoch_end(self, epoch, logs=None):
            self.on_test_begin(logs)

    return SafeInterrupt


def epoch_checkpoint(folder, number: int = 1, *, patience: int | None = None, first_epoch: int = 1, on_commit=None):
    """A Keras callback that commits a stage's progress after every epoch (see `EpochCheckpoint`) into
    `folder/.stage{number}.json` and files beside it; `on_commit` runs after each commit and at the start.

    Example:
    >>> cb = epoch_checkpoint("runs/r", patience=5)  # doctest: +SKIP
    >>> model.fit(x, y, validation_data=(xv, yv), callbacks=[cb])  # doctest: +SKIP
    """
    return _checkpoint_class()(folder, number, patience, first_epoch, on_commit)


class RunFolder:
    """One run's folder. Finished stages leave `.stageN.weights.h5` + `.stageN.json` until the run completes,
    so `--resume` restores them instead of training them again; an interrupted stage continues after its last
    committed epoch (`EpochCheckpoint`) with its best score, random states and data order as they were."""

    def __init__(self, path):
        self.path = Path(path)
        self._read_cache: dict[Path, tuple] = {}

    @classmethod
    def create(cls, run_dir=None, *, runs_root="runs", name: str | None = None, default_name: str = "run",
               overwrite: bool = False, resume: bool = False) -> "RunFolder":
        """Make a new run folder, or open an existing one to resume; an existing folder is never replaced
        silently."""
        if run_dir is None:
            if resume and not name:
                raise TransferkitError("`resume` needs the run's --name (or run_dir) to find it.")
            stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
            run_dir = Path(runs_root) / (name or f"{default_name}-{stamp}")
        run_dir = Path(run_dir)
        if resume and run_dir.exists():
            return cls(run_dir)
        if run_dir.exists() and any(run_dir.iterdir()):
            if not overwrite:
                raise TransferkitError(f"The run folder {str(run_dir)!r} already exists. Choose another "
                                       "--name/--run-dir, pass --resume to continue it, or --overwrite to replace it.")
            shutil.rmtree(run_dir)
        try:
            run_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise TransferkitError(f"Cannot create the run folder {str(run_dir)!r}: {exc.strerror or exc}.") from None
        return cls(run_dir)

    @contextlib.contextmanager
    def resumable(self):
        """Turn Ctrl-C inside (also a member run's `Interrupted`) into `Interrupted` carrying the options that
        resume this run. Inside, Ctrl-C stops at the next safe point (`interrupts.check()`: a batch end, an
        extracted batch, a stage's start), where TensorFlow cannot lose it."""
        try:
            with interrupts.deferred():
                yield self
        except KeyboardInterrupt:
            raise Interrupted(["--name", self.path.name, "--runs", str(self.path.parent), "--resume"]) from None

    @property
    def config_file(self) -> Path:
        return self.path / "config.json"

    @property
    def finished(self) -> bool:
        return (self.path / "metrics.json").is_file() and (self.path / "model.keras").is_file()

    def start(self, config: TrainConfig, facts: dict) -> None:
        """Write config.json (the config plus facts about the data and software), or, when resuming, check
        that the saved one describes the same run."""
        if self.config_file.exists():
            try:
                old = json.loads(self.config_file.read_text())
            except ValueError as exc:
                raise TransferkitError(f"{self.config_file} is not valid JSON ({exc}); cannot resume.") from None
            diff = settings_diff(TrainConfig.from_json(old).to_json(), config.to_json())
            diff += settings_diff({k: old.get(k) for k in IDENTITY}, {k: facts.get(k) for k in IDENTITY})
            if diff:
                raise TransferkitError(f"Cannot resume {str(self.path)!r}: its settings differ ({'; '.join(diff)}). "
                                       "Use the same settings, another --name, or --overwrite.")
            return
        write_json_atomic(self.config_file, {**config.to_json(), **facts})

    def stage(self, number: int, label: str, model, run) -> dict:
        """Run stage `number` (`run()` trains `model`), or restore `model`'s weights when an earlier,
        interrupted run of this folder finished that stage. Returns the stage's record."""
        done, state = self.path / f".stage{number}.weights.h5", self._state_file(number)
        info = self._read_state(number)
        if done.exists() and info.get("done"):
            model.load_weights(done)
            return info["record"]
        if "first_epoch" not in info:
            info["first_epoch"] = 1 + sum(len(self._read_state(k).get("rows", [])) for k in range(1, number))
            write_json_atomic(state, info)
        started = time.perf_counter()
        run()
        info = self._read_state(number)
        record = {"stage": label, "first_epoch": info["first_epoch"], "epochs": len(info.get("rows", [])),
                  "best_epoch": info.get("best_epoch"), "seconds": round(time.perf_counter() - started, 3)}
        with atomic_path(done) as tmp:
            model.save_weights(tmp)
        write_json_atomic(state, {**info, "done": True, "record": record})
        return record

    def callbacks(self, number: int, *, patience: int | None) -> list:
        """Keras callbacks of stage `number`: the stop on Ctrl-C after the current batch (inside `resumable()`),
        then the epoch checkpoint, which also keeps history.csv up to date."""
        return [_safe_interrupt_class()(),
                epoch_checkpoint(self.path, number, patience=patience,
                                 first_epoch=self._read_state(number)["first_epoch"], on_commit=self.write_history)]

    def epochs_done(self, number: int) -> int:
        """Epochs stage `number` has committed (where a resumed stage continues)."""
        return len(self._read_state(number).get("rows", []))

    def load_best(self, model, number: int) -> None:
        """Give `model` the weights of stage `number`'s best epoch."""
        best = self._read_state(number).get("best_file")
        if best and (self.path / best).exists():
            model.load_weights(self.path / best)

    def write_history(self) -> None:
        """history.csv from the committed epochs of every stage (one row per epoch, numbered over the run)."""
        rows = [r for k in self._stage_numbers() for r in self._read_state(k).get("rows", [])]
        if not rows:
            return
        columns = ["epoch"] + sorted({key for r in rows for key in r} - {"epoch"})
        with atomic_open(self.path / "history.csv", newline="") as f:
            writer = csv.DictWriter(f, columns, restval="")
            writer.writeheader()
            writer.writerows(rows)

    def history(self) -> dict:
        history = self.path / "history.csv"
        return read_history_csv(history) if history.exists() else {}

    def clean_up(self) -> None:
        """Remove what only an unfinished run needs (stage states, epoch backups, best-epoch weights)."""
        for marker in [*self.path.glob(".stage*"), *self.path.glob(".best-*"), *self.path.glob(".backup-*"),
                       *self.path.glob(".*.tmp-*")]:  # the last: temporary files of writes a kill interrupted
            marker.unlink(missing_ok=True)
        shutil.rmtree(self.path / ".backup", ignore_errors=True)

    # --- reading a run folder: the one place config.json and metrics.json are parsed --------------------------

    @classmethod
    def open(cls, path) -> "RunFolder":
        """An existing run folder, to read (`config()`, `metrics()`, `input_config()`, `validation_index()`,
        `members()`); each file is checked as it is read, with one line naming it when it is damaged.

        Example:
        >>> run = RunFolder.open("runs/lite0-features")  # doctest: +SKIP
        >>> run.config()["class_names"], run.metrics()["accuracy"]  # doctest: +SKIP
        (['cat', 'dog'], 0.91)
        """
        folder = cls(path)
        if not folder.path.is_dir():
            raise TransferkitError(f"{str(folder.path)!r} is not a run folder (no such folder); pass a folder "
                                   "`transferkit train` wrote.")
        return folder

    def config(self) -> dict:
        """config.json: the settings, the classes found and facts about the data and software."""
        config = self._read_json(self.config_file, "config.json")
        names = config.get("class_names")
        if not (isinstance(names, list) and all(isinstance(n, str) for n in names)):
            raise TransferkitError(f"{self.config_file} is damaged: 'class_names' must be a list of strings.")
        return config

    def metrics(self) -> dict:
        """metrics.json: what the finished run measured on its validation images."""
        return self._read_json(self.path / "metrics.json", "metrics.json")

    def input_config(self) -> InputConfig:
        """How the run turned image files into tensors (config.json's "input")."""
        return run_input_config(self.config(), self.config_file)

    def validation_index(self):
        """The run's validation images, re-derived from its settings; None when they are gone."""
        from ..data.splits import run_validation_index

        return run_validation_index(self.config())

    def members(self) -> list["RunFolder"]:
        """The finished runs inside a k-fold or multi-seed run (`fold-1/` …, `seed-0/` …), in order."""
        def number(p: Path) -> int:
            tail = p.name.split("-", 1)[1]
            return int(tail) if tail.isdigit() else -1

        found = [p for kind in ("fold-*", "seed-*") for p in sorted(self.path.glob(kind), key=number)]
        return [RunFolder(p) for p in found if (p / "model.keras").is_file()]

    def _read_json(self, path: Path, name: str) -> dict:
        """The file's object, read once per version of the file (a copy each time, so callers may change it)."""
        if not path.is_file():
            raise TransferkitError(f"{str(self.path)!r} is not a finished run folder: it has no {name} (train it to "
                                   "the end, or pass another folder).")
        stat = path.stat()
        version = (stat.st_mtime_ns, stat.st_size, stat.st_ino)
        cached = self._read_cache.get(path)
        if cached is not None and cached[0] == version:
            return copy.deepcopy(cached[1])
        try:
            value = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise TransferkitError(f"{path} is damaged: it is not valid JSON ({exc}). Train the run again or "
                                   "restore the file.") from None
        if not isinstance(value, dict):
            raise TransferkitError(f"{path} is damaged: it holds a JSON {type(value).__name__}, not an object.")
        self._read_cache[path] = (version, value)
        return copy.deepcopy(value)

    def _read_state(self, number: int) -> dict:
        state = self._state_file(number)
        try:
            return json.loads(state.read_text()) if state.exists() else {}
        except ValueError:  # never half-written (atomic), so this is damage from outside
            raise TransferkitError(f"{state} is damaged; cannot resume. Use --overwrite to train again.") from None

    def _stage_numbers(self) -> list[int]:
        return sorted(int(p.name[6:-5]) for p in self.path.glob(".stage*.json") if p.name[6:-5].isdigit())

    def _state_file(self, number: int) -> Path:
        return self.path / f".stage{number}.json"
