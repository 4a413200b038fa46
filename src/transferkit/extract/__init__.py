"""Feature extraction as reader → extractor → writer → runner, with resumable Parquet shards."""

from .imported import save_features
from .runner import extract
from .store import FeatureSet, load_features

__all__ = ["FeatureSet", "extract", "load_features", "save_features"]
