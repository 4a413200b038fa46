"""Transfer learning: heads, the three strategies as named stages, run folders, prediction and evaluation."""

from .heads import build_head, fit_head
from .model import Augmentation
from .runner import STRATEGIES, TrainResult, train
from .use import evaluate, load_run, predict

__all__ = ["Augmentation", "STRATEGIES", "TrainResult", "build_head", "evaluate", "fit_head", "load_run",
           "predict", "train"]
