"""Feature extraction as reader → extractor → writer → runner, with resumable Parquet shards."""

from .runner import extract
from .store import FeatureSet, load_features

__all__ = ["FeatureSet", "extract", "load_features"]
