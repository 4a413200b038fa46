"""`transferkit train`: transfer learning on a train/ validation/ <class>/ folder, three strategies."""

from __future__ import annotations

from dataclasses import fields

from ..backbones.registry import HEAD_POOLINGS
from ..errors import plural
from ..train.report import repeated_runs
from ..train.config import CLASS_WEIGHTS, HEAD_RECIPES, OPTIMIZERS, SCHEDULES, STRATEGIES, TrainConfig
from ..errors import require_extras
from ._options import (add_augmentation, add_batch_size, add_command, add_crop, add_input_size, add_model,
                       add_precision, add_quiet, add_weights, import_keras)

EXAMPLES = """  transferkit train cats_and_dogs_small/ --model vgg16 --input-size 150 --strategy features
  transferkit train cats_and_dogs_small/ --model vgg16 --input-size 150 --strategy frozen --epochs 30
  transferkit train cats_and_dogs_small/ --model vgg16 --input-size 150 --strategy finetune \\
      --epochs 30 --finetune-epochs 100 --finetune-learning-rate 1e-5
  transferkit train photos/ --validation-split 0.2 --patience 5      # EfficientNet-Lite0, pooled features
  transferkit train elpv/ --model efficientnet_lite2 --pooling avg --class-weight balanced
  transferkit train photos/ --folds 5          # 5 stratified folds: accuracy as mean ± std
  transferkit train elpv/ --seeds 3            # the same split, seeds 0, 1, 2

Each run writes runs/<name>/: config.json, history.csv, curves.png, model.keras, metrics.json,
confusion.png, top_losses.png.
"""


# the defaults live in TrainConfig; the options show them
DEFAULT = {f.name: f.default for f in fields(TrainConfig)}


def register(sub):
    d = DEFAULT
    p = add_command(sub, "train", help="Train a classifier by transfer learning (features | frozen | finetune).",
                    examples=EXAMPLES, run=run)
    p.add_argument("data", metavar="DATA", help="folder with train/<class>/ and validation/<class>/ (test/ optional)")
    add_model(p)
    p.add_argument("--strategy", "-s", default=d["strategy"], choices=STRATEGIES,
                   help="features: cached conv features + dense head (fast); frozen: frozen base + augmentation; "
                        f"finetune: frozen stage then the top block(s) unfrozen (default: {d['strategy']})")
    add_input_size(p)
    add_crop(p)
    add_weights(p)
    p.add_argument("--epochs", type=int, default=d["epochs"], help=f"epochs of the head stage (default: {d['epochs']})")
    p.add_argument("--finetune-epochs", type=int, default=d["finetune_epochs"],
                   help="epochs of the unfrozen stage (default: --epochs)")
    add_batch_size(p, d["batch_size"])
    flat, pooled = HEAD_RECIPES["flatten"], HEAD_RECIPES["avg"]
    p.add_argument("--learning-rate", type=float, default=d["learning_rate"],
                   help=f"head stage (default by the head: {flat.learning_rate:g} for a flattened map, "
                        f"{pooled.learning_rate:g} for a pooled vector; `transferkit lr-find` suggests one)")
    p.add_argument("--finetune-learning-rate", type=float, default=d["finetune_learning_rate"],
                   help=f"unfrozen stage (default by the head: {flat.finetune_learning_rate:g} flattened, "
                        f"{pooled.finetune_learning_rate:g} pooled)")
    p.add_argument("--optimizer", default=d["optimizer"], choices=OPTIMIZERS,
                   help=f"(default by the head: {flat.optimizer} flattened, {pooled.optimizer} pooled)")
    add_augmentation(p)
    p.add_argument("--hidden", type=int, default=d["hidden"],
                   help=f"units of the head's hidden layer, 0: none (default: {d['hidden']})")
    p.add_argument("--dropout", type=float, default=d["dropout"], help=f"(default: {d['dropout']})")
    p.add_argument("--layer", default=None, metavar="LAYER",
                   help="the base's layer the head sits on (default: the end of the convolutional base)")
    p.add_argument("--pooling", default=None, choices=HEAD_POOLINGS,
                   help="how the head turns the map into a vector (default: the model's: flatten for VGG as in the "
                        "tutorial, avg for the others)")
    p.add_argument("--patience", type=int, default=None, help="early stopping patience, restoring the best weights")
    p.add_argument("--schedule", default=d["schedule"], choices=SCHEDULES,
                   help=f"each stage's learning rate: constant, cosine decay over its epochs, or onecycle (warm-up "
                        f"over the first quarter, then cosine down; per step) (default: {d['schedule']})")
    p.add_argument("--label-smoothing", type=float, default=d["label_smoothing"], metavar="EPS",
                   help=f"move targets EPS towards uniform, e.g. 0.1 (default: {d['label_smoothing']:g}, off)")
    p.add_argument("--mixup", type=float, default=d["mixup"], metavar="ALPHA",
                   help=f"blend training examples pairwise, lambda ~ Beta(ALPHA, ALPHA), e.g. 0.2 (default: "
                        f"{d['mixup']:g}, off)")
    p.add_argument("--cutmix", type=float, default=d["cutmix"], metavar="ALPHA",
                   help="paste a box of another training image into each (CutMix), targets weighted by area, "
                        f"e.g. 1.0; frozen/finetune only (default: {d['cutmix']:g}, off; with --mixup: one "
                        "of the two per batch)")
    p.add_argument("--discriminative", type=float, default=d["discriminative"], metavar="RATIO",
                   help="finetune: the lowest unfrozen block trains at the rate / RATIO, the top one at the rate, "
                        f"geometric between, e.g. 10 (default: {d['discriminative']:g}, one rate)")
    p.add_argument("--gradual", action="store_true",
                   help="finetune: unfreeze one block more per stage, top first, up to --unfreeze-blocks "
                        "(the finetune epochs shared among the stages)")
    p.add_argument("--class-weight", default=d["class_weight"], choices=CLASS_WEIGHTS,
                   help=f"balanced: weight classes by inverse frequency, for imbalanced folders (default: "
                        f"{d['class_weight']})")
    p.add_argument("--validation-split", type=float, default=None, metavar="F",
                   help="hold out this fraction of train/ when there is no validation/ folder")
    p.add_argument("--unfreeze-blocks", type=int, default=None, metavar="N",
                   help="finetune: unfreeze the top N blocks (default: the registry's)")
    p.add_argument("--unfreeze-from", default=None, metavar="LAYER", help="finetune: unfreeze from this layer on")
    p.add_argument("--init-from", default=None, metavar="RUN",
                   help="finetune: start from a finished features/frozen run (skips the frozen stage)")
    p.add_argument("--seed", type=int, default=d["seed"], help=f"(default: {d['seed']})")
    p.add_argument("--folds", type=int, default=d["folds"], metavar="K",
                   help="train K runs on stratified folds of all labelled images (train/ and validation/ together, "
                        "or a plain <class>/ folder); report accuracy per fold and mean ± std")
    p.add_argument("--seeds", type=int, default=d["seeds"], metavar="N",
                   help="repeat the run with N seeds (--seed, --seed+1, ...) on the same split; mean ± std")
    add_precision(p)
    p.add_argument("--runs", default="runs", metavar="DIR", help="folder of run folders (default: runs)")
    p.add_argument("--name", default=None, help="run name (default: MODEL-STRATEGY-TIMESTAMP)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing run folder of the same name")
    p.add_argument("--resume", action="store_true",
                   help="continue an interrupted run of this --name after its last finished epoch")
    add_quiet(p)


def run(args) -> int:
    options = {f.name: getattr(args, f.name) for f in fields(TrainConfig) if hasattr(args, f.name)}
    config = TrainConfig(**options)
    config.validate()  # every setting, before Keras loads
    require_extras("transferkit train (curves.png, confusion.png)", "viz",
                   *(["openvino"] if args.precision == "int8" else []))
    import_keras()
    from ..train import train

    print(config.resolved().describe_optimizer(config), flush=True)
    result = train(args.data, config, runs_root=args.runs, name=args.name, overwrite=args.overwrite,
                   resume=args.resume, quiet=args.quiet)
    m = result.metrics
    for entry in repeated_runs(m):
        print(f"{entry['run']}: validation accuracy {entry['accuracy']:.1%}, loss {entry['loss']:.4f} "
              f"(n={entry['n']})")
    if repeated_runs(m):
        print(f"validation accuracy {m['accuracy_mean']:.1%} ± {m['accuracy_std']:.1%}, loss {m['loss_mean']:.4f} "
              f"± {m['loss_std']:.4f} (mean ± std of {plural(len(repeated_runs(m)), 'run')})")
    else:
        for stage in result.stages:
            print(f"stage {stage['stage']}: {describe_epochs(stage)}")
        print(f"validation accuracy {m['accuracy']:.1%}, loss {m['loss']:.4f} (n={m['n']})")
    print(f"run folder: {result.run_dir}")
    return 0  # skipped files: named by the library's warnings, counted on the last line


def describe_epochs(stage: dict) -> str:
    """ "3 epochs (run epochs 4-6), kept epoch 5": epochs are numbered over the whole run, across stages."""
    n, first, best = stage.get("epochs", 0), stage.get("first_epoch", 1), stage.get("best_epoch")
    if not n:
        return "no epochs (weights taken as they are)"
    span = f"run epoch {first}" if n == 1 else f"run epochs {first}-{first + n - 1}"
    return f"{plural(n, 'epoch')} ({span})" + (f", kept epoch {best}" if best else "")
