"""Reading an extraction output folder back: the manifest, the rows and the feature matrices."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..data.input_config import InputConfig
from ..errors import TransferkitError
from .manifest import input_config_of, read_manifest  # noqa: F401  (read here; imported from here)
from .writer import MANIFEST


@dataclass(repr=False)
class FeatureSet:
    """Features of a set of images, one row per image that could be read.

    Attributes:
        features: layer name -> float32 array (rows, *shape).
        paths: image paths relative to `root`, row-aligned with the features.
        labels: int32 class labels (None for unlabelled input).
        class_names: class folder names, label order.
        root: the input folder.
        skipped: {"path", "reason"} for each image that could not be read.
        manifest: the full manifest.

    Example:
    >>> fs = load_features("features/")  # extracted from images/cat/*.png, images/dog/*.png
    >>> fs.matrix.shape, fs.paths[0], fs.class_names, fs.labels.tolist()
    ((6, 1280), 'cat/cat0.png', ['cat', 'dog'], [0, 0, 0, 1, 1, 1])
    """

    features: dict[str, np.ndarray]
    paths: list[str]
    labels: np.ndarray | None
    class_names: list[str]
    root: str
    skipped: list[dict] = field(default_factory=list)
    manifest: dict = field(default_factory=dict)
    folder: str = ""  # the extraction output folder it was read from

    @property
    def input_config(self) -> InputConfig:
        """How image files became this set's rows (size, crop, resampling, preprocessing)."""
        return input_config_of(self.manifest)

    @property
    def matrix(self) -> np.ndarray:
        """The feature array of the only layer (use `features[name]` when several were extracted)."""
        if len(self.features) != 1:
            raise TransferkitError(
                f"This feature set has several layers {list(self.features)}; use .features[name] to pick one."
            )
        return next(iter(self.features.values()))

    def __len__(self) -> int:
        return len(self.paths)

    def _shape(self) -> str:
        return ", ".join(f"{name} {' × '.join(map(str, a.shape[1:]))}" for name, a in self.features.items())

    def _model(self) -> str:
        settings = self.manifest.get("settings") or {}
        return str(settings.get("model") or self.manifest.get("model") or "?")

    def __repr__(self) -> str:
        model = self._model()
        classes = f", {len(self.class_names)} classes" if self.class_names else ", unlabelled"
        return (f"FeatureSet({len(self)} rows, {model} {self._shape()}{classes}, "
                f"{len(self.skipped)} skipped, folder={self.folder!r})")

    def _repr_html_(self) -> str:
        """What a notebook cell shows: the shape, model, layer, input and a strip of the first images."""
        from ..data.thumbnails import gallery
        from ..templates import render_template

        try:
            shown = self.input_config.describe()
        except (TransferkitError, KeyError, TypeError):  # a set imported from elsewhere has no input
            shown = "?"
        facts = [("model", self._model()), ("layers", self._shape()), ("input", shown),
                 ("classes", ", ".join(self.class_names) if self.class_names else "unlabelled"),
                 ("skipped", len(self.skipped)), ("folder", self.folder)]
        strip = gallery([(p, [p if len(p) <= 24 else "…" + p[-23:]]
                          + ([self.class_names[int(self.labels[i])]] if self.labels is not None else []))
                         for i, p in enumerate(self.paths[:8])], root=self.root)
        return render_template("nb_features.html", rows=len(self), shape=self._shape(), facts=facts, strip=strip)


def load_features(out, layers=None) -> FeatureSet:
    """Load an extraction output folder (Parquet shards + manifest) into memory.

    Args:
        out: the folder written by `extract` / `transferkit extract`.
        layers: optional subset of layer names to load.

    Raises:
        TransferkitError: if the folder is not a complete transferkit output.
    """
    import pyarrow.parquet as pq

    out = Path(out)
    manifest = read_manifest(out)
    if not manifest.get("complete"):
        raise TransferkitError(
            f"The extraction in {str(out)!r} is not finished ({manifest.get('counts', {}).get('rows', 0)} rows so far). "
            "Re-run the same `transferkit extract` command to resume it."
        )
    info = manifest["layers"]
    names = list(info) if layers is None else ([layers] if isinstance(layers, str) else list(layers))
    for name in names:
        if name not in info:
            raise TransferkitError(f"`layers` must be among {list(info)}. Received: {name!r}")
    parts: dict[str, list[np.ndarray]] = {n: [] for n in names}
    paths: list[str] = []
    labels: list[np.ndarray] = []
    for shard in manifest["shards"]:
        fname = shard["file"]
        if Path(fname).name != fname:
            raise TransferkitError(f"{out / MANIFEST} is damaged: shard name {fname!r} is not a plain file name.")
        table = pq.read_table(out / fname, columns=["path", "label", *names])
        n = table.num_rows
        paths.extend(table.column("path").to_pylist())
        labels.append(table.column("label").to_numpy(zero_copy_only=False))
        for name in names:
            flat = table.column(name).combine_chunks().flatten().to_numpy(zero_copy_only=False)
            parts[name].append(flat.reshape(n, *info[name]["shape"]))
    features = {
        n: (np.concatenate(p) if p else np.zeros((0, *info[n]["shape"]), np.float32)).astype(np.float32, copy=False)
        for n, p in parts.items()
    }
    label_arr = None
    if manifest.get("class_names"):
        label_arr = (np.concatenate(labels) if labels else np.zeros(0)).astype(np.int32)
    return FeatureSet(features, paths, label_arr, list(manifest.get("class_names", [])),
                      manifest.get("root", ""), list(manifest.get("skipped", [])), manifest, str(out))
