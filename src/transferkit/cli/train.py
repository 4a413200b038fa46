"""`transferkit train`: transfer learning on a train/ validation/ <class>/ folder, three strategies."""

from __future__ import annotations

from ._options import (add_batch_size, add_command, add_input_size, add_model, add_precision, add_quiet,
                       add_weights, import_keras)

EXAMPLES = """  transferkit train cats_and_dogs_small/ --model vgg16 --input-size 150 --strategy features
  transferkit train cats_and_dogs_small/ --model vgg16 --input-size 150 --strategy frozen --epochs 30
  transferkit train cats_and_dogs_small/ --model vgg16 --input-size 150 --strategy finetune \\
      --epochs 30 --finetune-epochs 100 --finetune-learning-rate 1e-5
  transferkit train photos/ --model efficientnet_lite0 --validation-split 0.2 --patience 5

Each run writes runs/<name>/: config.json, history.csv, curves.png, model.keras, metrics.json,
confusion.png, top_losses.png.
"""


def register(sub):
    p = add_command(sub, "train", help="Train a classifier by transfer learning (features | frozen | finetune).",
                    examples=EXAMPLES, run=run)
    p.add_argument("data", metavar="DATA", help="folder with train/<class>/ and validation/<class>/ (test/ optional)")
    add_model(p)
    p.add_argument("--strategy", "-s", default="features", choices=["features", "frozen", "finetune"],
                   help="features: cached conv features + dense head (fast); frozen: frozen base + augmentation; "
                        "finetune: frozen stage then the top block(s) unfrozen (default: features)")
    add_input_size(p)
    add_weights(p)
    p.add_argument("--epochs", type=int, default=30, help="epochs of the head stage (default: 30)")
    p.add_argument("--finetune-epochs", type=int, default=None, help="epochs of the unfrozen stage (default: --epochs)")
    add_batch_size(p, 20)
    p.add_argument("--learning-rate", type=float, default=2e-5, help="head stage (default: 2e-5, RMSprop)")
    p.add_argument("--finetune-learning-rate", type=float, default=1e-5, help="unfrozen stage (default: 1e-5)")
    p.add_argument("--optimizer", default="rmsprop", choices=["rmsprop", "adam", "sgd", "adamw"])
    p.add_argument("--no-augment", dest="augment", action="store_false", help="no random transforms (image strategies)")
    p.add_argument("--hidden", type=int, default=256, help="units of the head's hidden layer (0: none)")
    p.add_argument("--dropout", type=float, default=0.5)
    p.add_argument("--patience", type=int, default=None, help="early stopping patience, restoring the best weights")
    p.add_argument("--class-weight", default=None, choices=["balanced", "none"], help="for imbalanced folders")
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
    from ..train import train

    result = train(args.data, model=args.model, strategy=args.strategy, runs_root=args.runs, name=args.name,
                   input_size=args.input_size, weights=args.weights, epochs=args.epochs,
                   finetune_epochs=args.finetune_epochs, batch_size=args.batch_size, learning_rate=args.learning_rate,
                   finetune_learning_rate=args.finetune_learning_rate, optimizer=args.optimizer,
                   augment=args.augment, hidden=args.hidden, dropout=args.dropout, patience=args.patience,
                   class_weight=args.class_weight, validation_split=args.validation_split,
                   unfreeze_blocks=args.unfreeze_blocks, unfreeze_from=args.unfreeze_from,
                   init_from=args.init_from, seed=args.seed,
                   precision=args.precision, overwrite=args.overwrite, resume=args.resume, quiet=args.quiet)
    m = result.metrics
    for stage in result.stages:
        print(f"stage {stage['stage']}: {stage['epochs']} epochs")
    print(f"validation accuracy {m['accuracy']:.1%}, loss {m['loss']:.4f} (n={m['n']})")
    print(f"run folder: {result.run_dir}")
    return 3 if result.config["skipped"] else 0
