"""The one adapter to the Keras backends: default choice, compiled inference and bfloat16 detection.

Everything backend-specific (TensorFlow, JAX, PyTorch) lives here; the rest of
transferkit talks to Keras and `keras.ops` only.
"""

from __future__ import annotations

import contextlib
import importlib.abc
import importlib.util
import os
import sys
from functools import lru_cache
from typing import Callable

import numpy as np

_PREFERENCE = ("tensorflow", "jax", "torch")
# What a user may ask for; "auto" resolves per machine (float16 is chosen by "auto" on fp16-only GPUs) and never
# to int8, which changes the numbers more (OpenVINO + NNCF; extraction only).
PRECISIONS = ("auto", "float32", "bfloat16", "int8")


def ensure_default_backend() -> None:
    """Pick TensorFlow as the Keras backend when `KERAS_BACKEND` is unset (else JAX, else PyTorch).

    TensorFlow is by far the fastest backend on CPUs; machines without it fall
    back to whichever of JAX/PyTorch is installed. Must run before `import keras`.
    """
    # TensorFlow's C++ start-up chatter (absl / cpu_feature_guard / oneDNN INFO lines) hides transferkit's own
    # output; level 2 keeps its errors (Python warnings are not affected). Also when the user chose the backend.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    _quiet_tensorflow_import()
    if os.environ.get("KERAS_BACKEND"):
        return
    for name in _PREFERENCE:
        if importlib.util.find_spec(name) is not None:
            os.environ["KERAS_BACKEND"] = name
            break


@contextlib.contextmanager
def quiet_native_stderr():
    """Silence what native code writes to the stderr file descriptor inside the block (Python's own `sys.stderr`
    output is flushed first and restored after); `TRANSFERKIT_DEBUG=1` keeps everything."""
    if os.environ.get("TRANSFERKIT_DEBUG"):
        yield
        return
    try:
        saved = os.dup(2)
    except OSError:
        yield
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        sys.stderr.flush()
        os.dup2(devnull, 2)
        yield
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


class _QuietTensorFlow(importlib.abc.MetaPathFinder):
    """Imports TensorFlow (whoever imports it first: transferkit, Keras or the user) with its native start-up lines
    hidden: on CPUs where oneDNN is on by default (AVX-512, AMX) TensorFlow 2.20+ logs through absl before absl is
    initialised, which ignores TF_CPP_MIN_LOG_LEVEL. Python exceptions of a failed import still propagate."""

    searching = False

    def find_spec(self, name, path=None, target=None):
        if name != "tensorflow" or self.searching:
            return None
        self.searching = True  # the nested look-up below asks the other finders
        try:
            spec = importlib.util.find_spec(name)
        finally:
            self.searching = False
        if spec is not None and spec.loader is not None:
            spec.loader = _QuietLoader(spec.loader)
        return spec


class _QuietLoader(importlib.abc.Loader):
    def __init__(self, loader):
        self.loader = loader

    def create_module(self, spec):
        return self.loader.create_module(spec)

    def exec_module(self, module):
        with quiet_native_stderr():
            self.loader.exec_module(module)
        with contextlib.suppress(ValueError):  # imported now: the finder has done its work
            sys.meta_path[:] = [f for f in sys.meta_path if not isinstance(f, _QuietTensorFlow)]


def _quiet_tensorflow_import() -> None:
    if "tensorflow" not in sys.modules and not any(isinstance(f, _QuietTensorFlow) for f in sys.meta_path):
        sys.meta_path.insert(0, _QuietTensorFlow())


def name() -> str:
    """The active Keras backend ("tensorflow", "jax" or "torch")."""
    import keras

    return keras.backend.backend()


@contextlib.contextmanager
def dtype_policy(precision: str):
    """Build layers under a mixed policy for "bfloat16" / "float16" (float32 weights); the old policy is restored."""
    import keras

    old = keras.config.dtype_policy()
    keras.config.set_dtype_policy({"bfloat16": "mixed_bfloat16", "float16": "mixed_float16"}.get(precision,
                                                                                                   "float32"))
    try:
        yield
    finally:
        keras.config.set_dtype_policy(old)


@lru_cache(maxsize=None)
def _cpu_flags() -> frozenset[str]:
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.startswith("flags"):
                    return frozenset(line.split(":", 1)[1].split())
    except OSError:
        pass
    return frozenset()


@lru_cache(maxsize=None)
def accelerator() -> str | None:
    """"gpu" when the active backend sees a GPU, else None."""
    backend = name()
    try:
        if backend == "tensorflow":
            import tensorflow as tf

            return "gpu" if tf.config.list_physical_devices("GPU") else None
        if backend == "jax":
            import jax

            return "gpu" if jax.default_backend() in ("gpu", "cuda", "rocm") else None
        if backend == "torch":
            import torch

            return "gpu" if torch.cuda.is_available() else None
    except Exception:  # a broken driver means "no GPU", not a crash
        return None
    return None


def bfloat16_is_fast() -> bool:
    """True where bfloat16 matrix units exist: GPUs with bf16 tensor cores, AMX / AVX512-BF16 CPUs.

    On the CPU only the TensorFlow backend (oneDNN) turns bfloat16 into AMX / AVX512-BF16 instructions;
    XLA-CPU and PyTorch-CPU run it slower than float32.
    """
    if accelerator() == "gpu":
        return _gpu_compute_capability() >= (8, 0)
    return name() == "tensorflow" and bool({"amx_bf16", "avx512_bf16"} & _cpu_flags())


def _gpu_compute_capability() -> tuple[int, int]:
    backend = name()
    try:
        if backend == "torch":
            import torch

            return tuple(torch.cuda.get_device_capability(0))
        if backend == "tensorflow":
            import tensorflow as tf

            gpu = tf.config.list_physical_devices("GPU")[0]
            return tuple(tf.config.experimental.get_device_details(gpu).get("compute_capability", (0, 0)))
        if backend == "jax":
            import jax

            major, _, minor = str(getattr(jax.devices()[0], "compute_capability", "0.0")).partition(".")
            return int(major), int(minor or 0)
    except Exception:
        return (0, 0)
    return (0, 0)


def resolve_precision(precision: str, cpu_bfloat16: bool = True) -> str:
    """Map "auto" to the fastest accurate-enough compute type of this machine.

    bfloat16 on bf16-capable GPUs (compute capability ≥ 8.0) and AMX / AVX512-BF16 CPUs (unless
    `cpu_bfloat16` is False: the model was measured no faster in bfloat16 on such CPUs); float16 on
    GPUs with fp16 tensor cores only (7.x); float32 elsewhere. Other values pass through.
    """
    from .errors import check_one_of

    check_one_of("precision", precision, PRECISIONS + ("float16",))
    if precision != "auto":
        return precision
    if bfloat16_is_fast() and (cpu_bfloat16 or accelerator() == "gpu"):
        return "bfloat16"
    if accelerator() == "gpu" and _gpu_compute_capability() >= (7, 0):
        return "float16"
    return "float32"


def compile_inference(model, fn: Callable, input_shape: tuple[int, ...] | None = None
                      ) -> Callable[[np.ndarray], list[np.ndarray]]:
    """Compile `fn(model_call, x) -> list of tensors` into a NumPy-in, NumPy-out inference function.

    `fn` receives a `model_call(x)` that runs `model` in inference mode, so it can
    wrap pre- and post-processing (written with `keras.ops`) around the model.
    TensorFlow uses `tf.function`, JAX `jax.jit` over `stateless_call`, PyTorch
    eager mode under `no_grad` (its compiler costs more than it saves here).
    With `input_shape` (a uint8 batch shape) the function is traced/compiled for
    that shape now, without running it: a warm-up batch would cost a whole
    batch of compute (2 s for VGG16 on a 2-core CPU), tracing alone ~0.3 s.
    """
    backend = name()
    if backend == "tensorflow":
        import tensorflow as tf

        compiled = tf.function(lambda x: fn(lambda t: model(t, training=False), x), reduce_retracing=True)
        if input_shape is not None:
            compiled.get_concrete_function(tf.TensorSpec(input_shape, tf.uint8))
        return lambda x: [np.asarray(t) for t in compiled(tf.convert_to_tensor(x))]
    if backend == "jax":
        import jax

        def pure(trainable, non_trainable, x):
            def call(t):
                return model.stateless_call(trainable, non_trainable, t, training=False)[0]

            return fn(call, x)

        jitted = jax.jit(pure)
        trainable = [v.value for v in model.trainable_variables]
        non_trainable = [v.value for v in model.non_trainable_variables]
        ahead = None
        if input_shape is not None:
            ahead = jitted.lower(trainable, non_trainable, jax.ShapeDtypeStruct(input_shape, np.uint8)).compile()

        def run_jax(x):
            use = ahead if ahead is not None and x.shape == tuple(input_shape) and x.dtype == np.uint8 else jitted
            return [np.asarray(t) for t in use(trainable, non_trainable, x)]

        return run_jax
    if backend == "torch":
        import keras
        import torch

        def run(x):
            with torch.no_grad():
                outs = fn(lambda t: model(t, training=False), keras.ops.convert_to_tensor(x))
                return [keras.ops.convert_to_numpy(t) for t in outs]

        return run
    raise _unsupported(backend)


def _unsupported(backend: str):
    from .errors import TransferkitError

    return TransferkitError(f"`KERAS_BACKEND` must be one of {list(_PREFERENCE)} for transferkit. "
                            f"Received: KERAS_BACKEND={backend!r}")


def value_and_gradient(fn: Callable, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Evaluate the scalar `fn(x)` (written with `keras.ops`) and its gradient with respect to `x`, in NumPy."""
    import keras

    backend = name()
    if backend == "tensorflow":
        import tensorflow as tf

        t = tf.convert_to_tensor(x)
        with tf.GradientTape() as tape:
            tape.watch(t)
            value = fn(t)
        return np.asarray(value), np.asarray(tape.gradient(value, t))
    if backend == "jax":
        import jax

        value, grad = jax.value_and_grad(fn)(jax.numpy.asarray(x))
        return np.asarray(value), np.asarray(grad)
    if backend == "torch":
        import torch

        t = keras.ops.convert_to_tensor(x).detach().requires_grad_(True)
        value = fn(t)
        (grad,) = torch.autograd.grad(value, t)
        return value.detach().cpu().numpy(), grad.detach().cpu().numpy()
    raise _unsupported(backend)


_MIXED = ("mixed_bfloat16", "mixed_float16", "bfloat16", "float16")


def _float32_config(config):
    """`config` (a Keras model config) with every mixed or half-precision dtype policy made float32."""
    if isinstance(config, dict):
        if config.get("class_name") in ("DTypePolicy", "FloatDTypePolicy") and \
                (config.get("config") or {}).get("name") in _MIXED:
            return {**config, "config": {**config["config"], "name": "float32"}}
        return {k: ("float32" if k == "dtype" and v in _MIXED else _float32_config(v)) for k, v in config.items()}
    if isinstance(config, list):
        return [_float32_config(v) for v in config]
    return config


def as_float32(model):
    """A copy of `model` that computes in float32 with the same weights (a model built under a mixed bfloat16
    or float16 policy keeps float32 variables, so nothing is lost); `model` itself when it already does.

    Saved models and exports are float32 graphs this way whatever precision trained them: ONNX, OpenVINO and
    LiteRT converters refuse or mistranslate mixed-precision graphs, and the loader chooses its own precision.

    Example:
    >>> model32 = as_float32(model_trained_in_bfloat16)  # doctest: +SKIP
    """
    config = model.get_config()
    clean = _float32_config(config)
    if clean == config:
        return model
    copy = model.__class__.from_config(clean)
    copy.set_weights(model.get_weights())
    return copy
