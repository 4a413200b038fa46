"""Option definitions shared by several commands, so each means the same everywhere."""

from __future__ import annotations

import argparse
import os
import sys

from ..errors import TransferkitError


# Argument types: every value is checked while the command line is parsed, before Keras loads (a bad value
# answers at once, not after seconds of imports). The library checks the same values again for Python callers.

def _type(name: str, parse):
    """An argparse type from a parser that raises `TransferkitError` (or ValueError) with the reason."""
    def convert(text: str):
        try:
            return parse(text)
        except (TransferkitError, ValueError) as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None
    convert.__name__ = name  # argparse names the type in its messages
    return convert


def integer(low: int = 1, high: int | None = None):
    """An integer from `low` (to `high`)."""
    def parse(text):
        value = int(text)
        if value < low or (high is not None and value > high):
            raise TransferkitError(f"must be an integer from {low}" + (f" to {high}" if high is not None else " up")
                                   + f". Received: {text}")
        return value
    return _type("integer", parse)


def number(low: float, high: float | None = None, *, low_open: bool = False, high_open: bool = False, what=""):
    """A float in [low, high] (or open at either end)."""
    def parse(text):
        value = float(text)
        ok = (value > low if low_open else value >= low) and (
            high is None or (value < high if high_open else value <= high))
        if not ok or value != value:
            span = ("(" if low_open else "[") + f"{low:g}, " + (f"{high:g}" if high is not None else "∞") + (
                ")" if high_open or high is None else "]")
            raise TransferkitError(f"must be {what or 'a number'} in {span}. Received: {text}")
        return value
    return _type("number", parse)


def crop_value(text: str) -> str:
    """--crop: model, none or a fraction in (0, 1], checked now; passed on as given."""
    from ..backbones.registry import parse_crop

    _type("crop", parse_crop)(text)
    return text


COSINE = number(-1, 1, what="a cosine similarity")
SEED = integer(0)


def add_command(sub, name: str, *, help: str, examples: str, run, resumes: bool = False) -> argparse.ArgumentParser:
    """Add a sub-command whose --help ends with usage examples; `resumes`: running it again after Ctrl-C
    continues where it stopped (the interrupt message then says so)."""
    parser = sub.add_parser(name, help=help, description=help, epilog="examples:\n" + examples,
                            formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.set_defaults(run=run, resumes=resumes)
    return parser


def add_model(parser, *, positional: bool = False, default: str | None = None):
    from ..backbones.registry import DEFAULT_MODEL

    default = default or DEFAULT_MODEL
    if positional:
        parser.add_argument("model", metavar="MODEL", help="backbone name (see `transferkit models`)")
    else:
        parser.add_argument("--model", "-m", default=default, help=f"backbone name (default: {default})")


def add_input_size(parser):
    parser.add_argument("--input-size", type=integer(1), default=None, metavar="N",
                        help="square input size in pixels (default: the model's)")


def add_crop(parser):
    parser.add_argument("--crop", default="model", type=crop_value, metavar="{model,none,FRACTION}",
                        help="model: the backbone's own centre crop (EfficientNet-Lite 0.875, keras.applications "
                             "none); none: resize the whole image (keeps borders); or a fraction (default: model)")


def add_augmentation(parser):
    """`--augmentation NAME` (a `TrainConfig` field) and `--no-augment`, shared by train and lr-find."""
    from ..train.config import TrainConfig
    from ..train.model import AUGMENTATIONS

    default = next(name for name, a in AUGMENTATIONS.items() if a == TrainConfig.__dataclass_fields__[
        "augmentation"].default_factory())
    parser.add_argument("--augmentation", default=default, choices=[*AUGMENTATIONS, "none"],
                        help="image strategies' random transforms: tutorial (rotation 40°, shifts, shear, zoom, "
                             "horizontal flip), flip, dihedral (flips and 90° turns only: images without an up, "
                             f"such as solar cells or microscopy), none (default: {default})")
    parser.add_argument("--no-augment", dest="augment", action="store_false", help="the same as --augmentation none")


def add_weights(parser, default: str = "imagenet"):
    parser.add_argument("--weights", default=default,
                        help=f"'imagenet', 'none' (random) or a weights file path (default: {default})")


def add_precision(parser):
    from ..backend import PRECISIONS

    parser.add_argument("--precision", default="auto", choices=PRECISIONS,
                        help="auto: bfloat16 where the hardware runs it fast, else float32; int8: OpenVINO, quantised "
                             "on your images (extraction and the features strategy only) (default: auto)")


def add_batch_size(parser, default: int = 32):
    parser.add_argument("--batch-size", type=integer(1), default=default, metavar="N", help=f"(default: {default})")


def add_run_or_model(parser):
    parser.add_argument("run_or_model", metavar="RUN_OR_MODEL", help="a run folder or a .keras file")
    parser.add_argument("--unsafe", action="store_true",
                        help="allow code (Lambda layers) in the model file; only for files you trust")


def add_tta(parser):
    from ..train.use import TTA_MODES

    parser.add_argument("--tta", default="none", choices=TTA_MODES,
                        help="test-time augmentation: average over the mirrored image (hflip), all 4 flips (flips: "
                             "for images whose class survives any flip, e.g. solar cells) or all 8 orientations "
                             "(dihedral: flips and 90° turns) (default: none)")


def add_features(parser):
    """FEATURES (an extraction output folder) and the layer to use when it holds several."""
    parser.add_argument("features", metavar="FEATURES", help="a folder written by `transferkit extract`")
    parser.add_argument("--layer", default=None, help="which extracted layer (needed when there are several)")


def add_quiet(parser):
    parser.add_argument("--quiet", "-q", action="store_true", help="no progress bar")


def import_keras():
    """Import Keras (and its backend) quietly; errors still surface after stderr is restored."""
    from ..backend import quiet_native_stderr

    if "keras" in sys.modules or os.environ.get("TRANSFERKIT_DEBUG"):
        return
    with quiet_native_stderr():
        import keras  # noqa: F401
