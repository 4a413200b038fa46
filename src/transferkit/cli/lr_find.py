"""`transferkit lr-find`: the learning-rate finder for the head stage, or for a run's unfrozen stage."""

from __future__ import annotations

import inspect

from ..train.config import OPTIMIZERS
from ..train.lr_find import lr_find
from ..errors import require_extras
from ._options import (SEED, add_augmentation, add_batch_size, add_command, add_crop, add_input_size, add_model,
                       add_precision, add_quiet, add_weights, import_keras, integer, number)

EXAMPLES = """  transferkit lr-find data/ -o lr.png                         # the head stage of the default model
  transferkit lr-find data/ --model vgg16 --input-size 150 -o lr.png
  transferkit lr-find data/ --init-from runs/lite0-features --unfreeze-blocks 3 -o lr_ft.png   # unfrozen stage

Prints the sweep and `suggested learning rate: X`; pass X as --learning-rate (head stage) or
--finetune-learning-rate (unfrozen stage) to `transferkit train`.
"""


def register(sub):
    default = {name: p.default for name, p in inspect.signature(lr_find).parameters.items()}
    p = add_command(sub, "lr-find", help="Sweep the learning rate and suggest one (fastai's learning-rate finder).",
                    examples=EXAMPLES, run=run, resumes=True)
    p.add_argument("data", metavar="DATA", help="folder with train/<class>/ (and validation/), as for train")
    p.add_argument("-o", "--output", default=None, metavar="PNG", help="the loss curve (default: none)")
    add_model(p)
    add_input_size(p)
    add_crop(p)
    add_weights(p)
    add_batch_size(p, 20)
    p.add_argument("--optimizer", default=None, choices=OPTIMIZERS, help="(default: the head's, as train chooses)")
    p.add_argument("--pooling", default=None, help="the head's pooling, as for train (default: the model's)")
    p.add_argument("--init-from", default=None, metavar="RUN",
                   help="sweep this finished run's unfrozen stage instead of the head stage")
    add_augmentation(p)
    p.add_argument("--unfreeze-blocks", type=integer(1), default=None, metavar="N",
                   help="with --init-from (default: the registry's)")
    p.add_argument("--validation-split", type=number(0, 1, low_open=True, high_open=True, what="a fraction"),
                   default=None, metavar="F", help="without a validation/ folder, as for train")
    p.add_argument("--steps", type=integer(2), default=default["steps"], help=f"(default: {default['steps']})")
    p.add_argument("--start", type=number(0, low_open=True), default=default["start"],
                   help=f"first rate (default: {default['start']:g})")
    p.add_argument("--end", type=number(0, low_open=True), default=default["end"],
                   help=f"last rate (default: {default['end']:g})")
    p.add_argument("--seed", type=SEED, default=0)
    add_precision(p)
    p.add_argument("--runs", default="runs", metavar="DIR", help="where the feature cache lives (default: runs)")
    add_quiet(p)


def run(args) -> int:
    if args.output:
        require_extras("transferkit lr-find -o (the loss curve)", "viz")
    import_keras()
    options = {k: getattr(args, k) for k in ("model", "input_size", "crop", "weights", "batch_size", "optimizer",
                                             "pooling", "unfreeze_blocks", "validation_split", "seed", "precision",
                                             "augmentation", "augment")}
    result = lr_find(args.data, init_from=args.init_from, start=args.start, end=args.end, steps=args.steps,
                     out=args.output, runs_root=args.runs, quiet=args.quiet, **options)
    print(result.summary())
    if result.plot is not None:
        print(f"loss curve: {result.plot}")
    print(f"suggested learning rate: {result.suggestion:.2e}")
    return 0
