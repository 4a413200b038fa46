"""Bounded fuzzing (hypothesis) of image decoding and manifest reading: only the documented errors, ever."""

import io
import json

import numpy as np
import pytest

hypothesis = pytest.importorskip("hypothesis", reason="pip install hypothesis (test extra)")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

import transferkit as tk  # noqa: E402
from transferkit.data import DecodeError, load_image  # noqa: E402
from transferkit.errors import TransferkitError  # noqa: E402

FUZZ = settings(max_examples=150, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


def _seed_files():
    from PIL import Image

    rng = np.random.default_rng(0)
    arr = rng.integers(0, 256, (12, 16, 3), dtype=np.uint8)
    out = []
    for fmt in ("PNG", "JPEG", "GIF", "BMP", "TIFF", "WEBP"):
        buf = io.BytesIO()
        Image.fromarray(arr).save(buf, fmt)
        out.append(buf.getvalue())
    return out


SEEDS = _seed_files()


@FUZZ
@given(seed=st.sampled_from(range(len(SEEDS))), flips=st.lists(st.tuples(st.integers(0, 10_000),
                                                                          st.integers(0, 255)), max_size=8),
       cut=st.one_of(st.none(), st.integers(0, 10_000)))
def test_decoding_mutated_images(tmp_path, seed, flips, cut):
    data = bytearray(SEEDS[seed])
    for pos, value in flips:
        data[pos % len(data)] = value
    if cut is not None:
        data = data[: cut % (len(data) + 1)]
    path = tmp_path / "fuzz.img"
    path.write_bytes(bytes(data))
    try:
        arr = load_image(str(path), 8)
    except DecodeError as exc:
        assert exc.reason
    else:
        assert arr.shape == (8, 8, 3) and arr.dtype == np.uint8


@FUZZ
@given(st.binary(max_size=512))
def test_decoding_random_bytes(tmp_path, blob):
    path = tmp_path / "random.jpg"
    path.write_bytes(blob)
    try:
        load_image(str(path), 8)
    except DecodeError:
        pass


JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
                    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children,
                                                                                       max_size=4), max_leaves=12)


@pytest.fixture(scope="module")
def valid_out(tmp_path_factory):
    from conftest import make_image

    root = tmp_path_factory.mktemp("fz")
    rng = np.random.default_rng(0)
    for i in range(4):
        make_image(root / "imgs" / f"{i}.png", rng)
    tk.extract(root / "imgs", root / "out", model="tiny_test", weights="none", precision="float32")
    return root / "out"


def _load_with_manifest(out, text: bytes) -> None:
    """Load `out` with its manifest replaced by `text`; only TransferkitError may come out. Restores it after."""
    path = out / "manifest.json"
    original = path.read_bytes()
    path.write_bytes(text)
    try:
        tk.load_features(out)
    except TransferkitError:
        pass
    finally:
        path.write_bytes(original)


@FUZZ
@given(key=st.sampled_from(["format", "layers", "shards", "settings", "complete", "class_names", "skipped", "counts"]),
       value=JSON)
def test_manifest_with_any_field_replaced(valid_out, key, value):
    manifest = json.loads((valid_out / "manifest.json").read_text())
    manifest[key] = value
    _load_with_manifest(valid_out, json.dumps(manifest).encode())


@FUZZ
@given(st.binary(max_size=300))
def test_manifest_random_bytes(valid_out, blob):
    _load_with_manifest(valid_out, blob)
