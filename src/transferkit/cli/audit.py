"""`transferkit audit`: what is wrong with a labelled image folder — label issues, leaks, duplicates, bad files."""

from __future__ import annotations

import inspect

from ..audit import ISSUES, audit
from ..errors import plural
from ..errors import require_extras
from ._options import (SEED, add_batch_size, add_command, add_crop, add_input_size, add_model, add_precision,
                       add_quiet, add_weights, import_keras, integer, number)

EXAMPLES = """  transferkit audit data/ -o audit/                  # train/ validation/ <class>/, 5 folds
  transferkit audit photos/ --folds 10 -o audit/      # a plain <class>/ folder
  transferkit audit labels.csv -o audit/ --write-csv clean.csv --relabel
  transferkit train clean.csv --folds 5               # then train on what is left

Writes OUT/issues.csv (path,split,issue,score,given,suggested,other: one row per finding), OUT/audit.html (one
offline page, a section per kind) and OUT/summary.json. Your files are only read, never moved or deleted.
"""


def register(sub):
    default = {name: p.default for name, p in inspect.signature(audit).parameters.items()}
    p = add_command(sub, "audit", help="Find label issues, train/validation leaks, near-duplicates, outliers and "
                    "bad files in a labelled image folder.", examples=EXAMPLES, run=run, resumes=True)
    p.add_argument("data", metavar="DATA", help="train/ validation/ <class>/ folder, a <class>/ folder, a "
                   "path,label CSV, or a labelled feature folder (extracted or imported)")
    p.add_argument("-o", "--output", default=default["out"], metavar="DIR",
                   help=f"folder for issues.csv, audit.html, summary.json (default: {default['out']})")
    add_model(p)
    p.add_argument("--folds", type=integer(2), default=default["folds"], metavar="K",
                   help=f"stratified folds of the out-of-fold probabilities (default: {default['folds']})")
    add_input_size(p)
    add_crop(p)
    add_weights(p)
    add_precision(p)
    add_batch_size(p, default["batch_size"])
    p.add_argument("--threshold", type=number(0, 1, low_open=True, what="a cosine similarity"),
                   default=default["threshold"], metavar="COS",
                   help=f"feature similarity from which two images may be near-duplicates (default: "
                        f"{default['threshold']})")
    p.add_argument("--min-size", type=integer(1), default=default["min_size"], metavar="PX",
                   help=f"report images whose shorter side is below this (default: {default['min_size']})")
    p.add_argument("--runs", default=str(default["runs_root"]), metavar="DIR",
                   help="where the feature cache lives, shared with `transferkit train` (default: runs)")
    p.add_argument("--seed", type=SEED, default=default["seed"], help=f"the folds (default: {default['seed']})")
    p.add_argument("--write-csv", default=None, metavar="FILE",
                   help="also write a path,label CSV of the images without findings (train accepts it)")
    p.add_argument("--relabel", action="store_true",
                   help="with --write-csv: keep label-issue images, with the suggested label")
    add_quiet(p)


def run(args) -> int:
    require_extras("transferkit audit", "audit")  # before the output folder exists
    import_keras()
    findings = audit(args.data, args.output, model=args.model, folds=args.folds, input_size=args.input_size,
                     crop=args.crop, weights=args.weights, precision=args.precision, threshold=args.threshold,
                     min_size=args.min_size, runs_root=args.runs, seed=args.seed, write_csv=args.write_csv,
                     relabel=args.relabel, batch_size=args.batch_size, quiet=args.quiet)
    s = findings.summary
    print(f"Audited {plural(s['images'], 'image')} in {plural(len(s['classes']), 'class', 'classes')} with "
          f"{s['model']} features ({s['precision']}) in {s['seconds']:.0f} s; a logistic regression on them: "
          f"{s['out_of_fold_accuracy_mean']:.1%} ± {s['out_of_fold_accuracy_std']:.1%} out of fold "
          f"({s['folds']} folds)")
    counts = findings.counts()
    width = max(map(len, ISSUES))
    for kind, why in ISSUES.items():
        print(f"  {kind:<{width}} {counts[kind]:>5}" + (f"  {why}" if counts[kind] else ""))
    print(f"{plural(s['flagged_images'], 'image')} flagged; details: {findings.folder / 'issues.csv'}, "
          f"{findings.folder / 'audit.html'}")
    if args.write_csv:
        print(f"Wrote {args.write_csv}: the images without findings" + (" (label issues relabelled)" if
              args.relabel else "") + f"; next: transferkit train {args.write_csv} --folds 5")
    elif s["flagged_images"]:
        print("Next: look at audit.html, fix or drop what is wrong, or pass --write-csv clean.csv to train on the "
              "rest.")
    return 0
