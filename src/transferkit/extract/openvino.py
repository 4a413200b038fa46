"""The OpenVINO runtime for extraction: the feature model (preprocessing, cut, pooling inside) exported with
Keras' `model.export`, run by OpenVINO in float32 or bfloat16, or quantised to int8 with NNCF post-training
quantisation calibrated on a seeded sample of the user's own images. Exported models are cached."""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import logging
import os
from pathlib import Path

import numpy as np

from ..backbones.build import FeatureModel, weights_identity
from ..data.decode import DecodeError
from ..data.folder import ImageIndex
from ..errors import TransferkitError, check_positive_int, install_hint
from ..files import atomic_folder, write_json_atomic

DEFAULT_CALIBRATION = 300
RUNTIMES = ("keras", "openvino")
_HINT = {"float32": "f32", "bfloat16": "bf16", "int8": "f32"}  # int8: quantised layers int8, the rest float32


def _need():
    try:
        import nncf  # noqa: F401
        import openvino  # noqa: F401
    except ImportError:
        raise TransferkitError("--precision int8 and --runtime openvino need OpenVINO and NNCF: "
                               f"{install_hint('openvino')}.") from None


def cache_root() -> Path:
    """Where exported and quantised models are kept: $TRANSFERKIT_CACHE, default ~/.cache/transferkit."""
    return Path(os.environ.get("TRANSFERKIT_CACHE", os.path.expanduser("~/.cache/transferkit"))) / "openvino"


def calibration_sample(index: ImageIndex, n: int, seed: int = 0) -> list[int]:
    """The positions of a seeded random sample of `n` images (all when there are fewer), in index order."""
    n = check_positive_int("calibration", n)
    count = min(n, len(index))
    return sorted(np.random.default_rng(seed).choice(len(index), count, replace=False).tolist())


def exportable_model(fm: FeatureModel):
    """A Keras model of float32 RGB 0–255 → preprocessing → (rewritten) backbone → pooled outputs."""
    import keras

    from ..backbones.optimize import optimize_for_inference

    size = fm.input_size
    inputs = keras.Input((size, size, 3), name="image")
    prep = keras.layers.Conv2D(3, 1, name="preprocess", dtype="float32")
    x = prep(inputs)
    prep.set_weights(list(fm.input_config.normalization.affine()))
    outs = optimize_for_inference(fm.model)(x)
    outs = outs if isinstance(outs, (list, tuple)) else [outs]
    pools = {"avg": keras.layers.GlobalAveragePooling2D, "max": keras.layers.GlobalMaxPooling2D,
             "flatten": keras.layers.Flatten}
    pooled = [pools[p](dtype="float32")(o) if p in pools else o for o, p in zip(outs, fm.poolings)]
    return keras.Model(inputs, pooled, name=f"{fm.spec.name}_openvino")


def _files_sha256(files: list[str]) -> str:
    return hashlib.sha256("\n".join(files).encode()).hexdigest()[:16]


def prepare(fm: FeatureModel, *, precision: str, weights, index: ImageIndex | None = None,
            calibration: int = DEFAULT_CALIBRATION, seed: int = 0, quiet: bool = True,
            like: dict | None = None) -> tuple[Path, dict]:
    """Export (and for int8, quantise) the feature model once; return the cached OpenVINO model file and what
    the manifest records about it (runtime, calibration set).

    Args:
        index: int8: the images a seeded sample of `calibration` is drawn from.
        like: the "openvino" record of a feature set's manifest: use that set's model — for int8 the one
            quantised on the set's own images (found in the cache, or made again from the same sample when
            the cache was cleared) — so that queries are extracted exactly as the set was.
    """
    _need()
    import openvino as ov

    record = {"runtime": "openvino", "openvino_version": ov.__version__}
    key = [fm.spec.name, fm.layers, fm.poolings, fm.input_size, weights_identity(weights), precision,
           fm.input_config.to_dict()]
    sample: list[int] = []
    if precision == "int8":
        if like is not None:
            cal = _recorded_calibration(like)
            record["calibration"] = cal
        else:
            sample = calibration_sample(index, calibration, seed)
            record["calibration"] = {"images": len(sample), "requested": calibration, "seed": seed,
                                     "files_sha256": _files_sha256([index.paths[i] for i in sample]),
                                     "root": str(index.root), "labels": "none" if index.labels is None else "inferred"}
        key += [record["calibration"]["root"], record["calibration"]["files_sha256"]]
    digest = hashlib.sha256(json.dumps(key + [ov.__version__], sort_keys=True).encode()).hexdigest()[:20]
    folder = cache_root() / f"{fm.spec.name}-{precision}-{digest}"
    model_file = folder / "model.xml"
    record["cache"] = str(folder)
    if model_file.is_file():
        return model_file, record
    if precision == "int8" and like is not None:
        index, sample = _recorded_sample(record["calibration"])
    with atomic_folder(folder) as tmp:
        exportable_model(fm).export(str(tmp / "exported.xml"), format="openvino", verbose=False)
        model = ov.Core().read_model(str(tmp / "exported.xml"))
        if precision == "int8":
            model = _quantize(model, index, sample, fm, quiet)
        ov.save_model(model, str(tmp / "model.xml"), compress_to_fp16=False)  # keep float32 weights float32
        write_json_atomic(tmp / "info.json", {"key": key, **record})
    return model_file, record


def _recorded_calibration(like: dict) -> dict:
    cal = like.get("calibration") if isinstance(like, dict) else None
    if not (isinstance(cal, dict) and {"root", "files_sha256", "requested", "seed"} <= set(cal)):
        raise TransferkitError("The feature set's manifest does not record how its int8 model was calibrated "
                               "('openvino.calibration'); re-extract the set with this version.")
    return cal


def _recorded_sample(cal: dict) -> tuple[ImageIndex, list[int]]:
    """The calibration sample a set's int8 model was quantised on, drawn again from the set's own folder."""
    from ..data.folder import index_images

    try:
        index = index_images(cal["root"], labels=cal.get("labels", "inferred"))
        sample = calibration_sample(index, cal["requested"], cal["seed"])
    except TransferkitError:
        sample, index = [], None
    if index is None or _files_sha256([index.paths[i] for i in sample]) != cal["files_sha256"]:
        raise TransferkitError(
            f"The feature set's int8 model is no longer in the cache ({cache_root()}) and its calibration images "
            f"under {cal['root']!r} have changed, so new images cannot be extracted exactly as the set was. "
            "Extract the set again (--overwrite), or keep the cache.")
    return index, sample


def _quantize(model, index: ImageIndex, sample: list[int], fm: FeatureModel, quiet: bool):
    import nncf

    def images():
        for i in sample:
            try:
                x = fm.input_config.load(index.absolute(i))
            except DecodeError:
                continue  # an unreadable file is skipped here as in extraction
            yield x[None].astype(np.float32)

    batches = list(images())
    if not batches:
        raise TransferkitError("None of the calibration images could be read; int8 needs readable images.")
    if not quiet:
        print(f"Quantising {fm.spec.name} to int8 on {len(batches)} of your images (once; the result is cached)")
    # The first convolutions (the preprocessing 1×1 and the stem, on raw pixel ranges), the last ones and a final
    # classifier layer (whose outputs are the features) stay float: measured on EfficientNet-Lite0, real photos, cosine to float32
    # 0.908 → 0.985 (bench/int8.py); the bulk of the compute is quantised either way.
    convs = [op.get_friendly_name() for op in model.get_ordered_ops()
             if op.get_type_name() in ("Convolution", "GroupConvolution")]
    keep_float = convs[:2] + convs[-2:] if len(convs) > 6 else []
    keep_float += [op.get_friendly_name() for op in model.get_ordered_ops() if op.get_type_name() == "MatMul"][-1:]
    if quiet:
        nncf.set_log_level(logging.ERROR)
    with contextlib.redirect_stdout(io.StringIO()) if quiet else contextlib.nullcontext():
        return nncf.quantize(model, nncf.Dataset(batches), subset_size=len(batches),
                             preset=nncf.QuantizationPreset.MIXED,
                             ignored_scope=nncf.IgnoredScope(names=keep_float) if keep_float else None)


def compile_openvino(model_file: Path, precision: str, threads: int | None = None):
    """A NumPy-in, NumPy-out function (uint8 NHWC batch → list of float32 arrays) running the OpenVINO model."""
    _need()
    import openvino as ov

    config = {"INFERENCE_PRECISION_HINT": _HINT[precision], "PERFORMANCE_HINT": "LATENCY"}
    if threads:
        config["INFERENCE_NUM_THREADS"] = threads
    compiled = ov.Core().compile_model(str(model_file), "CPU", config)
    outputs = compiled.outputs

    def run(x: np.ndarray) -> list[np.ndarray]:
        result = compiled(np.ascontiguousarray(x, dtype=np.float32))
        return [np.asarray(result[o], dtype=np.float32) for o in outputs]

    return run
