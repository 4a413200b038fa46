"""`transferkit train`: transfer learning on a train/ validation/ <class>/ folder, three strategies."""

from __future__ import annotations

from ..backbones.registry import HEAD_POOLINGS
from ..train.config import CLASS_WEIGHTS, OPTIMIZERS, SCHEDULES, STRATEGIES
from ._options import (add_batch_size, add_command, add_crop, add_input_size, add_model, add_precision, add_quiet,
                       add_weights, import_keras)

EXAMPLES = """  transferkit train cats_and_dogs_small/ --model vgg16 --input-size 150 --strategy features
  transferkit train cats_and_dogs_small/ --model vgg16 --input-size 150 --strategy frozen --epochs 30
  transferkit train cats_and_dogs_small/ --model vgg16 --input-size 150 --strategy finetune \\
      --epochs 30 --finetune-epochs 100 --finetune-learning-rate 1e-5
  transferkit train photos/ --validation-split 0.2 --patience 5      # EfficientNet-Lite0, pooled features
  transferkit train elpv/ --model efficientnet_lite2 --pooling avg --class-weight balanced

Each run writes runs/<name>/: config.json, history.csv, curves.png, model.keras, metrics.json,
confusion.png, top_losses.png.
"""


def register(sub):
    p = add_command(sub, "train", help="Train a classifier by transfer learning (features | frozen | finetune).",
                    examples=EXAMPLES, run=run)
    p.add_argument("data", metavar="DATA", help="folder with train/<class>/ and validation/<class>/ (test/ optional)")
    add_model(p)
    p.add_argument("--strategy", "-s", default="features", choices=STRATEGIES,
                   help="features: cached conv features + dense head (fast); frozen: frozen base + augmentation; "
                        "finetune: frozen stage then the top block(s) unfrozen (default: features)")
    add_input_size(p)
    add_crop(p)
    add_weights(p)
    p.add_argument("--epochs", type=int, default=30, help="epochs of the head stage (default: 30)")
    p.add_argument("--finetune-epochs", type=int, default=None, help="epochs of the unfrozen stage (default: --epochs)")
    add_batch_size(p, 20)
    p.add_argument("--learning-rate", type=float, default=2e-5, help="head stage (default: 2e-5, RMSprop)")
    p.add_argument("--finetune-learning-rate", type=float, default=1e-5, help="unfrozen stage (default: 1e-5)")
    p.add_argument("--optimizer", default="rmsprop", choices=OPTIMIZERS)
    p.add_argument("--no-augment", dest="augment", action="store_false", help="no random transforms (image strategies)")
    p.add_argument("--hidden", type=int, default=256, help="units of the head's hidden layer (0: none)")
    p.add_argument("--dropout", type=float, default=0.5)
    p.add_argument("--layer", default=None, metavar="LAYER",
                   help="the base's layer the head sits on (default: the end of the convolutional base)")
    p.add_argument("--pooling", default=None, choices=HEAD_POOLINGS,
                   help="how the head turns the map into a vector (default: the model's: flatten for VGG as in the "
                        "tutorial, avg for the others)")
    p.add_argument("--patience", type=int, default=None, help="early stopping patience, restoring the best weights")
    p.add_argument("--schedule", default="constant", choices=SCHEDULES,
                   help="each stage's learning rate: constant, or cosine decay over its epochs (default: constant)")
    p.add_argument("--class-weight", default="none", choices=CLASS_WEIGHTS,
                   help="balanced: weight classes by inverse frequency, for imbalanced folders (default: none)")
    p.add_argument("--validation-split", type=float, default=None, metavar="F",
                   help="hold out this fraction of train/ when there is no validation/ folder")
    p.add_argument("--unfreeze-blocks", type=int, default=None, metavar="N",
                   help="finetune: unfreeze the top N blocks (default: the registry's)")
    p.add_argument("--unfreeze-from", default=None, metavar="LAYER", help="finetune: unfreeze from this layer on")
    p.add_argument("--init-from", default=None, metavar="RUN",
                   help="finetune: start from a finished features/frozen run (skips the frozen stage)")
    p.add_argument("--seed", type=int, default=0)
    add_precision(p)
    p.add_argument("--runs", default="runs", metavar="DIR", help="folder of run folders (default: runs)")
    p.add_argument("--name", default=None, help="run name (default: MODEL-STRATEGY-TIMESTAMP)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing run folder of the same name")
    p.add_argument("--resume", action="store_true",
                   help="continue an interrupted run of this --name after its last finished epoch")
    add_quiet(p)


def run(args) -> int:
    import_keras()
    from dataclasses import fields

    from ..train import TrainConfig, train

    options = {f.name: getattr(args, f.name) for f in fields(TrainConfig) if hasattr(args, f.name)}
    config = TrainConfig(**options)
    result = train(args.data, config, runs_root=args.runs, name=args.name, overwrite=args.overwrite,
                   resume=args.resume, quiet=args.quiet)
    m = result.metrics
    for stage in result.stages:
        best = f", best epoch {stage['best_epoch']} kept" if stage.get("best_epoch") else ""
        print(f"stage {stage['stage']}: {stage['epochs']} epochs{best}")
    print(f"validation accuracy {m['accuracy']:.1%}, loss {m['loss']:.4f} (n={m['n']})")
    print(f"run folder: {result.run_dir}")
    return 3 if result.config["skipped"] else 0
