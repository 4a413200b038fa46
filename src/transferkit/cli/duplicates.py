"""`transferkit duplicates`: groups of near-duplicate images in a feature set."""

from __future__ import annotations

import csv

from ..files import atomic_open
from ._options import COSINE, add_command, add_features, import_keras

EXAMPLES = """  transferkit duplicates features/                       # default threshold 0.85
  transferkit duplicates features/ --threshold 0.95 -o groups.csv

Two images are near-duplicates when their features' cosine similarity is >= THRESHOLD and stands out from
the two images' 10 nearest neighbours (so look-alike images such as handwritten digits are not grouped).
Each group keeps its first image and lists the images that are near-duplicates of it, never chained through
a third. The default 0.85: every mirrored, 5 %-cropped, half-size, brightened and JPEG-30 copy of real photos
scored >= 0.856 against its original with EfficientNet-Lite0 avg_pool, different photos <= 0.40
(bench/duplicate_threshold.py; docs/search.md). Other models and layers may want another threshold.
CSV columns: group, path, similarity (to the group's kept image, the group's first row).
"""


def register(sub):
    from ..search.near_duplicates import DEFAULT_THRESHOLD

    p = add_command(sub, "duplicates", help="Group near-duplicate images of a feature set.", examples=EXAMPLES,
                    run=run)
    add_features(p)
    p.add_argument("--threshold", type=COSINE, default=DEFAULT_THRESHOLD,
                   help=f"cosine similarity that makes two images near-duplicates (default: {DEFAULT_THRESHOLD})")
    p.add_argument("-o", "--output", default=None, help="CSV file (default: print the groups)")


def run(args) -> int:
    import_keras()
    from ..search import duplicates, load_index

    groups = duplicates(load_index(args.features, layer=args.layer, quiet=False), threshold=args.threshold)
    rows = [(n, path, f"{sim:.6f}") for n, group in enumerate(groups.groups, 1) for path, sim in group]
    if args.output:
        with atomic_open(args.output, newline="") as f:
            writer = csv.writer(f)
            writer.writerow(["group", "path", "similarity"])
            writer.writerows(rows)
    else:
        for row in rows:
            print("\t".join(map(str, row)))
    print(groups.summary())
    return 0
