"""The examples in the docstrings run: every module's doctests, in a folder with a few generated images.

An example that needs what a test cannot have (ImageNet weights, a trained run, a server) says `+SKIP`; the rest
run here, so an example that no longer matches the code fails."""

import doctest
import importlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import transferkit

SRC = Path(transferkit.__file__).parent
MODULES = sorted(".".join(p.relative_to(SRC.parent).with_suffix("").parts).removesuffix(".__init__")
                 for p in SRC.rglob("*.py") if ">>> " in p.read_text())


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    """images/<class>/*.png: 2 classes × 3 pattern images, and features/: their MobileNetV2 features (random
    weights), which the search examples read."""
    from transferkit.extract import extract

    root = tmp_path_factory.mktemp("doctest") / "images"
    rng = np.random.default_rng(0)
    for c, name in enumerate(("cat", "dog")):
        (root / name).mkdir(parents=True)
        for i in range(3):
            blocks = rng.integers(0, 256, (4, 5, 3))  # a coarse pattern of its own, so features differ
            pixels = np.kron(blocks, np.ones((10, 10, 1))) * 0.7 + 70 * c
            Image.fromarray(pixels.astype("uint8")).save(root / name / f"{name}{i}.png")
    extract(root, root.parent / "features", model="mobilenet_v2", weights="none", input_size=96,
            precision="float32", quiet=True)
    return root


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples_run(name, images, monkeypatch):
    try:
        module = importlib.import_module(name)
    except ImportError as exc:  # a module of an extra this environment lacks
        pytest.skip(f"{name}: {exc}")
    tests = [t for t in doctest.DocTestFinder().find(module, name) if t.examples]
    failures: list[str] = []
    monkeypatch.chdir(images.parent)  # what an example writes lands beside the images
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    for test in tests:
        runner.run(test, out=lambda text: failures.append(text))
    assert not failures, "\n".join(failures)

