"""One function per picture, mirroring `transferkit viz ...`: filters, maps, gradcam, embedding, history.

These are application helpers above both `viz` (the drawing) and `train` (run folders).
"""

from __future__ import annotations

from pathlib import Path


from .errors import TransferkitError, one_of_message


def filters(model: str, layer: str, out, *, n: int = 6, weights="imagenet", input_size: int | None = None) -> Path:
    """Write the conv-filter grid of a backbone layer to the PNG `out`.

    Example:
    >>> filters("vgg16", "block1_conv1", "filters.png")  # doctest: +SKIP
    """
    from .backbones.build import build_model
    from .viz.plots import plot_filters

    return plot_filters(build_model(model, weights=weights, input_size=input_size), layer, out, n=n)


def feature_maps(model: str, image, out_dir, *, layers=None, weights="imagenet", input_size: int | None = None,
                 channels: int = 64) -> list[Path]:
    """Write one feature-map grid per layer (default: the last conv of each block) for one image.

    Example:
    >>> feature_maps("vgg16", "cat.jpg", "maps/")  # doctest: +SKIP
    """
    from .backbones.build import build_feature_model, build_model
    from .backbones.registry import get_backbone
    from .data.decode import DecodeError, load_image
    from .viz.explain import default_map_layers
    from .viz.plots import plot_feature_maps

    spec = get_backbone(model)
    if not layers:
        layers = default_map_layers(spec, build_model(spec, weights="none", input_size=input_size))
    fm = build_feature_model(spec, layers, weights=weights, input_size=input_size, precision="float32")
    bad = [name for name, shape in zip(fm.layers, fm.shapes) if len(shape) != 3]
    if bad:
        raise TransferkitError(f"Feature maps need convolutional layers; {bad} have vector outputs.")
    try:
        x = load_image(str(image), fm.input_size, crop_fraction=spec.crop_fraction, resample=spec.resample)
    except DecodeError as exc:
        raise TransferkitError(f"Cannot read the image {image}: {exc.reason}") from None
    acts = fm.compile()(x[None])
    return plot_feature_maps({n: a[0] for n, a in zip(fm.layers, acts)}, out_dir, channels=channels,
                             image_name=f"({Path(image).name})")


def gradcam_image(run_or_model, image, out, *, target=None, weights="imagenet") -> tuple[Path, str, float]:
    """Grad-CAM overlay for one image, from a trained run/`.keras` file or a registry backbone (ImageNet classes).

    Args:
        run_or_model: a run folder, a `.keras` file, or a registry name such as "vgg16".
        image: the image file.
        out: PNG to write.
        target: class name or index to explain (default: the predicted class).

    Returns:
        (png path, explained class name, its probability)
    """
    from .backbones.build import build_model
    from .backbones.registry import PREPROCESSING, get_backbone
    from .data.decode import DecodeError, load_image
    from .viz.explain import gradcam, plot_gradcam

    path = Path(str(run_or_model))
    if path.exists():
        from .train.use import load_run

        model, info = load_run(path)
        names, size = info["class_names"], info["input_size"]
        crop, resample, prep = info["crop_fraction"], info["resample"], None
    else:
        try:
            spec = get_backbone(str(run_or_model))
        except TransferkitError as exc:
            raise TransferkitError(f"{str(run_or_model)!r} is neither an existing run folder or .keras file nor a "
                                   f"registered model. {exc}") from None
        model = build_model(spec, include_top=True, weights=weights)
        from .backbones.imagenet import class_names

        names = class_names() if int(model.outputs[0].shape[-1]) == 1000 else [
            str(i) for i in range(int(model.outputs[0].shape[-1]))]
        size, crop, resample, prep = spec.input_size, spec.crop_fraction, spec.resample, PREPROCESSING[
            spec.preprocessing]
    try:
        raw = load_image(str(image), size, crop_fraction=crop, resample=resample)
    except DecodeError as exc:
        raise TransferkitError(f"Cannot read the image {image}: {exc.reason}") from None
    x = raw.astype("float32")
    if prep is not None:  # plain backbones expect preprocessed input; trained models preprocess inside
        x = prep.apply(x)
    index = None
    if target is not None:
        if str(target) in names:
            index = names.index(str(target))
        elif str(target).isdigit():
            index = int(target)
        else:
            raise TransferkitError(one_of_message("class", target, names))
    cam, index, prob = gradcam(model, x, index)
    title = f"Grad-CAM: {names[index]} ({prob:.0%}) — {Path(image).name}"
    return plot_gradcam(raw, cam, out, title), names[index], prob


def history(run_dir, out=None) -> Path:
    """Redraw a run's accuracy/loss curves from its history.csv."""
    from .train import read_history_csv
    from .viz.plots import plot_history

    run_dir = Path(run_dir)
    csv_file = run_dir / "history.csv"
    if not csv_file.is_file():
        raise TransferkitError(f"{str(run_dir)!r} has no history.csv: "
                               "pass a run folder written by `transferkit train`.")
    return plot_history(read_history_csv(csv_file), out or run_dir / "curves.png", title=run_dir.name)


def embedding(features_dir, out, *, layer: str | None = None, method: str = "pca") -> Path:
    """2-D projection (PCA, or t-SNE) of an extraction output, coloured by label."""
    from .viz.explain import plot_embedding

    return plot_embedding(features_dir, out, layer=layer, method=method)
