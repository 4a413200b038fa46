"""`transferkit evaluate`: metrics and plots of a trained run on any labelled folder."""

from __future__ import annotations

from ..errors import require_extras
from ._options import add_batch_size, add_command, add_run_or_model, add_tta, import_keras

EXAMPLES = """  transferkit evaluate runs/vgg16-finetune data/test -o eval/  # eval/predictions.csv: a row per image
  transferkit evaluate runs/vgg16-finetune labels.csv --tta hflip  # a CSV: path,label
"""


def register(sub):
    p = add_command(sub, "evaluate", help="Evaluate a trained run on a labelled <class>/ folder.",
                    examples=EXAMPLES, run=run)
    add_run_or_model(p)
    p.add_argument("data", metavar="DATA", help="folder with one sub-folder per class, or a CSV with path,label "
                   "columns (relative paths from the CSV's folder)")
    p.add_argument("-o", "--output", default=None, help="folder for metrics.json, predictions.csv (path, true, "
                   "predicted, loss, probabilities), confusion.png, top_losses.png")
    add_batch_size(p)
    add_tta(p)


def run(args) -> int:
    if args.output:
        require_extras("transferkit evaluate -o (confusion.png, top_losses.png)", "viz")
    import_keras()
    from ..train import evaluate

    m = evaluate(args.run_or_model, args.data, args.output, batch_size=args.batch_size, unsafe=args.unsafe,
                 tta=args.tta)
    extra = "".join(f", top-{k} {v:.1%}" for k, v in m["top_k_accuracy"].items())
    if m["roc_auc"] is not None:
        extra += f", ROC-AUC {m['roc_auc']:.4f}" + ("" if len(m["class_names"]) == 2 else " (one-vs-rest mean)")
    print(f"accuracy {m['accuracy']:.1%}{extra}, loss {m['loss']:.4f}, n={m['n']}")
    for name, c in m["per_class"].items():
        print(f"  {name:<20} precision {c['precision']:.3f}  recall {c['recall']:.3f}  f1 {c['f1']:.3f}  "
              f"n={c['support']}")
    return 0  # skipped files: named by the library's warnings, counted on the last line
