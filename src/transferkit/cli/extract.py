"""`transferkit extract`: features of every image in a folder, written as resumable Parquet shards."""

from __future__ import annotations

import sys
from pathlib import Path

import inspect

from ..backbones.registry import POOLINGS
from ..data.folder import LABEL_MODES
from ..errors import plural
from ..extract.engines import ENGINES
from ..extract.openvino import RUNTIMES
from ..extract.plan import FORMATS
from ..extract.runner import extract
from ..errors import require_extras
from ._options import (add_batch_size, add_command, add_crop, add_input_size, add_model, add_precision, add_quiet,
                       add_weights, import_keras, integer, number)

EXAMPLES = """  transferkit extract photos/ --model vgg16 --layer fc2 -o features/
  transferkit extract photos/ --model resnet50 --pooling avg --precision int8 -o f8/     # OpenVINO int8
  transferkit extract data/train --model vgg16 --layer block5_pool --input-size 150 -o feats/
  transferkit extract photos/ --model resnet50 --layer avg_pool --layer conv4_block6_out --pooling avg -o f/
  transferkit extract photos/ --model efficientnet_lite0 --format npy -o f/   # also features.npy
  transferkit extract /shared/images --engine ray --address auto --gpus-per-worker 1 -o /shared/feats/
  transferkit extract photos/ -o features/ --update      # only new and changed photos; removed ones dropped

Re-running the same command resumes an interrupted run. Exit status 3 means some images were skipped
(listed with their reason in OUT/manifest.json).
"""


def register(sub):
    p = add_command(sub, "extract", help="Extract a feature vector (or map) per image into a folder.",
                    examples=EXAMPLES, run=run, resumes=True)
    p.add_argument("images", metavar="IMAGES",
                   help="folder of images (class sub-folders give labels), one image, or a CSV with path[,label]")
    p.add_argument("-o", "--output", required=True, metavar="OUT", help="output folder (shards + manifest.json)")
    add_model(p)
    p.add_argument("--layer", "-l", action="append", dest="layers", metavar="NAME",
                   help="layer to extract; repeat for several (default: the model's pre-logits layer)")
    default = {name: p.default for name, p in inspect.signature(extract).parameters.items()}
    p.add_argument("--pooling", default=default["pooling"], choices=POOLINGS,
                   help="pooling of 4-D feature maps (default: none keeps h × w × c)")
    add_input_size(p)
    add_crop(p)
    add_weights(p)
    add_batch_size(p)
    add_precision(p)
    p.add_argument("--labels", default=default["labels"], choices=LABEL_MODES,
                   help="inferred: class sub-folders are labels; none: all images unlabelled")
    p.add_argument("--format", default=default["format"], choices=FORMATS,
                   help="npy also writes features.npy, labels.npy and paths.txt")
    p.add_argument("--shard-size", type=integer(1), default=default["shard_size"], metavar="N",
                   help=f"images per shard (default: {default['shard_size']})")
    p.add_argument("--workers", type=integer(1), default=None, metavar="N",
                   help="local: decoding threads (default: one per core); ray: model replicas (default: 2, or one "
                        "per GPU with --gpus-per-worker)")
    p.add_argument("--engine", default=default["engine"], choices=list(ENGINES),
                   help="local threads, or Ray Data across a cluster (pip install 'transferkit[ray]')")
    p.add_argument("--address", default=None, help="ray: cluster address (default: start a local Ray instance)")
    p.add_argument("--gpus-per-worker", type=number(0), default=0.0, metavar="F", help="ray: GPUs per model replica")
    p.add_argument("--runtime", default=None, choices=RUNTIMES,
                   help="keras (default), or openvino (also for float32/bfloat16; --precision int8 implies it; "
                        "pip install 'transferkit[openvino]')")
    p.add_argument("--calibration", type=integer(1), default=default["calibration"], metavar="N",
                   help="int8: calibrate the quantisation on a seeded sample of N of the images "
                        f"(default: {default['calibration']})")
    p.add_argument("--overwrite", action="store_true", help="discard an existing output instead of resuming")
    p.add_argument("--update", action="store_true",
                   help="bring an existing OUT to the folder's current state: extract new and changed files, drop "
                        "removed ones, keep every other row as it is")
    add_quiet(p)


def run(args) -> int:
    require_extras("transferkit extract" + (" --precision int8" if args.precision == "int8" else
                                            " --runtime openvino" if args.runtime == "openvino" else ""),
                   *(["openvino"] if "int8" in (args.precision,) or args.runtime == "openvino" else []),
                   *(["ray"] if args.engine == "ray" else []))
    import_keras()
    fs = extract(args.images, args.output, model=args.model, layers=args.layers, pooling=args.pooling,
                 input_size=args.input_size, crop=args.crop, weights=args.weights, batch_size=args.batch_size,
                 precision=args.precision, labels=args.labels, shard_size=args.shard_size, format=args.format,
                 overwrite=args.overwrite, workers=args.workers, quiet=args.quiet, load=False,
                 engine=args.engine, address=args.address, gpus_per_worker=args.gpus_per_worker,
                 runtime=args.runtime, calibration=args.calibration, update=args.update)
    if args.update:
        from ..extract.update import describe

        print(f"updated {args.output}: {describe(fs.manifest['updates'][-1])}")
    return report(fs, args.output)


def report(fs, out) -> int:
    """Print the summary of a finished extraction (skipped files are named by the library's warnings)."""
    m = fs.manifest
    rows = m["counts"]["rows"]
    shapes = ", ".join(f"{name} {rows} × {' × '.join(map(str, info['shape']))}" for name, info in m["layers"].items())
    s = m["settings"]
    runtime = s.get("runtime", s["backend"])
    print(f"{s['model']} ({s['precision']}, {runtime}; {fs.input_config.describe()}): {shapes}")
    out = Path(out)  # "feats/" prints as feats, and feats/manifest.json without a double slash
    labels = plural(len(fs.class_names), "class", "classes") if fs.class_names else "unlabelled"
    print(f"Wrote {plural(rows, 'row')} ({labels}) to {out}")
    ignored = m.get("ignored_files", {}).get("count", 0)
    if ignored:
        example = m["ignored_files"]["examples"][0]
        print(f"Ignored 1 file that is not an image by its extension: {example!r}" if ignored == 1 else
              f"Ignored {ignored} files that are not images by their extension (e.g. {example!r})", file=sys.stderr)
    if fs.skipped:  # each one was named on a "skipped:" line; the command's last line counts them
        print(f"Skipped {len(fs.skipped)} of {plural(m['counts']['images'], 'image')}; all listed in "
              f"{out / 'manifest.json'}", file=sys.stderr)
    return 0
