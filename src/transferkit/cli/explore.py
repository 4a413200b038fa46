"""`transferkit explore`: one self-contained HTML page to browse a feature set."""

from __future__ import annotations

from ._options import COSINE, add_command, add_features, import_keras, integer

EXAMPLES = """  transferkit explore features/ -o explore.html
  transferkit explore features/ -o explore.html -k 12 --threshold 0.95

Opens from disk (no server, no network): a thumbnail gallery, each image's nearest neighbours, the
near-duplicate groups, the outliers and a 2-D PCA map coloured by class.
"""


def register(sub):
    from ..search.near_duplicates import DEFAULT_THRESHOLD

    p = add_command(sub, "explore", help="Write an HTML page to browse a feature set.", examples=EXAMPLES, run=run)
    add_features(p)
    p.add_argument("-o", "--output", default="explore.html", help="the HTML file (default: explore.html)")
    p.add_argument("-k", type=integer(1), default=8, help="neighbours shown per image (default: 8)")
    p.add_argument("--threshold", type=COSINE, default=DEFAULT_THRESHOLD,
                   help=f"near-duplicate similarity (default: {DEFAULT_THRESHOLD})")


def run(args) -> int:
    import_keras()
    from ..search import explore

    print(f"Wrote {explore(args.features, args.output, k=args.k, threshold=args.threshold, layer=args.layer)}")
    return 0
