"""Labelling a pool of images with the model in the loop: selection strategies, the answers on disk, a local page,
and a simulation that measures the strategies."""

from .run import features_folder, given_labels, open_session, pool_features
from .select import STRATEGIES
from .session import LabelSession
from .simulation import Simulation, read_truth, simulate, write_simulation
from .store import AnswerStore, journal_path

__all__ = ["STRATEGIES", "AnswerStore", "LabelSession", "Simulation", "features_folder", "given_labels",
           "journal_path", "open_session", "pool_features", "read_truth", "simulate", "write_simulation"]
