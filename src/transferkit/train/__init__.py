"""Transfer learning: heads, the three strategies as named stages, run folders, prediction and evaluation."""

from .config import TrainConfig
from .heads import build_head, fit_head
from .lr_find import LRFinderResult, lr_find
from .model import Augmentation
from .run_folder import read_history_csv
from .repeat import RepeatedResult, train
from .strategies import STRATEGIES, TrainResult, train_run
from .use import evaluate, load_run, predict

__all__ = ["Augmentation", "LRFinderResult", "RepeatedResult", "STRATEGIES", "TrainConfig", "TrainResult", "build_head", "evaluate",
           "fit_head", "load_run", "lr_find", "predict", "read_history_csv", "train", "train_run"]
