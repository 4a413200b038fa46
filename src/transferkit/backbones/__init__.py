"""The backbone registry: every `keras.applications` classifier plus offline EfficientNet-Lite, as data."""

from . import efficientnet_lite, keras_apps  # noqa: F401  (register their entries)
from .build import build_feature_model, build_model, layer_table
from .registry import PREPROCESSING, BackboneSpec, get_backbone, list_backbones, register_backbone

__all__ = ["BackboneSpec", "PREPROCESSING", "build_feature_model", "build_model", "get_backbone",
           "layer_table", "list_backbones", "register_backbone"]
