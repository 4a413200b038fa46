"""Option definitions shared by several commands, so each means the same everywhere."""

from __future__ import annotations

import argparse
import os
import sys


def add_command(sub, name: str, *, help: str, examples: str, run) -> argparse.ArgumentParser:
    """Add a sub-command whose --help ends with usage examples."""
    parser = sub.add_parser(name, help=help, description=help, epilog="examples:\n" + examples,
                            formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.set_defaults(run=run)
    return parser


def add_model(parser, *, positional: bool = False, default: str | None = None):
    from ..backbones.registry import DEFAULT_MODEL

    default = default or DEFAULT_MODEL
    if positional:
        parser.add_argument("model", metavar="MODEL", help="backbone name (see `transferkit models`)")
    else:
        parser.add_argument("--model", "-m", default=default, help=f"backbone name (default: {default})")


def add_input_size(parser):
    parser.add_argument("--input-size", type=int, default=None, metavar="N",
                        help="square input size in pixels (default: the model's)")


def add_crop(parser):
    parser.add_argument("--crop", default="model", metavar="{model,none,FRACTION}",
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
    parser.add_argument("--batch-size", type=int, default=default, metavar="N", help=f"(default: {default})")


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
