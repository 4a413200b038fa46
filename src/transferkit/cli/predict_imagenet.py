"""`transferkit predict-imagenet`: the top ImageNet classes of each image, with the backbone's own classifier."""

from __future__ import annotations

import sys

from ._options import add_batch_size, add_command, add_model, add_precision, add_weights, import_keras, integer

EXAMPLES = """  transferkit predict-imagenet photos/                      # efficientnet_lite0, offline
  transferkit predict-imagenet cat.jpg --model resnet50 --top 3
"""


def register(sub):
    p = add_command(sub, "predict-imagenet", help="Print the top ImageNet classes of each image.",
                    examples=EXAMPLES, run=run)
    p.add_argument("images", metavar="IMAGES", help="a folder of images or one image")
    add_model(p, default="efficientnet_lite0")
    p.add_argument("--top", "-k", type=integer(1, 1000), default=5, metavar="K", help="classes per image (default: 5)")
    add_weights(p)
    add_batch_size(p, 16)
    add_precision(p)


def run(args) -> int:
    import_keras()
    from ..extract.imagenet import predict_imagenet

    rows, skipped = predict_imagenet(args.images, model=args.model, top=args.top, weights=args.weights,
                                     batch_size=args.batch_size, precision=args.precision)
    for path, best in rows:
        print(path)
        for _, name, prob in best:
            print(f"  {prob:6.1%}  {name}")
    for item in skipped:
        print(f"skipped: {item['path']}: {item['reason']}", file=sys.stderr)
    return 3 if skipped else 0
