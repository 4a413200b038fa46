"""One function per picture, mirroring `transferkit viz ...`: filters, maps, gradcam, embedding, history.

These are application helpers above both `viz` (the drawing) and `train` (run folders).
"""

from __future__ import annotations

from pathlib import Path


from .errors import TransferkitError, close_matches


def filters(model: str, layer: str | None, out, *, n: int = 6, weights="imagenet",
            input_size: int | None = None) -> Path:
    """Write the conv-filter grid of a backbone layer (None: its first convolution) to the PNG `out`.

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
    from .data.decode import DecodeError
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
        x = fm.input_config.load(image)
    except DecodeError as exc:
        raise TransferkitError(f"Cannot read the image {image}: {exc.reason}") from None
    acts = fm.compile()(x[None])
    return plot_feature_maps({n: a[0] for n, a in zip(fm.layers, acts)}, out_dir, channels=channels,
                             image_name=f"({Path(image).name})")


def _norm_class(name: str) -> str:
    return " ".join(str(name).replace("_", " ").lower().split())


def class_index(target, names: list[str]) -> int:
    """The index of the class `target` names: a full class name, any of its comma-separated synonyms
    (case-insensitive: "tabby" or "Tabby Cat" for ImageNet's "tabby, tabby cat"), or an index.

    Raises:
        TransferkitError: unknown or ambiguous names, with close matches among the synonyms.

    Example:
    >>> class_index("tabby", ["tiger cat", "tabby, tabby cat"])
    1
    """
    text = str(target).strip()
    if names.count(text) == 1:  # ImageNet names "crane" twice (the bird and the machine): ambiguous below
        return names.index(text)
    if text.lstrip("-").isdigit():
        i = int(text)
        if not 0 <= i < len(names):
            raise TransferkitError(f"`class` must be from 0 to {len(names) - 1}. Received: class={i}")
        return i
    synonyms: dict[str, list[int]] = {}
    for i, name in enumerate(names):
        for part in {name, *name.split(",")}:
            if part.strip():
                synonyms.setdefault(_norm_class(part), []).append(i)
    hits = sorted(set(synonyms.get(_norm_class(text), [])))
    if len(hits) == 1:
        return hits[0]
    if hits:
        options = ", ".join(f"{i} ({names[i]!r})" for i in hits)
        raise TransferkitError(f"`class` {text!r} names {len(hits)} classes: {options}. Pass the index instead.")
    close = list(dict.fromkeys(i for c in close_matches(_norm_class(text), synonyms, n=6) for i in synonyms[c]))[:3]
    hint = (" Did you mean " + " or ".join(f"{names[i]!r} ({i})" for i in close) + "?") if close else ""
    raise TransferkitError(f"`class` must name one of the model's {len(names)} classes (a name, a synonym or an "
                           f"index). Received: class={text!r}.{hint}")


def _gradcam_source(run_or_model, weights):
    """(model, class names, input configuration, whether the model preprocesses inside) for Grad-CAM."""
    from .backbones.build import build_model
    from .backbones.registry import get_backbone

    path = Path(str(run_or_model))
    if path.exists():
        from .train.use import load_run

        model, info = load_run(path)
        return model, info["class_names"], info["input"], True
    try:
        spec = get_backbone(str(run_or_model))
    except TransferkitError as exc:
        raise TransferkitError(f"{str(run_or_model)!r} is neither an existing run folder or .keras file nor a "
                               f"registered model. {exc}") from None
    model = build_model(spec, include_top=True, weights=weights)
    from .backbones.imagenet import class_names

    n = int(model.outputs[0].shape[-1])
    names = class_names() if n == 1000 else [str(i) for i in range(n)]
    return model, names, spec.input_config(), False


def gradcam_images(run_or_model, images, out, *, target=None, weights="imagenet",
                   layer: str | None = None) -> list[tuple[Path, str, float]]:
    """Grad-CAM overlays for an image, a folder of images or a `path,label` CSV, from a trained run/`.keras`
    file or a registry backbone (ImageNet classes).

    Args:
        run_or_model: a run folder, a `.keras` file, or a registry name such as "vgg16".
        images: one image file (`out` is then the PNG to write), or a folder / CSV (`out` is then a folder
            that receives one PNG per image, named after its path).
        target: class to explain — a name, one of its synonyms ("tabby"), or an index; default the predicted.
        layer: the conv layer to explain (default: the backbone's last; see `transferkit layers MODEL`).

    Returns:
        (png path, explained class name, its probability) per image, in the folder's order.

    Example:
    >>> gradcam_images("efficientnet_lite0", "photos/", "cams/", target="tabby")  # doctest: +SKIP
    """
    from .data.decode import DecodeError
    from .data.folder import index_images
    from .extract.writer import safe_name
    from .viz.explain import gradcam, plot_gradcam

    model, names, config, preprocesses_inside = _gradcam_source(run_or_model, weights)
    index = None if Path(str(images)).is_file() and not str(images).lower().endswith(".csv") else (
        index_images(images, labels="none"))
    wanted = None if target is None else class_index(target, names)
    jobs = [(Path(images), Path(out))] if index is None else [
        (Path(index.absolute(i)), Path(out) / (safe_name(str(Path(p).with_suffix("")).replace("/", "__")) + ".png"))
        for i, p in enumerate(index.paths)]
    written, unreadable = [], []
    for image, png in jobs:
        try:
            raw = config.load(image)
        except DecodeError as exc:
            if index is None:
                raise TransferkitError(f"Cannot read the image {image}: {exc.reason}") from None
            unreadable.append(f"{image}: {exc.reason}")
            continue
        # plain backbones expect preprocessed input; trained models preprocess inside
        x = raw.astype("float32") if preprocesses_inside else config.preprocess(raw)
        cam, k, prob = gradcam(model, x, wanted, layer=layer)
        where = f" at {layer}" if layer else ""
        title = f"Grad-CAM{where}: {names[k]} ({prob:.0%}) — {image.name}"
        written.append((plot_gradcam(raw, cam, png, title), names[k], prob))
    if unreadable:
        raise TransferkitError(f"{len(unreadable)} of {len(jobs)} images could not be read (the other "
                               f"{len(written)} were written to {out}): " + "; ".join(unreadable[:3]))
    return written


def gradcam_image(run_or_model, image, out, *, target=None, weights="imagenet",
                  layer: str | None = None) -> tuple[Path, str, float]:
    """Grad-CAM overlay for one image: `gradcam_images` for a single file.

    Returns:
        (png path, explained class name, its probability)

    Example:
    >>> gradcam_image("efficientnet_lite0", "cat.jpg", "cam.png", target="tabby")  # doctest: +SKIP
    """
    if Path(str(image)).is_dir():
        raise TransferkitError(f"{str(image)!r} is a folder; use gradcam_images() for folders.")
    return gradcam_images(run_or_model, image, out, target=target, weights=weights, layer=layer)[0]


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
