"""`report.html`: one self-contained page that shows what a training run learned — settings, curves, per-class
scores, confusion matrix, the worst mistakes with Grad-CAM, and (features runs) a map of the validation features."""

from __future__ import annotations

import base64
import csv
import html
import json
from pathlib import Path

import numpy as np

from ..errors import TransferkitError
from ..files import write_text_atomic
from ..templates import render_template

TOP_LOSSES = 6
CONFIG_ROWS = ("model", "strategy", "input", "crop", "weights", "pooling", "layer", "epochs", "finetune_epochs",
               "batch_size", "learning_rate", "finetune_learning_rate", "optimizer", "schedule", "class_weight",
               "augmentation", "unfreeze_blocks", "init_from",
               "validation_split", "folds", "seeds", "precision", "seed", "backend", "created", "transferkit_version")


def _png(path: Path) -> str:
    return "data:image/png;base64," + base64.b64encode(Path(path).read_bytes()).decode() if Path(path).is_file() else ""


def _img_tag(src: str, alt: str, width: int | None = None) -> str:
    if not src:
        return f"<p class='missing'>({html.escape(alt)} not available)</p>"
    w = f" width='{width}'" if width else ""
    return f"<img src='{src}' alt='{html.escape(alt)}'{w}>"


def _gradcam_overlay(model, image: np.ndarray, class_index: int) -> str:
    """The image with its Grad-CAM heat map blended on top, as a PNG data URL."""
    from ..viz.explain import gradcam_data_url

    return gradcam_data_url(model, image, class_index)[1]


def _top_losses(run: Path, config: dict, model) -> list[dict]:
    """The validation images with the highest loss, from predictions.csv, each with a Grad-CAM overlay."""
    from ..data.decode import DecodeError
    from .data import run_validation_index
    from .use import run_input_config

    preds = run / "predictions.csv"
    if not preds.is_file():
        return []
    input_config = run_input_config(config, run / "config.json")
    with open(preds, newline="", encoding="utf-8") as f:
        rows = [r for r in csv.DictReader(f) if r.get("loss")]
    rows.sort(key=lambda r: -float(r["loss"]))
    validation = run_validation_index(config)
    if validation is None:
        return []
    root = validation.root
    names = config["class_names"]
    out = []
    for r in rows[:TOP_LOSSES]:
        try:
            image = input_config.load(root / r["path"])
        except DecodeError:
            continue
        predicted = names.index(r["predicted"])
        out.append({"path": r["path"], "true": r["true"], "predicted": r["predicted"],
                    "probability": float(r[f"p_{r['predicted']}"]), "loss": float(r["loss"]),
                    "picture": _gradcam_overlay(model, image, predicted)})
    return out


def _embedding(run: Path, metrics: dict) -> str:
    from ..viz.explain import plot_embedding

    cache = (metrics.get("feature_cache") or {}).get("validation")
    if not cache or not Path(cache).is_dir():
        return ""
    try:
        return _png(plot_embedding(cache, run / "embedding.png"))
    except TransferkitError:
        return ""


def write_report(run) -> Path:
    """Write `RUN/report.html` for a finished run (also runs written before reports existed).

    Example:
    >>> write_report("runs/vgg16-finetune")  # doctest: +SKIP
    PosixPath('runs/vgg16-finetune/report.html')
    """
    import keras

    run = Path(run)
    try:
        config = json.loads((run / "config.json").read_text())
        metrics = json.loads((run / "metrics.json").read_text())
    except (OSError, ValueError):
        raise TransferkitError(f"{str(run)!r} is not a finished run folder (config.json and metrics.json are "
                               "needed; train it to the end, or pass another folder).") from None
    if repeated_runs(metrics):
        return write_repeated_report(run, config, metrics)
    curves = run / "curves.png"
    if not curves.is_file() and (run / "history.csv").is_file():
        from ..viz.plots import plot_history
        from .run_folder import read_history_csv

        plot_history(read_history_csv(run / "history.csv"), curves, title=run.name)
    model = keras.saving.load_model(run / "model.keras", safe_mode=True)
    losses = _top_losses(run, config, model)
    embedding = _embedding(run, metrics) if config.get("strategy") == "features" else ""
    esc = html.escape
    settings = "".join(f"<tr><th>{esc(k)}</th><td>{esc(json.dumps(config.get(k)))}</td></tr>" for k in CONFIG_ROWS
                       if k in config)
    stages = "".join(
        f"<tr><td>{esc(str(st.get('stage')))}</td><td>{st.get('epochs')}</td><td>{st.get('best_epoch') or ''}</td>"
        f"<td>{st.get('seconds', 0):.0f} s</td></tr>" for st in metrics.get("stages", []))
    per_class = "".join(
        f"<tr><th>{esc(name)}</th><td>{m['precision']:.3f}</td><td>{m['recall']:.3f}</td><td>{m['f1']:.3f}</td>"
        f"<td>{m['support']}</td></tr>" for name, m in metrics.get("per_class", {}).items())
    mistakes = "".join(
        f"<figure>{_img_tag(item['picture'], item['path'])}<figcaption>{esc(item['path'])}<br>true "
        f"<b>{esc(item['true'])}</b>, predicted <b>{esc(item['predicted'])}</b> ({item['probability']:.0%}), "
        f"loss {item['loss']:.3f}</figcaption></figure>" for item in losses) or "<p>No validation images to show.</p>"
    more = "".join([f", top-{k} {v:.1%}" for k, v in (metrics.get("top_k_accuracy") or {}).items()]
                   + ([f", ROC-AUC {metrics['roc_auc']:.3f}"] if metrics.get("roc_auc") is not None else []))
    page = render_template(
        "report.html", TITLE=esc(f"{config.get('model')} {config.get('strategy')} — {run.name}"),
        ACCURACY=f"{metrics.get('accuracy', 0.0):.1%}", LOSS=f"{metrics.get('loss', 0.0):.4f}",
        N=str(metrics.get("n", 0)), MORE=esc(more), CLASSES=esc(", ".join(config.get("class_names", []))),
        SETTINGS=settings, STAGES=stages, CURVES=_img_tag(_png(curves), "training curves", 900), PER_CLASS=per_class,
        CONFUSION=_img_tag(_png(run / "confusion.png"), "confusion matrix", 520), MISTAKES=mistakes,
        EMBEDDING=(f"<h2>Validation features (PCA)</h2>{_img_tag(embedding, 'embedding', 620)}" if embedding else ""))
    out = run / "report.html"
    write_text_atomic(out, page)
    return out


def repeated_runs(metrics: dict) -> list[dict]:
    """The per-run entries of a k-fold (`folds`) or repeated-seed (`seeds`) run's metrics; [] for a single run."""
    return metrics.get("folds") or metrics.get("seeds") or []


def write_repeated_report(run: Path, config: dict, metrics: dict) -> Path:
    """`RUN/report.html` of a k-fold or repeated-seed run: one row per run (linking to its own report), the
    mean ± standard deviation, and every run's curves."""
    esc = html.escape
    rows, curves = [], []
    entries = repeated_runs(metrics)
    for entry in entries:
        name = esc(entry["run"])
        epochs = ", ".join(str(st.get("best_epoch") or "-") for st in entry.get("stages", []))
        rows.append(f"<tr><td><a href=\"{name}/report.html\">{name}</a></td><td class=num>{entry['accuracy']:.1%}"
                    f"</td><td class=num>{entry['loss']:.4f}</td><td class=num>{entry['n']}</td><td>{epochs}</td></tr>")
        png = run / entry["run"] / "curves.png"
        if png.is_file():
            curves.append(f"<figure>{_img_tag(_png(png), entry['run'] + ' curves', 460)}<figcaption>{name}"
                          f"</figcaption></figure>")
    kind = "folds" if config.get("folds") else "seeds"
    what = (f"Each of the {len(entries)} runs trains on the other folds of every labelled image and is "
            "validated on its own fold (stratified by class)." if kind == "folds" else
            f"The same split trained {len(entries)} times with seeds {entries[0]['seed']} … "
            f"{entries[-1]['seed']} (initialisation, dropout, augmentation and data order).")
    settings = "".join(f"<tr><th>{esc(k)}</th><td>{esc(json.dumps(config.get(k)))}</td></tr>" for k in CONFIG_ROWS
                       if k in config)
    page = render_template(
        "repeated.html", TITLE=esc(f"{config.get('model')} {config.get('strategy')} — {run.name}"),
        ACCURACY=f"{metrics['accuracy_mean']:.1%} ± {metrics['accuracy_std']:.1%}",
        LOSS=f"{metrics['loss_mean']:.4f} ± {metrics['loss_std']:.4f}",
        COUNT=esc(f"{len(entries)} {kind}"), WHAT=esc(what), ROWS="".join(rows),
        CURVES="".join(curves) or "<p>No curves.</p>", SETTINGS=settings)
    out = run / "report.html"
    write_text_atomic(out, page)
    return out
