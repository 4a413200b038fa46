"""Indexing images: file paths in a deterministic order, labelled by class sub-folder or by a `path,label` CSV."""

from __future__ import annotations

import csv
import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import TransferkitError, check_one_of, plural

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm")
LABEL_MODES = ("inferred", "none")


@dataclass
class ImageIndex:
    """The images of a folder: paths relative to `root`, integer labels (or None) and class names."""

    root: Path
    paths: list[str]
    labels: np.ndarray | None
    class_names: list[str]
    ignored: list[str] = field(default_factory=list)  # files skipped for their extension
    outside: frozenset = frozenset()  # paths that are links to files outside `root`: skipped when decoded

    def __len__(self) -> int:
        return len(self.paths)

    def absolute(self, i: int) -> str:
        """The absolute path of image `i`."""
        return str(self.root / self.paths[i])

    def check(self, i: int) -> None:
        """Raise `DecodeError` for an image that must not be read: a link that leads out of the folder (the
        server would not show it either, and a link swapped later could point anywhere)."""
        if self.paths[i] in self.outside:
            from .decode import DecodeError

            raise DecodeError(self.paths[i], "a link to a file outside the folder; copy the file in instead")

    def fingerprint(self) -> str:
        """A hash of the file list and labels: an output folder resumes only over the same list."""
        h = hashlib.sha256()
        for i, p in enumerate(self.paths):
            h.update(p.encode("utf-8", "surrogateescape"))
            h.update(b"\0" + (str(int(self.labels[i])) if self.labels is not None else "-").encode() + b"\n")
        return h.hexdigest()

    def subset(self, idx) -> "ImageIndex":
        """A new index holding only the images at positions `idx`."""
        idx = list(idx)
        labels = None if self.labels is None else self.labels[idx]
        paths = [self.paths[i] for i in idx]
        return ImageIndex(self.root, paths, labels, self.class_names,
                          outside=frozenset(p for p in paths if p in self.outside))


def _walk(top: Path, extensions: tuple[str, ...], ignored: list[str], outside: set[str]) -> list[str]:
    """Image files below `top` (following symlinks, each real folder once), relative to `top`, sorted; those whose
    real path lies outside `top` (links out of the folder) are also added to `outside`."""
    found = []
    seen = set()
    real_top = os.path.realpath(top) + os.sep
    for dirpath, dirnames, filenames in os.walk(top, followlinks=True, onerror=_raise_walk_error):
        try:
            st = os.stat(dirpath)
        except OSError:
            continue
        key = (st.st_dev, st.st_ino)
        if key in seen:  # a symlink loop, or the same folder linked twice
            dirnames[:] = []
            continue
        seen.add(key)
        dirnames.sort()
        for fname in filenames:  # pipes, sockets and devices too: the decoder skips them unopened, with a reason
            full = os.path.join(dirpath, fname)
            rel = os.path.relpath(full, top).replace(os.sep, "/")
            if fname.startswith("."):
                continue
            if fname.lower().endswith(extensions):
                found.append(rel)
                if not os.path.realpath(full).startswith(real_top) and os.path.exists(full):
                    outside.add(rel)
            else:
                ignored.append(rel)
    return sorted(found)


def _raise_walk_error(err: OSError):
    raise TransferkitError(f"Cannot read the folder {err.filename}: {err.strerror}. Check its permissions.")


def index_images(source, *, labels: str = "inferred", class_names=None,
                 extensions: tuple[str, ...] = IMAGE_EXTENSIONS) -> ImageIndex:
    """List the images of a folder in a deterministic order, labelled by class sub-folder.

    Args:
        source: a folder, one image file, a list of image files, a CSV file with a `path` column (and
            optionally `label`; relative paths are relative to the CSV's folder), or an `ImageIndex`
            (returned as it is, without labels when `labels="none"`).
        labels: "inferred": when `source` has sub-folders, each is a class (sorted
            by name, as `keras.utils.image_dataset_from_directory` does) and images at
            the top level are an error; a folder of images only is unlabelled.
            "none": every image below `source` is taken, unlabelled.
        class_names: optional explicit class order (must match the sub-folders).
        extensions: file endings that count as images (case-insensitive).

    Returns:
        An `ImageIndex`; paths are sorted by class, then by relative path.

    Example:
    >>> idx = index_images("images/")  # images/cat/*.png, images/dog/*.png
    >>> idx.class_names, len(idx), idx.paths[0]
    (['cat', 'dog'], 6, 'cat/cat0.png')
    """
    check_one_of("labels", labels, LABEL_MODES)
    if isinstance(source, ImageIndex):
        if labels == "none" and source.labels is not None:
            return ImageIndex(source.root, list(source.paths), None, [], list(source.ignored), source.outside)
        return source
    extensions = tuple(e.lower() if e.startswith(".") else "." + e.lower() for e in extensions)
    if isinstance(source, (list, tuple)):
        return _index_files([Path(p) for p in source])
    root = Path(os.path.expanduser(str(source)))
    if root.is_file() and root.suffix.lower() == ".csv":
        return _index_csv(root, labels, class_names)
    if root.is_file():
        return _index_files([root])
    if not root.exists():
        raise TransferkitError(f"The image folder {str(root)!r} does not exist. "
                               "Pass a folder of images or class sub-folders.")
    if not root.is_dir():
        raise TransferkitError(f"{str(root)!r} is neither a folder nor an image file.")
    if not os.access(root, os.R_OK | os.X_OK):
        raise TransferkitError(f"Cannot read the folder {str(root)!r}: permission denied.")
    ignored: list[str] = []
    outside: set[str] = set()
    paths = _walk(root, extensions, ignored, outside)
    top_level = [p for p in paths if "/" not in p]
    subdirs = sorted({p.split("/", 1)[0] for p in paths if "/" in p})
    if labels == "none" or not subdirs:
        if not paths:
            raise _empty_error(root, extensions, ignored)
        return ImageIndex(root.resolve(), paths, None, [], ignored, frozenset(outside))
    if top_level:
        raise TransferkitError(
            f"{str(root)!r} mixes class sub-folders ({', '.join(subdirs[:5])}) with images at its top level "
            f"(e.g. {top_level[0]!r}). Move those images into a class folder, or pass --labels none to treat "
            "every image as unlabelled."
        )
    classes = subdirs
    if class_names is not None:
        class_names = list(class_names)
        missing = sorted(set(classes) - set(class_names))
        if missing:
            raise TransferkitError(
                f"`class_names` must name every class folder. Received: class_names={class_names}; "
                f"folders without a class: {missing}"
            )
        classes = class_names
    position = {c: i for i, c in enumerate(classes)}
    paths.sort(key=lambda p: (position[p.split("/", 1)[0]], p))
    label_arr = np.array([position[p.split("/", 1)[0]] for p in paths], dtype=np.int32)
    return ImageIndex(root.resolve(), paths, label_arr, classes, ignored, frozenset(outside))


def _index_files(files: list[Path]) -> ImageIndex:
    for f in files:
        if not f.is_file():
            raise TransferkitError(f"The image {str(f)!r} does not exist or is not a file.")
    resolved = [f.resolve() for f in files]
    root = Path(os.path.commonpath([str(p.parent) for p in resolved]))
    return ImageIndex(root, [str(p.relative_to(root)).replace(os.sep, "/") for p in resolved], None, [])


def _index_csv(table: Path, labels: str, class_names) -> ImageIndex:
    """The images listed in a CSV with a `path` column and an optional `label` column, in the file's order."""
    try:
        with open(table, newline="", encoding="utf-8-sig") as f:
            rows = list(csv.reader(f))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise TransferkitError(f"Cannot read the CSV {str(table)!r}: {exc}") from None
    header = [h.strip().lower() for h in rows[0]] if rows else []
    if "path" not in header:
        raise TransferkitError(f"The CSV {str(table)!r} needs a header row with a `path` column (and optionally "
                               f"`label`). Received: header={rows[0] if rows else []}")
    col, label_col = header.index("path"), header.index("label") if "label" in header else None
    if labels == "none":
        label_col = None
    files, names, seen = [], [], {}
    for line, row in enumerate(rows[1:], start=2):
        if not any(cell.strip() for cell in row):
            continue
        where = f"{table}, line {line}"
        if len(row) != len(header):
            raise TransferkitError(f"{where}: {len(row)} fields, the header has {len(header)}.")
        path = Path(os.path.expanduser(row[col].strip()))
        path = (path if path.is_absolute() else table.parent / path).resolve()
        if not path.exists():  # a pipe or a folder listed here is skipped with its reason when decoded
            given = row[col].strip()
            relative = not Path(os.path.expanduser(given)).is_absolute()
            raise TransferkitError(f"{where}: the image {given!r} does not exist" + (
                " (relative paths are read from the CSV's folder)." if relative else "."))
        if path in seen:
            raise TransferkitError(f"{where}: {row[col].strip()!r} is listed twice (also on line {seen[path]}); "
                                   "each image may appear once.")
        seen[path] = line
        files.append(path)
        if label_col is not None:
            name = row[label_col].strip()
            if not name:
                raise TransferkitError(f"{where}: empty label for {row[col].strip()!r}.")
            names.append(name)
    if not files:
        raise TransferkitError(f"The CSV {str(table)!r} lists no images.")
    root = Path(os.path.commonpath([str(p.parent) for p in files]))
    paths = [str(p.relative_to(root)).replace(os.sep, "/") for p in files]
    if label_col is None:
        return ImageIndex(root, paths, None, [])
    classes = sorted(set(names))
    if class_names is not None:
        unknown = sorted(set(names) - set(class_names))
        if unknown:
            raise TransferkitError(f"{table}: labels {unknown[:5]} are not classes of this model "
                                   f"{list(class_names)}. Fix the `label` column.")
        classes = list(class_names)
    position = {c: i for i, c in enumerate(classes)}
    return ImageIndex(root, paths, np.array([position[n] for n in names], dtype=np.int32), classes)


def _empty_error(root: Path, extensions, ignored) -> TransferkitError:
    msg = f"No images found in {str(root)!r} (looked for {', '.join(extensions)})."
    if ignored:
        verb = "was" if len(ignored) == 1 else "were"
        msg += f" {plural(len(ignored), 'other file')} {verb} found, e.g. {ignored[0]!r}."
    return TransferkitError(msg)
