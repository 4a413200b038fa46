"""`transferkit similar`: the images of a feature set most like each query image."""

from __future__ import annotations

import csv

from ..files import atomic_open
from ._options import add_command, add_features, import_keras, integer

EXAMPLES = """  transferkit similar features/ photos/new_cat.jpg -k 5
  transferkit similar features/ cats/cat.12.jpg                     # a path that is a row of the set
  transferkit similar features/ queries/ -k 10 -o similar.csv       # every image of a folder

New query images are extracted with exactly the settings in FEATURES' manifest (model, layer, pooling, size,
weights, precision). Output: CSV columns query, rank, path, similarity (cosine; rank 1 = most similar).
"""


def register(sub):
    p = add_command(sub, "similar", help="Find the images of a feature set most similar to query images.",
                    examples=EXAMPLES, run=run)
    add_features(p)
    p.add_argument("queries", metavar="QUERY", nargs="+",
                   help="an image file, a folder of images, or a path that is already a row of FEATURES")
    p.add_argument("-k", type=integer(1), default=10, help="results per query (default: 10)")
    p.add_argument("-o", "--output", default=None, help="CSV file (default: a table on the terminal)")


def run(args) -> int:
    import_keras()
    from ..search import load_index, similar

    index = load_index(args.features, layer=args.layer, quiet=False)
    matches, skipped = similar(index, args.queries, k=args.k)
    if args.output:
        with atomic_open(args.output, newline="") as f:
            writer = csv.writer(f)
            writer.writerow(["query", "rank", "path", "similarity"])
            writer.writerows([m.query, m.rank, m.path, f"{m.similarity:.6f}"] for m in matches)
        print(f"Wrote {len(matches)} rows to {args.output}")
    else:
        for m in matches:
            print(f"{m.query}\t{m.rank}\t{m.path}\t{m.similarity:.4f}")
    return 0  # skipped queries: named by the library's warnings, counted on the last line
