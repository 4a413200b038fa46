"""`report.html`: one self-contained page that shows what a training run learned — settings, curves, per-class
scores, confusion matrix, the worst mistakes with Grad-CAM, and (features runs) a map of the validation features."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from ..errors import TransferkitError
from ..files import write_text_atomic
from ..templates import png_data_url, render_template
from .run_folder import RunFolder, read_history_csv

TOP_LOSSES = 6
CONFIG_ROWS = ("model", "strategy", "input", "crop", "weights", "pooling", "layer", "epochs", "finetune_epochs",
               "batch_size", "learning_rate", "finetune_learning_rate", "optimizer", "schedule", "class_weight",
               "augmentation", "unfreeze_blocks", "init_from",
               "validation_split", "folds", "seeds", "precision", "seed", "backend", "created", "transferkit_version")


def run_view(run, config: dict, metrics: dict) -> str:
    """A finished run as a notebook cell shows it (the same numbers as report.html, the pictures inline)."""
    run = Path(run)
    accuracy = metrics.get("accuracy")
    facts = [("strategy", config.get("strategy")), ("model", config.get("model")),
             ("validation images", metrics.get("n")), ("loss", f"{metrics.get('loss', float('nan')):.4f}"),
             ("stages", ", ".join(f"{st.get('stage')} {st.get('epochs')} epochs" for st in metrics.get("stages", [])))]
    return render_template("nb_run.html", run=str(run), facts=facts,
                           accuracy=f"{accuracy:.1%}" if isinstance(accuracy, (int, float)) else "?",
                           per_class=list((metrics.get("per_class") or {}).items()),
                           curves=png_data_url(run / "curves.png"), confusion=png_data_url(run / "confusion.png"))


def _settings_rows(config: dict) -> list[tuple[str, object]]:
    """The settings a report shows, in `CONFIG_ROWS` order."""
    return [(k, config[k]) for k in CONFIG_ROWS if k in config]


def _gradcam_overlay(model, image: np.ndarray, class_index: int) -> str:
    """The image with its Grad-CAM heat map blended on top, as a PNG data URL."""
    from ..viz.explain import gradcam_data_url

    return gradcam_data_url(model, image, class_index)[1]


def _top_losses(run: Path, config: dict, model) -> list[dict]:
    """The validation images with the highest loss, from predictions.csv, each with a Grad-CAM overlay."""
    from ..data.decode import DecodeError
    preds = run / "predictions.csv"
    if not preds.is_file():
        return []
    folder = RunFolder(run)
    input_config = folder.input_config()
    with open(preds, newline="", encoding="utf-8") as f:
        rows = [r for r in csv.DictReader(f) if r.get("loss")]
    rows.sort(key=lambda r: -float(r["loss"]))
    validation = folder.validation_index()
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
        return png_data_url(plot_embedding(cache, run / "embedding.png"))
    except TransferkitError:
        return ""


def write_report(run) -> Path:
    """Write `RUN/report.html` for a finished run (also runs written before reports existed).

    Example:
    >>> write_report("runs/vgg16-finetune")  # doctest: +SKIP
    PosixPath('runs/vgg16-finetune/report.html')
    """
    import keras

    folder = RunFolder.open(run)
    run, config, metrics = folder.path, folder.config(), folder.metrics()
    if repeated_runs(metrics):
        return write_repeated_report(run, config, metrics)
    curves = run / "curves.png"
    if not curves.is_file() and (run / "history.csv").is_file():
        from ..viz.plots import plot_history

        plot_history(read_history_csv(run / "history.csv"), curves, title=run.name)
    model = keras.saving.load_model(run / "model.keras", safe_mode=True)
    losses = _top_losses(run, config, model)
    embedding = _embedding(run, metrics) if config.get("strategy") == "features" else ""
    page = render_template(
        "report.html", title=f"{config.get('model')} {config.get('strategy')} — {run.name}", metrics=metrics,
        class_names=config.get("class_names", []), settings_rows=_settings_rows(config), mistakes=losses,
        curves=png_data_url(curves), confusion=png_data_url(run / "confusion.png"), embedding=embedding)
    out = run / "report.html"
    write_text_atomic(out, page)
    return out


def repeated_runs(metrics: dict) -> list[dict]:
    """The per-run entries of a k-fold (`folds`) or repeated-seed (`seeds`) run's metrics; [] for a single run."""
    return metrics.get("folds") or metrics.get("seeds") or []


def write_repeated_report(run: Path, config: dict, metrics: dict) -> Path:
    """`RUN/report.html` of a k-fold or repeated-seed run: one row per run (linking to its own report), the
    mean ± standard deviation, and every run's curves."""
    entries = repeated_runs(metrics)
    curves = [(e["run"], png_data_url(run / e["run"] / "curves.png")) for e in entries
              if (run / e["run"] / "curves.png").is_file()]
    kind = "folds" if config.get("folds") else "seeds"
    what = (f"Each of the {len(entries)} runs trains on the other folds of every labelled image and is "
            "validated on its own fold (stratified by class)." if kind == "folds" else
            f"The same split trained {len(entries)} times with seeds {entries[0]['seed']} … "
            f"{entries[-1]['seed']} (initialisation, dropout, augmentation and data order).")
    page = render_template("repeated.html", title=f"{config.get('model')} {config.get('strategy')} — {run.name}",
                           metrics=metrics, entries=entries, kind=kind, what=what, curves=curves,
                           settings_rows=_settings_rows(config))
    out = run / "report.html"
    write_text_atomic(out, page)
    return out
