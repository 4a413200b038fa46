"""`transferkit label`: label a folder of images on a local page, the model suggesting and choosing what to ask."""

from __future__ import annotations

import inspect

from ..errors import plural, require_extras
from ._options import (SEED, add_batch_size, add_command, add_input_size, add_model, add_precision, add_quiet,
                       add_weights, import_keras, integer, number)

EXAMPLES = """  transferkit label pool/                         # http://127.0.0.1:8000/, answers in labels.csv
  transferkit label pool/ --classes cat,dog -o labels.csv
  transferkit train labels.csv --folds 5          # then train on what you labelled
  transferkit label pool/ --export-predicted predicted.csv --min-confidence 0.95
  transferkit label digits/ --simulate truth.csv --budget 300 --seeds 3   # measure the strategies

POOL: a folder of images. Images in a class sub-folder count as labelled with that class (except in a folder
named unlabelled/); a path,label CSV via --labels adds more. Features are extracted once into
LABELS-features/ and updated when the pool changes. Keys on the page: 1-9 pick a class, Enter accepts the
model's suggestion, s skips, z undoes. Every answer is in the CSV (and its journal) before the next image
shows; running the same command again continues, undo included.
"""


def register(sub):
    from ..label.select import STRATEGIES
    from ..label.session import LabelSession
    from ..label.simulation import simulate

    d = {n: p.default for f in (LabelSession, simulate, LabelSession.export_predicted)
         for n, p in inspect.signature(f).parameters.items()}
    p = add_command(sub, "label", help="Label a folder of images with the model in the loop (a local page), or "
                    "simulate it from known labels.", examples=EXAMPLES, run=run)
    p.add_argument("pool", metavar="POOL", help="folder of images (class sub-folders count as labelled)")
    p.add_argument("-o", "--output", default="labels.csv", metavar="CSV",
                   help="the labels CSV, written after every answer (default: labels.csv)")
    p.add_argument("--classes", default=None, metavar="A,B,...", help="class names to offer from the start")
    p.add_argument("--labels", default=None, metavar="CSV", help="a path,label CSV of images labelled already")
    p.add_argument("--features", default=None, metavar="DIR",
                   help="where the pool's features are cached (default: LABELS-features/ beside the CSV)")
    add_model(p)
    add_input_size(p)
    add_weights(p)
    add_precision(p)
    add_batch_size(p)
    p.add_argument("--strategy", default=d["strategy"], choices=list(STRATEGIES),
                   help=f"which images to ask about (default: {d['strategy']}, the one measured best: the image the "
                        "model is least sure of)")
    p.add_argument("--batch", type=integer(1, 100), default=d["batch"], metavar="N",
                   help=f"images chosen at a time (default: {d['batch']})")
    p.add_argument("--seed", type=SEED, default=d["seed"], help=f"selection's random state (default: {d['seed']})")
    p.add_argument("--host", default="127.0.0.1", help="(default: 127.0.0.1, this machine only)")
    p.add_argument("--port", type=integer(0, 65535), default=8000, help="(default: 8000)")
    p.add_argument("--simulate", default=None, metavar="TRUTH.csv",
                   help="answer from this path,label CSV without a page; writes curve.csv and curve.png")
    p.add_argument("--budget", type=integer(1), default=d["budget"], metavar="N",
                   help=f"--simulate: labels per run (default: {d['budget']})")
    p.add_argument("--seeds", type=integer(1), default=d["seeds"], metavar="K",
                   help=f"--simulate: runs per strategy (default: {d['seeds']})")
    p.add_argument("--simulation-output", default="label-simulation", metavar="DIR",
                   help="--simulate: folder for curve.csv, curve.png, summary.json (default: label-simulation)")
    p.add_argument("--export-predicted", default=None, metavar="OUT.csv",
                   help="write the model's labels for the unlabelled images (and OUT.json: the estimated accuracy)")
    p.add_argument("--min-confidence", type=number(0, 1, what="a probability"), default=d["min_confidence"],
                   metavar="P", help="--export-predicted: only images the model labels with at least this "
                   f"probability (default: {d['min_confidence']})")
    add_quiet(p)


def run(args) -> int:
    from pathlib import Path

    from ..label.run import check_options, open_session, pool_features
    from ..label.store import read_label_csv

    check_options(strategy=args.strategy, batch=args.batch, budget=args.budget, seeds=args.seeds,
                  min_confidence=args.min_confidence)
    page = args.simulate is None and args.export_predicted is None
    require_extras("transferkit label", "label")  # before anything is written
    sock = None
    if page:
        from ..serve.address import bind

        sock = bind(args.host, args.port)  # a port in use is one line (exit status 4) before the extraction
    if args.simulate is not None and not Path(args.simulate).is_file():
        from ..errors import TransferkitError

        raise TransferkitError(f"--simulate {args.simulate!r} does not exist; pass a path,label CSV of the pool.")
    for option, table in (("--labels", args.labels), ("--simulate", args.simulate)):
        if table is not None:
            read_label_csv(table, option)  # a CSV without path,label is refused before the extraction
    import_keras()
    fs = pool_features(args.pool, args.features, out=args.output, model=args.model, input_size=args.input_size,
                       weights=args.weights, precision=args.precision, batch_size=args.batch_size, quiet=args.quiet)
    if args.simulate is not None:
        return _simulate(args, fs)
    classes = [c.strip() for c in args.classes.split(",") if c.strip()] if args.classes else None
    session = open_session(fs, args.output, labels_csv=args.labels, classes=classes, strategy=args.strategy,
                           batch=args.batch, seed=args.seed)
    if args.export_predicted is not None:
        s = session.export_predicted(args.export_predicted, args.min_confidence)
        estimate = ("no estimate (no labelled image reaches that confidence out of fold)"
                    if s["estimated_accuracy"] is None else
                    f"estimated accuracy {s['estimated_accuracy']:.1%} (from {s['estimated_from']} labelled images "
                    "predicted out of fold with that confidence)")
        print(f"Wrote {args.export_predicted}: {plural(s['written'], 'image')} of {s['unlabelled']} unlabelled with "
              f"confidence >= {args.min_confidence:g}; {estimate}.")
        return 0
    from ..label.app import serve_label_page

    serve_label_page(session, host=args.host, port=args.port, sock=sock, quiet=args.quiet)
    return 0


def _simulate(args, fs) -> int:
    from pathlib import Path

    import numpy as np

    from ..label.simulation import read_truth, simulate, write_simulation

    root = Path(fs.root)
    rows, labels, classes = read_truth(args.simulate, [str(root / p) for p in fs.paths])
    strategies = ("random",) if args.strategy == "random" else ("random", args.strategy)
    sim = simulate(np.asarray(fs.matrix, np.float32)[rows], labels, classes, budget=args.budget,
                   strategies=strategies, seeds=args.seeds, batch=args.batch)
    written = write_simulation(sim, args.simulation_output)
    full = sim.summary["full_accuracy_mean"]
    print(f"{len(rows)} images, {len(classes)} classes; {sim.test_size} held out. Every label ({sim.pool_size}): "
          f"{full:.1%} accuracy. Labels to reach {sim.summary['reach']:.0%} of it, mean of {args.seeds} seeds:")
    for name, n in sim.summary["labels_to_reach"].items():
        print(f"  {name:>14}: " + (str(n) if n is not None else f"not within {args.budget}"))
    print("Wrote " + ", ".join(str(p) for p in written))
    return 0
