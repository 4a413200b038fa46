"""`transferkit import-features`: vectors computed elsewhere (.npy or Parquet) as a feature folder to search."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import TransferkitError, plural
from ._options import add_command

EXAMPLES = """  transferkit import-features clip.npy --paths paths.txt -o clip-set/
  transferkit import-features dino.parquet -o dino-set/          # columns: path, a vector column[, label]
  transferkit import-features clip.npy --paths paths.txt --labels labels.txt -o clip-set/
  transferkit duplicates clip-set/ && transferkit explore clip-set/ -o clip.html

paths.txt (and labels.txt) hold one line per row of the matrix. Queries of an imported set must be rows of it:
new images cannot be turned into vectors like those.
"""


def register(sub):
    p = add_command(sub, "import-features", help="Import vectors computed elsewhere (CLIP, DINOv2, …) as a "
                    "feature folder for similar, duplicates, explore and index.", examples=EXAMPLES, run=run)
    p.add_argument("file", metavar="FILE", help="an (n, d) .npy matrix, or a Parquet file with a path column and "
                   "a list-of-numbers column")
    p.add_argument("-o", "--output", required=True, metavar="OUT", help="the feature folder to write")
    p.add_argument("--paths", default=None, metavar="TXT", help=".npy: a text file with one image path per row")
    p.add_argument("--labels", default=None, metavar="TXT", help="optional: one class name per row")
    p.add_argument("--column", default=None, help="Parquet: the vector column (default: the first list column)")
    p.add_argument("--layer", default="embedding", help="the name the vectors go by (default: embedding)")
    p.add_argument("--root", default=None, help="the folder relative paths start from (thumbnails, queries)")
    p.add_argument("--overwrite", action="store_true", help="replace OUT")


def _lines(path, what: str) -> list[str]:
    try:
        return Path(path).read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise TransferkitError(f"Cannot read the {what} file {str(path)!r}: {exc}") from None


def read_vectors(args) -> tuple[np.ndarray, list[str], list[str] | None]:
    """(matrix, paths, labels or None) from the command's file and options."""
    source = Path(args.file)
    if not source.is_file():
        raise TransferkitError(f"{str(source)!r} does not exist or is not a file.")
    labels = [x for x in _lines(args.labels, "labels")] if args.labels else None
    if source.suffix.lower() == ".npy":
        if not args.paths:
            raise TransferkitError(f"{source.name} holds only the matrix: pass --paths paths.txt (one image path per "
                                   "row).")
        try:
            matrix = np.load(source, allow_pickle=False, mmap_mode="r")
        except (OSError, ValueError) as exc:
            raise TransferkitError(f"Cannot read {str(source)!r} as a .npy matrix: {exc}") from None
        return np.asarray(matrix), [p for p in _lines(args.paths, "paths") if p.strip()], labels
    if source.suffix.lower() == ".parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        try:
            table = pq.read_table(source)
        except (OSError, pa.ArrowException) as exc:
            raise TransferkitError(f"Cannot read {str(source)!r} as Parquet: {exc}") from None
        if "path" not in table.column_names:
            raise TransferkitError(f"{source.name} needs a `path` column. Received columns: {table.column_names}")
        lists = [f.name for f in table.schema if pa.types.is_list(f.type) or pa.types.is_fixed_size_list(f.type)
                 or pa.types.is_large_list(f.type)]
        column = args.column or (lists[0] if lists else None)
        if column not in lists:
            raise TransferkitError(f"{source.name} has no list-of-numbers column {column!r}; list columns: {lists}. "
                                   "Pass --column NAME.")
        rows = table.column(column).to_pylist()
        widths = {len(r) for r in rows if r is not None}
        if None in rows or len(widths) != 1:
            raise TransferkitError(f"Column {column!r} of {source.name} must hold vectors of one length, none "
                                   f"missing. Received lengths {sorted(widths)[:5]}")
        if labels is None and "label" in table.column_names:
            labels = [str(x) for x in table.column("label").to_pylist()]
        return np.asarray(rows, dtype=np.float32), [str(p) for p in table.column("path").to_pylist()], labels
    raise TransferkitError(f"{source.name}: pass a .npy matrix (with --paths) or a .parquet file.")


def run(args) -> int:
    from ..extract.imported import save_features

    matrix, paths, labels = read_vectors(args)
    fs = save_features(args.output, matrix, paths, labels=labels, layer=args.layer, root=args.root,
                       overwrite=args.overwrite, source=str(Path(args.file).resolve()))
    print(f"Imported {plural(len(fs), 'row')} × {matrix.shape[1]} ({args.layer}) into {args.output}"
          + (f", {plural(len(fs.class_names), 'class', 'classes')}" if fs.class_names else ""))
    return 0
