"""transferkit: reuse pretrained ImageNet CNNs on your own images — features, transfer learning, pictures."""

from .backend import ensure_default_backend as _ensure_default_backend

_ensure_default_backend()

from ._version import __version__  # noqa: E402

from .backbones import BackboneSpec, build_feature_model, get_backbone, list_backbones, register_backbone  # noqa: E402
from .data import index_images, load_image  # noqa: E402
from .errors import TransferkitError  # noqa: E402
from .extract import FeatureSet, extract, load_features, save_features  # noqa: E402
from .train import TrainConfig, evaluate, lr_find, predict, train  # noqa: E402
from .train.export import export  # noqa: E402
from . import search  # noqa: E402  (transferkit.search.similar / duplicates / outliers / explore)
from .audit import audit  # noqa: E402

__all__ = [
    "BackboneSpec", "FeatureSet", "audit", "TrainConfig", "TransferkitError", "__version__", "build_feature_model",
    "evaluate", "export", "extract", "get_backbone", "index_images", "list_backbones", "load_features", "load_image",
    "lr_find", "predict", "register_backbone", "save_features", "search", "train",
]
