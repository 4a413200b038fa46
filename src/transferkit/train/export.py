"""Exporting a trained run with Keras' own `model.export` (ONNX, OpenVINO, SavedModel, LiteRT), checked in each
format's own runtime before it counts as done."""

from __future__ import annotations

import contextlib
import io
import logging
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from ..errors import TransferkitError, check_one_of, install_hint
from ..backend import quiet_native_stderr
from ..files import write_json_atomic, write_text_atomic
from .run_folder import RunFolder
from .use import load_run

TOLERANCE = 1e-4  # largest absolute difference in any class probability from model.keras


@dataclass(frozen=True)
class ExportFormat:
    """One export format: Keras' name for it, the file suffix (None: a folder), what to install, how to run it."""

    keras_format: str
    suffix: str | None
    needs: tuple[str, ...]  # importable modules
    runner: Callable  # runner(path) -> fn(float32 NHWC batch) -> probabilities


def _onnx(path: Path):
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    return lambda x: session.run(None, {name: x})[0]


def _openvino(path: Path):
    import openvino as ov

    # float32 as exported: on CPUs with bfloat16 units OpenVINO would otherwise choose bfloat16 itself
    compiled = ov.Core().compile_model(str(path), "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
    return lambda x: compiled(x)[0]


def _saved_model(path: Path):
    import tensorflow as tf

    loaded = tf.saved_model.load(str(path))
    return lambda x: loaded.serve(x).numpy()


def _litert(path: Path):
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:  # TensorFlow's own copy (deprecated there, same runtime)
        import tensorflow as tf

        Interpreter = tf.lite.Interpreter
    interpreter = Interpreter(model_path=str(path))

    def run(x):
        inp = interpreter.get_input_details()[0]
        interpreter.resize_tensor_input(inp["index"], x.shape)
        interpreter.allocate_tensors()
        interpreter.set_tensor(inp["index"], x)
        interpreter.invoke()
        return interpreter.get_tensor(interpreter.get_output_details()[0]["index"])

    return run


FORMATS = {
    "onnx": ExportFormat("onnx", ".onnx", ("onnxruntime", "tf2onnx"), _onnx),
    "openvino": ExportFormat("openvino", ".xml", ("openvino",), _openvino),
    "saved_model": ExportFormat("tf_saved_model", None, ("tensorflow",), _saved_model),
    "litert": ExportFormat("litert", ".tflite", ("tensorflow",), _litert),
}


def _deployable(model):
    """`model` with class probabilities as output: a binary model's one sigmoid unit becomes (1 - p, p)."""
    import keras

    if int(model.outputs[0].shape[-1]) != 1:
        return model
    two = keras.layers.Dense(2, name="class_probabilities", dtype="float32")
    x = model.outputs[0]
    out = two(x)
    two.set_weights([np.array([[-1.0, 1.0]], "float32"), np.array([1.0, 0.0], "float32")])  # (1 - p, p)
    return keras.Model(model.inputs[0], out, name=model.name)


def _sample_images(run: Path, info: dict, n: int) -> tuple[np.ndarray, str]:
    """Up to `n` of the run's validation images at its input size, or seeded random pixels if they are gone."""
    from ..data.decode import DecodeError
    config = info["input"]
    try:
        validation = RunFolder(run).validation_index()
    except TransferkitError:
        validation = None
    images = []
    for i in range(len(validation) if validation is not None else 0):
        try:
            images.append(config.load(validation.absolute(i)))
        except DecodeError:
            continue
        if len(images) == n:
            break
    if images:
        return np.stack(images).astype("float32"), f"{len(images)} validation images of the run"
    rng = np.random.default_rng(0)
    return (rng.uniform(0, 255, (n, config.size, config.size, 3)).astype("float32"),
            f"{n} random images (validation data gone)")


def _export_and_check(deployable, target: Path, x: np.ndarray, format: str, spec, path: Path) -> tuple[float, float]:
    """Export `deployable` to `target` and run it on `x` in the format's runtime: (seconds the export took, the
    largest difference from the Keras model's probabilities)."""
    expected = np.asarray(deployable(x))  # also builds the wrapper, which Keras' exporters need
    started = time.perf_counter()
    try:
        with _converter_output_hidden() as log:
            deployable.export(str(target), format=spec.keras_format, verbose=False)
    except Exception as exc:  # converters raise anything; the user gets their own error, whole
        raise TransferkitError(f"Keras could not export this model to {format}: {_whole(exc)}"
                               + _log_hint(log, path)) from None
    seconds = time.perf_counter() - started
    try:
        got = np.asarray(spec.runner(target)(x))
    except Exception as exc:
        raise TransferkitError(f"The {format} runtime could not run the exported model: {_whole(exc)}") from None
    return seconds, float(np.abs(got.reshape(expected.shape) - expected).max())


def export(run, *, format: str, path, check_images: int = 8) -> dict:
    """Export a finished run's classifier and check it in the format's own runtime.

    The exported model takes what `model.keras` takes — raw RGB pixels 0–255, float32, NHWC, the run's input
    size, preprocessing inside — and outputs class probabilities (n, classes), with a dynamic batch axis.
    It is run on up to `check_images` of the run's validation images; the export fails (and nothing is left
    at `path`) when any probability differs from `model.keras` by more than 1e-4. `PATH.json` beside it holds
    the class names, input size and the check's result.

    Args:
        run: a finished run folder (or a `.keras` file with its config.json beside it).
        format: "onnx", "openvino", "saved_model" or "litert".
        path: the file (a folder for saved_model; `.xml` + `.bin` for openvino) to write.

    Returns:
        The dict written to `PATH.json`.

    Example:
    >>> export("runs/vgg16-finetune", format="onnx", path="classifier.onnx")  # doctest: +SKIP
    """
    check_one_of("format", format, FORMATS)
    spec = FORMATS[format]
    run = Path(run)
    if run.is_dir() and not (run / "config.json").is_file():
        raise TransferkitError(f"{str(run)!r} is not a run folder (no config.json): pass a folder written by "
                               "`transferkit train`.")
    if run.is_dir() and not (run / "metrics.json").is_file():
        raise TransferkitError(f"The run {str(run)!r} is not finished (no metrics.json): finish it with "
                               "`transferkit train ... --resume`, or export another run.")
    path = Path(os.path.expanduser(str(path)))
    if spec.suffix and path.suffix.lower() != spec.suffix:
        raise TransferkitError(f"A {format} export is a {spec.suffix} file. Received: -o {path}; use "
                               f"{path.with_suffix(spec.suffix)}.")
    _check_output_folder(path)
    for module in spec.needs:
        try:
            __import__(module)
        except ImportError:
            raise TransferkitError(f"Exporting to {format} needs the Python package {module!r}: "
                                   f"{install_hint('export')}.") from None
    model, info = load_run(run)
    deployable = _deployable(model)
    tmp = path.parent / f".{path.name}.export-tmp"
    try:
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir()
    except OSError as exc:
        raise TransferkitError(f"Cannot write to the folder {str(path.parent)!r}: {exc.strerror or exc}. "
                               "Choose another -o.") from None
    try:
        target = tmp / (path.name if spec.suffix else "model")
        x, source = _sample_images(run, info, check_images)
        seconds, diff = _export_and_check(deployable, target, x, format, spec, path)
        if not diff <= TOLERANCE:
            raise TransferkitError(f"The {format} export differs from model.keras by {diff:.3g} (more than "
                                   f"{TOLERANCE:g}) on {source}; it was not written.")
        meta = {
            "format": format, "file": path.name, "class_names": info["class_names"],
            "input": info["input"].to_dict(),
            "tensor": {"shape": [None, info["input"].size, info["input"].size, 3], "dtype": "float32",
                       "layout": "NHWC", "range": "RGB pixels 0-255, decoded as 'input' says (crop, then resize); "
                                                  "the preprocessing is inside the model"},
            "output": "class probabilities, shape (n, classes), in class_names order",
            "check": {"max_abs_difference": diff, "tolerance": TOLERANCE, "images": source, "runtime": spec.needs[0]},
            "export_seconds": round(seconds, 2), "source": str(run.resolve()),
        }
        try:
            _move_into_place(tmp, target, path, spec)
            write_json_atomic(path.with_name(path.name + ".json"), meta)
        except OSError as exc:
            raise TransferkitError(f"Cannot write {path}: {exc.strerror or exc}. Choose another -o.") from None
        return meta
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _check_output_folder(path: Path) -> None:
    """The export's folder must exist and be a folder; say which part of the path is wrong."""
    parent = path.parent
    if parent.is_dir():
        return
    blocker = next((p for p in [parent, *parent.parents] if p.exists()), None)
    if blocker is not None and not blocker.is_dir():
        raise TransferkitError(f"Cannot write {path}: {str(blocker)!r} is a file, not a folder. Choose another -o.")
    raise TransferkitError(f"The folder {str(parent)!r} does not exist; create it or choose another -o.")


def _whole(exc: Exception) -> str:
    """An exception's own message, all of it, on one line."""
    text = " ".join(line.strip() for line in str(exc).splitlines() if line.strip())
    return text or type(exc).__name__


@contextlib.contextmanager
def _converter_output_hidden():
    """Hide what converters print and log (hundreds of lines from tf2onnx and TensorFlow) while they run; the
    captured text is yielded (as a list holding one string, filled at the end) for a failure's log file."""
    captured: list[str] = []
    buffer = io.StringIO()
    handler = logging.StreamHandler(buffer)
    root = logging.getLogger()
    old_level = root.level
    root.addHandler(handler)
    # TensorFlow's logger has its own handler on the stream it found first (a notebook cell's): its INFO lines
    # ("Assets written to …") would pass the redirection below
    tf_logger = logging.getLogger("tensorflow")
    tf_level = tf_logger.level
    tf_logger.setLevel(max(tf_level, logging.WARNING))
    try:
        with contextlib.redirect_stdout(buffer), contextlib.redirect_stderr(buffer), quiet_native_stderr():
            yield captured
    finally:
        root.removeHandler(handler)
        root.setLevel(old_level)
        tf_logger.setLevel(tf_level)
        captured.append(buffer.getvalue())


def _log_hint(log: list[str], path: Path) -> str:
    """Write the converter's captured output beside the export; name the file in the error message."""
    text = log[0] if log else ""
    if not text.strip():
        return ""
    try:
        log_file = write_text_atomic(path.with_name(path.name + ".export.log"), text)
    except OSError:
        return ""
    return f" (the converter's output is in {log_file})"


def _move_into_place(tmp: Path, target: Path, path: Path, spec: ExportFormat) -> None:
    """Replace `path` with the checked export (OpenVINO's .bin travels with its .xml)."""
    moves = [(target, path)]
    if spec.keras_format == "openvino":
        moves.append((target.with_suffix(".bin"), path.with_suffix(".bin")))
    for src, dst in moves:
        if dst.is_dir():
            shutil.rmtree(dst)
        os.replace(src, dst)
