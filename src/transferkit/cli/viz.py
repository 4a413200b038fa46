"""`transferkit viz ...`: filters, feature maps, Grad-CAM, embeddings and training curves as PNG files."""

from __future__ import annotations

import argparse

from ..errors import require_extras
from ._options import add_input_size, add_weights, import_keras, integer

EXAMPLES = """  transferkit viz filters vgg16 -o filters.png            # the first convolution
  transferkit viz filters vgg16 --layer block2_conv1 -n 6 -o filters.png
  transferkit viz maps vgg16 cat.jpg -o maps/
  transferkit viz gradcam runs/vgg16-finetune cat.jpg -o cam.png
  transferkit viz gradcam runs/vgg16-finetune data/validation/ -o cams/   # one PNG per image
  transferkit viz gradcam efficientnet_lite0 cat.jpg --class tabby --layer block5c_add -o cam.png
  transferkit viz embedding features/ -o embedding.png [--method tsne]
  transferkit viz history runs/vgg16-finetune
"""


def register(sub):
    p = sub.add_parser("viz", help="Pictures: filters, feature maps, Grad-CAM, embeddings, training curves.",
                       description="Pictures as PNG files.", epilog="examples:\n" + EXAMPLES,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.set_defaults(run=lambda args: p.print_help() or 2)
    vs = p.add_subparsers(dest="viz_command", metavar="PICTURE")

    def add(name, help_, run):
        q = vs.add_parser(name, help=help_, description=help_, epilog="examples:\n" + EXAMPLES,
                          formatter_class=argparse.RawDescriptionHelpFormatter)
        q.set_defaults(run=run)
        return q

    q = add("filters", "Grid of a conv layer's kernels (one row per filter, one column per input channel).", _filters)
    q.add_argument("model", metavar="MODEL")
    q.add_argument("--layer", "-l", default=None, help="a convolution layer, e.g. block1_conv1 "
                   "(default: the first convolution)")
    q.add_argument("-n", type=integer(1), default=6, help="filters to show (default: 6)")
    q.add_argument("-o", "--output", default="filters.png")
    add_weights(q)
    add_input_size(q)

    q = add("maps", "Feature-map grids of chosen layers for one image (one PNG per layer).", _maps)
    q.add_argument("model", metavar="MODEL")
    q.add_argument("image", metavar="IMAGE")
    q.add_argument("--layers", nargs="+", default=None, help="default: the last conv of each block")
    q.add_argument("--channels", type=integer(1), default=64, help="maps per grid (default: 64, an 8 × 8 grid)")
    q.add_argument("-o", "--output", default="maps")
    add_weights(q)
    add_input_size(q)

    q = add("gradcam", "Grad-CAM heat map of one image for a trained run or an ImageNet backbone.", _gradcam)
    q.add_argument("run_or_model", metavar="RUN_OR_MODEL", help="run folder, .keras file or backbone name")
    q.add_argument("image", metavar="IMAGES", help="an image, a folder of images or a CSV with a path column")
    q.add_argument("--class", dest="target", default=None,
                   help="class to explain: a name, any of its synonyms (tabby), or an index (default: predicted)")
    q.add_argument("--layer", "-l", default=None,
                   help="conv layer whose maps are explained (default: the backbone's last)")
    q.add_argument("-o", "--output", default=None,
                   help="PNG for one image (default gradcam.png); folder for many (default gradcam/)")
    add_weights(q)

    q = add("embedding", "2-D projection of extracted features, coloured by label.", _embedding)
    q.add_argument("features", metavar="FEATURES_DIR")
    q.add_argument("--layer", default=None)
    q.add_argument("--method", default="pca", choices=["pca", "tsne"])
    q.add_argument("-o", "--output", default="embedding.png")

    q = add("history", "Training and validation accuracy/loss curves of a run.", _history)
    q.add_argument("run_dir", metavar="RUN_DIR")
    q.add_argument("-o", "--output", default=None, help="default: RUN_DIR/curves.png")


def _filters(args):
    require_extras("transferkit viz", "viz")
    import_keras()
    from ..pictures import filters

    print(filters(args.model, args.layer, args.output, n=args.n, weights=args.weights, input_size=args.input_size))


def _maps(args):
    require_extras("transferkit viz", "viz")
    import_keras()
    from ..pictures import feature_maps

    for path in feature_maps(args.model, args.image, args.output, layers=args.layers, weights=args.weights,
                             input_size=args.input_size, channels=args.channels):
        print(path)


def _gradcam(args):
    require_extras("transferkit viz", "viz")
    import_keras()
    import os

    from ..pictures import gradcam_images

    many = os.path.isdir(args.image) or args.image.lower().endswith(".csv")
    out = args.output or ("gradcam" if many else "gradcam.png")
    for path, name, prob in gradcam_images(args.run_or_model, args.image, out, target=args.target,
                                           weights=args.weights, layer=args.layer):
        print(f"{path}: {name} ({prob:.1%})")


def _embedding(args):
    require_extras("transferkit viz", "viz")
    from ..pictures import embedding

    print(embedding(args.features, args.output, layer=args.layer, method=args.method))


def _history(args):
    require_extras("transferkit viz", "viz")
    from ..pictures import history

    print(history(args.run_dir, args.output))
