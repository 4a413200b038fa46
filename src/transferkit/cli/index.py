"""`transferkit index`: build a feature set's search index ahead of time."""

from __future__ import annotations

from ..errors import require_extras
from ._options import add_command, add_features, import_keras

EXAMPLES = """  transferkit index features/
  transferkit index features/ --kind ivf          # approximate (faiss), for very large sets

`similar`, `duplicates` and `explore` build the index themselves when it is missing, and rebuild it when
the features changed since (e.g. a resumed extraction added shards).
"""


def register(sub):
    from ..search.index import KINDS

    p = add_command(sub, "index", help="Build the search index of a feature set.", examples=EXAMPLES, run=run)
    add_features(p)
    p.add_argument("--kind", default="auto", choices=KINDS,
                   help="exact, ivf (approximate, faiss) or auto: ivf above 100,000 images (default: auto)")


def run(args) -> int:
    if args.kind == "ivf":
        require_extras("transferkit index --kind ivf", "search")
    import_keras()
    from ..search import build_index

    build_index(args.features, layer=args.layer, kind=args.kind, quiet=False)
    return 0
