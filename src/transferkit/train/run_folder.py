"""A run folder: config.json, history.csv, the best epoch of each stage, and what `--resume` needs to continue."""

from __future__ import annotations

import csv
import datetime as _dt
import functools
import json
import shutil
import time
from pathlib import Path

from ..errors import TransferkitError, settings_diff
from .config import TrainConfig

# Facts about a run that must match for --resume besides the config (the classes found, the backend).
IDENTITY = ("class_names", "backend", "weights_identity")


def read_history_csv(path) -> dict:
    """history.csv (written by Keras' CSVLogger) as a dict of lists."""
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    return {k: [float(r[k]) for r in rows if r.get(k) not in (None, "")] for k in (rows[0] if rows else {})
            if k != "epoch"}


def _better(score: list[float], best: list[float] | None) -> bool:
    return best is None or score > best


@functools.cache
def _best_epoch_class():
    import keras

    class BestEpoch(keras.callbacks.Callback):
        """Keeps the best epoch's weights: highest validation accuracy, lower validation loss breaking ties.

        With `patience`, stops after that many epochs without a better one. The best score, its epoch and the
        epochs waited are written to `state_path` after every epoch, so a resumed run continues the comparison
        (a restarted Keras `ModelCheckpoint`/`EarlyStopping` would forget the best score).
        """

        def __init__(self, weights_path: Path, state_path: Path, patience: int | None, first_epoch: int):
            super().__init__()
            self.weights_path, self.state_path = Path(weights_path), Path(state_path)
            self.patience, self.first_epoch = patience, first_epoch

        def on_train_begin(self, logs=None):
            state = json.loads(self.state_path.read_text()) if self.state_path.exists() else {}
            self.state = state
            self.best = state.get("score")
            self.best_epoch = state.get("best_epoch")
            self.wait = state.get("wait", 0)

        def on_epoch_end(self, epoch, logs=None):
            logs = logs or {}
            score = [float(logs.get("val_accuracy", 0.0)), -float(logs.get("val_loss", 0.0))]
            if _better(score, self.best):
                self.model.save_weights(self.weights_path)
                self.best, self.best_epoch, self.wait = score, self.first_epoch + epoch, 0
            else:
                self.wait += 1
            self.state.update(score=self.best, best_epoch=self.best_epoch, wait=self.wait)
            self.state_path.write_text(json.dumps(self.state))
            if self.patience and self.wait >= self.patience:
                self.model.stop_training = True

    return BestEpoch


def best_epoch_callback(weights_path, state_path, *, patience: int | None = None, first_epoch: int = 1):
    """A Keras callback keeping the best epoch's weights in `weights_path` (see `BestEpoch`).

    Example:
    >>> cb = best_epoch_callback("best.weights.h5", "best.json", patience=5)  # doctest: +SKIP
    >>> model.fit(x, y, validation_data=(xv, yv), callbacks=[cb])  # doctest: +SKIP
    """
    return _best_epoch_class()(weights_path, state_path, patience, first_epoch)


class RunFolder:
    """One run's folder. Finished stages leave `.stageN.weights.h5` + `.stageN.json` until the run completes,
    so `--resume` restores them instead of training them again; an interrupted stage continues after its last
    finished epoch (Keras `BackupAndRestore`) with its best score remembered."""

    def __init__(self, path):
        self.path = Path(path)

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
        self.config_file.write_text(json.dumps({**config.to_json(), **facts}, indent=1) + "\n")

    def stage(self, number: int, label: str, model, run) -> dict:
        """Run stage `number` (`run()` trains `model`), or restore `model`'s weights when an earlier,
        interrupted run of this folder finished that stage. Returns the stage's record."""
        done, state = self.path / f".stage{number}.weights.h5", self._state_file(number)
        info = json.loads(state.read_text()) if state.exists() else {}
        if done.exists() and info.get("done"):
            model.load_weights(done)
            return info["record"]
        if "first_epoch" not in info:
            info["first_epoch"] = self.epochs_logged() + 1
            state.write_text(json.dumps(info))
        started = time.perf_counter()
        run()
        info = json.loads(state.read_text())
        record = {"stage": label, "first_epoch": info["first_epoch"],
                  "epochs": self.epochs_logged() - info["first_epoch"] + 1, "best_epoch": info.get("best_epoch"),
                  "seconds": round(time.perf_counter() - started, 3)}
        model.save_weights(done)
        state.write_text(json.dumps({**info, "done": True, "record": record}))
        return record

    def callbacks(self, number: int, *, patience: int | None) -> list:
        """Keras callbacks of stage `number`: resumable epochs, history.csv, the best epoch's weights."""
        import keras

        info = json.loads(self._state_file(number).read_text())
        return [keras.callbacks.BackupAndRestore(str(self.path / ".backup" / f"stage{number}"),
                                                 delete_checkpoint=True),
                keras.callbacks.CSVLogger(str(self.path / "history.csv"), append=True),
                best_epoch_callback(self._best_weights(number), self._state_file(number), patience=patience,
                                    first_epoch=info["first_epoch"])]

    def load_best(self, model, number: int) -> None:
        """Give `model` the weights of stage `number`'s best epoch."""
        best = self._best_weights(number)
        if best.exists():
            model.load_weights(best)
            best.unlink()

    def epochs_logged(self) -> int:
        history = self.path / "history.csv"
        if not history.exists():
            return 0
        with open(history, newline="") as f:
            return max(0, sum(1 for _ in f) - 1)

    def history(self) -> dict:
        history = self.path / "history.csv"
        return read_history_csv(history) if history.exists() else {}

    def clean_up(self) -> None:
        """Remove what only an unfinished run needs (stage markers, epoch backups)."""
        for marker in self.path.glob(".stage*"):
            marker.unlink()
        for best in self.path.glob(".best-*"):
            best.unlink()
        shutil.rmtree(self.path / ".backup", ignore_errors=True)

    def _state_file(self, number: int) -> Path:
        return self.path / f".stage{number}.json"

    def _best_weights(self, number: int) -> Path:
        return self.path / f".best-stage{number}.weights.h5"
