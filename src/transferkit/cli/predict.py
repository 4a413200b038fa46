"""`transferkit predict`: classify images with a trained run, written as CSV."""

from __future__ import annotations


from ..errors import plural
from ._options import add_batch_size, add_command, add_quiet, add_run_or_model, add_tta, import_keras

EXAMPLES = """  transferkit predict runs/vgg16-finetune new_photos/ -o predictions.csv
  transferkit predict model.keras photo.jpg other.png more_photos/
  transferkit predict runs/vgg16-finetune list.csv -o predictions.csv   # a CSV with a path column
"""


def register(sub):
    p = add_command(sub, "predict", help="Classify images with a trained run (CSV of class probabilities).",
                    examples=EXAMPLES, run=run)
    add_run_or_model(p)
    p.add_argument("images", metavar="IMAGES", nargs="+",
                   help="folders of images, image files, or CSVs with a path column (several allowed)")
    p.add_argument("-o", "--output", default=None, help="CSV file (default: print to the terminal)")
    add_batch_size(p)
    add_tta(p)
    add_quiet(p)


def run(args) -> int:
    import_keras()
    from ..train import predict

    images = args.images[0] if len(args.images) == 1 else args.images
    rows, skipped = predict(args.run_or_model, images, args.output, batch_size=args.batch_size, unsafe=args.unsafe,
                            tta=args.tta, quiet=args.quiet)
    if args.output is None:
        for r in rows:
            print(f"{r['path']}\t{r['predicted']}\t{max(r['probabilities']):.3f}")
    else:
        print(f"Wrote {plural(len(rows), 'prediction')} to {args.output}")
    return 0  # skipped files: named by the library's warnings, counted on the last line
