"""How an image file becomes a model's input: decode, crop, resize, preprocess — one object for every consumer.

`InputConfig` is written as `"input"` into every feature manifest, every run's config.json and every export's
`PATH.json`, and read back by whatever turns files into tensors for that model (extraction, search queries,
training, predict/evaluate, the report, export checks, Grad-CAM, the deploy snippet), so they all agree.
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass

import numpy as np

from ..errors import TransferkitError
from .decode import RESAMPLE, check_resample, load_image


@dataclass(frozen=True)
class Preprocessing:
    """How raw RGB pixels in [0, 255] become model input: optional RGB→BGR, then (x - mean) / std per channel."""

    bgr: bool = False
    mean: tuple[float, float, float] = (0.0, 0.0, 0.0)
    std: tuple[float, float, float] = (1.0, 1.0, 1.0)

    def apply(self, x, ops=np):
        """Preprocess float pixels `x` (..., 3) with NumPy (default) or `keras.ops` (inside compiled functions)."""
        to_array = getattr(ops, "convert_to_tensor", np.asarray)
        if self.bgr:
            x = ops.flip(x, axis=-1)
        return (x - to_array(np.array(self.mean, "float32"))) / to_array(np.array(self.std, "float32"))

    def affine(self) -> tuple[np.ndarray, np.ndarray]:
        """The same map as a 1×1 convolution: (kernel (1, 1, 3, 3), bias (3,)), for a plain Keras Conv2D layer."""
        perm = np.eye(3, dtype="float32")[::-1] if self.bgr else np.eye(3, dtype="float32")
        std = np.array(self.std, "float32")
        kernel = (perm / std[None, :])[None, None]  # out channel j = in channel perm(j) / std_j
        return kernel, -np.array(self.mean, "float32") / std


# The `preprocess_input` modes of keras.applications, plus the EfficientNet-Lite checkpoints' own scaling.
PREPROCESSING: dict[str, Preprocessing] = {
    "caffe": Preprocessing(bgr=True, mean=(103.939, 116.779, 123.68)),
    "tf": Preprocessing(mean=(127.5,) * 3, std=(127.5,) * 3),
    "torch": Preprocessing(mean=(123.675, 116.28, 103.53), std=(58.395, 57.12, 57.375)),
    "none": Preprocessing(),  # the model rescales inside (EfficientNet, ConvNeXt, MobileNetV3)
    "lite": Preprocessing(mean=(127.0,) * 3, std=(128.0,) * 3),
}


@dataclass(frozen=True)
class InputConfig:
    """Everything that turns an image file into a model's input tensor.

    Args:
        size: square side in pixels after resizing.
        crop_fraction: None resizes the whole image (aspect ratio not kept, as Keras does); a fraction f in
            (0, 1] first takes the centre square of side f × the shorter side.
        resample: PIL resampling filter ("bilinear", "bicubic", ...).
        preprocessing: key of `PREPROCESSING` — applied to RGB 0–255 pixels inside every compiled feature
            model, saved classifier and export (recorded here so a reader knows what the model expects).

    Example:
    >>> cfg = InputConfig(224, crop_fraction=0.875, resample="bicubic", preprocessing="lite")
    >>> cfg.to_dict()["crop_fraction"], InputConfig.from_dict(cfg.to_dict()) == cfg
    (0.875, True)
    """

    size: int
    crop_fraction: float | None = None
    resample: str = "bilinear"
    preprocessing: str = "none"

    def __post_init__(self):
        if isinstance(self.size, bool) or not isinstance(self.size, numbers.Integral) or self.size < 1:
            raise TransferkitError(f"`input size` must be a positive integer. Received: size={self.size!r}")
        object.__setattr__(self, "size", int(self.size))
        crop = self.crop_fraction
        if crop is not None:
            if isinstance(crop, bool) or not isinstance(crop, numbers.Real) or not 0 < crop <= 1:
                raise TransferkitError(f"`crop_fraction` must be None or a fraction in (0, 1]. "
                                       f"Received: crop_fraction={crop!r}")
            object.__setattr__(self, "crop_fraction", float(crop))
        check_resample(self.resample)
        if self.preprocessing not in PREPROCESSING:
            raise TransferkitError(f"`preprocessing` must be one of {sorted(PREPROCESSING)}. "
                                   f"Received: preprocessing={self.preprocessing!r}")

    @property
    def normalization(self) -> Preprocessing:
        """The per-channel affine map of `preprocessing`."""
        return PREPROCESSING[self.preprocessing]

    def load(self, path) -> np.ndarray:
        """Decode one file (a path, or an open binary file such as an upload's bytes in `io.BytesIO`) into the
        model's (size, size, 3) uint8 RGB input, before preprocessing.

        Raises:
            DecodeError: the file is not a readable image.
        """
        source = path if hasattr(path, "read") else str(path)
        return load_image(source, self.size, crop_fraction=self.crop_fraction, resample=self.resample)

    def preprocess(self, pixels: np.ndarray) -> np.ndarray:
        """RGB 0–255 pixels (..., 3) → what the bare backbone takes (float32), with NumPy."""
        return self.normalization.apply(np.asarray(pixels, dtype=np.float32)).astype(np.float32)

    def to_dict(self) -> dict:
        """The JSON form written as `"input"` into manifests, run configs and export metadata."""
        norm = self.normalization
        return {"size": self.size, "crop_fraction": self.crop_fraction, "resample": self.resample,
                "preprocessing": self.preprocessing, "bgr": norm.bgr, "mean": list(norm.mean), "std": list(norm.std)}

    @classmethod
    def from_dict(cls, data, source: str = "the input configuration") -> "InputConfig":
        """Read `to_dict()`'s form back, validated; `source` names the file in the error message."""
        if not isinstance(data, dict):
            raise TransferkitError(f"{source} is damaged: 'input' must be an object with size, crop_fraction, "
                                   f"resample and preprocessing. Received: {data!r}")
        missing = [k for k in ("size", "crop_fraction", "resample", "preprocessing") if k not in data]
        if missing:
            raise TransferkitError(f"{source} is damaged: 'input' lacks {missing}.")
        try:
            return cls(data["size"], data["crop_fraction"], data["resample"], data["preprocessing"])
        except TransferkitError as exc:
            raise TransferkitError(f"{source} is damaged: {exc}") from None

    def describe(self) -> str:
        """One line for people: "224 px, centre 87.5 % crop, bicubic, lite preprocessing"."""
        crop = "whole image" if self.crop_fraction is None else f"centre {self.crop_fraction:.1%} crop"
        return f"{self.size} px, {crop}, {self.resample}, {self.preprocessing} preprocessing"


__all__ = ["InputConfig", "PREPROCESSING", "Preprocessing", "RESAMPLE"]
