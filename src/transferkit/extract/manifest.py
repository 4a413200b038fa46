"""A feature set's manifest.json: what made the set (settings), where its rows are (shards), what was skipped,
and its updates — one `Manifest` type that reads, checks, fills and writes it for extract, update and import."""

from __future__ import annotations

import datetime as _dt
import json
from pathlib import Path

from .._version import __version__
from ..data.input_config import InputConfig
from ..errors import TransferkitError
from ..files import write_json_atomic
from .writer import MANIFEST, shard_name


class Manifest(dict):
    """manifest.json as a dict with the steps that change it; `read_manifest(folder)` reads and checks one.

    Example:
    >>> m = Manifest.new({"model": "vgg16", "images": 2}, root="photos", class_names=["cat", "dog"])
    >>> m.record_shards({0: {"start": 0, "stop": 2, "rows": 2, "skipped": []}}, n_shards=1)
    >>> m["complete"], m["counts"]["rows"], m["format"]
    (True, 2, 'transferkit.features')
    """

    @classmethod
    def new(cls, settings: dict, *, root, class_names: list[str], ignored=(), created: str | None = None,
            keep: dict | None = None) -> "Manifest":
        """The fields every feature set's manifest opens with (extracted or imported): its format, the software,
        when it was first made (`created`, kept by a resumed run), its settings, root, classes and ignored
        files; `keep`: an earlier manifest whose other fields stay (its layers, shards and updates)."""
        return cls({**(keep or {}), "format": "transferkit.features", "format_version": 1,
                    "transferkit_version": __version__,
                    "created": created or _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
                    "settings": settings, "root": str(root), "class_names": list(class_names),
                    "ignored_files": {"count": len(ignored), "examples": list(ignored[:20])}})

    def record_shards(self, done: dict[int, dict], n_shards: int) -> None:
        """The finished shards (by number: their metadata), what they skipped and the counts."""
        shards = [{"file": m.get("file", shard_name(k)), "start": m["start"], "stop": m["stop"], "rows": m["rows"],
                   "skipped": len(m["skipped"])} for k, m in sorted(done.items())]
        skipped = [s for _, m in sorted(done.items()) for s in m["skipped"]]
        rows = sum(m["rows"] for m in done.values())
        self.update({
            "shards": shards, "skipped": skipped, "complete": len(done) == n_shards,
            "counts": {"images": self["settings"]["images"], "rows": rows, "skipped": len(skipped),
                       "shards_done": len(done), "shards_total": n_shards},
        })

    def add_update(self, counts: dict) -> None:
        """Append one `--update`'s counts to the set's history of updates."""
        self["updates"] = list(self.get("updates", [])) + [counts]

    def write(self, folder) -> None:
        """Write it whole or not at all into `folder` (the commit point of every change to a set)."""
        write_json_atomic(Path(folder) / MANIFEST, dict(self))


def read_manifest(out) -> "Manifest":
    """Load and check `OUT/manifest.json`, with a clear error when it is missing or damaged."""
    path = Path(out) / MANIFEST
    if not path.is_file():
        raise TransferkitError(f"{str(out)!r} is not a transferkit feature folder: {MANIFEST} is missing.")
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise TransferkitError(f"Cannot read {path}: {exc}. Re-run the extraction with --overwrite.") from None
    if not isinstance(manifest, dict) or manifest.get("format") != "transferkit.features":
        raise TransferkitError(f"{path} is not a transferkit manifest (wrong or missing 'format').")
    for key, kind in (("layers", dict), ("shards", list), ("settings", dict)):
        if not isinstance(manifest.get(key), kind):
            raise TransferkitError(f"{path} is damaged: '{key}' must be a {kind.__name__}. Re-run with --overwrite.")
    _upgrade_settings(manifest["settings"])
    if not manifest["settings"].get("imported"):  # vectors from elsewhere have no input configuration
        InputConfig.from_dict(manifest["settings"].get("input"), source=str(path))
    checks = (
        ("class_names", lambda v: isinstance(v, list) and all(isinstance(c, str) for c in v)),
        ("skipped", lambda v: isinstance(v, list) and all(isinstance(i, dict) for i in v)),
        ("counts", lambda v: isinstance(v, dict)),
        ("complete", lambda v: isinstance(v, bool)),
        ("root", lambda v: isinstance(v, str)),
    )
    for key, ok in checks:
        if key in manifest and not ok(manifest[key]):
            raise TransferkitError(f"{path} is damaged: {key!r} has the wrong type. Re-run with --overwrite.")
    for name, info in manifest["layers"].items():
        shape = info.get("shape") if isinstance(info, dict) else None
        if not (isinstance(shape, list) and all(isinstance(d, int) and not isinstance(d, bool) and d > 0
                                                for d in shape)):
            raise TransferkitError(f"{path} is damaged: layer {name!r} has no valid shape. Re-run with --overwrite.")
    for shard in manifest["shards"]:
        if not (isinstance(shard, dict) and isinstance(shard.get("file"), str)):
            raise TransferkitError(f"{path} is damaged: a shard entry has no file name. Re-run with --overwrite.")
    return Manifest(manifest)


_LEGACY_INPUT = ("input_size", "crop_fraction", "resample", "preprocessing")


def _upgrade_settings(settings: dict) -> None:
    """Manifests before 0.2 kept the input configuration as four separate settings; fold them into "input"
    (in memory), so such outputs still resume and answer queries."""
    if "input" not in settings and "input_size" in settings:
        settings["input"] = InputConfig(settings["input_size"], settings.get("crop_fraction"),
                                        settings.get("resample", "bilinear"),
                                        settings.get("preprocessing", "none")).to_dict()
        for key in _LEGACY_INPUT:
            settings.pop(key, None)


def input_config_of(manifest: dict) -> InputConfig:
    """The `InputConfig` a feature set's images were turned into tensors with (from its manifest)."""
    _upgrade_settings(manifest.setdefault("settings", {}))
    return InputConfig.from_dict(manifest["settings"].get("input"), source="the feature set's manifest.json")


