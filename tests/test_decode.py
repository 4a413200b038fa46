"""Decoding images of every mode into RGB uint8, and clear per-file reasons for bad ones."""

import io

import numpy as np
import pytest
from PIL import Image

from transferkit.data import DecodeError, load_image


def save(path, im, **kw):
    im.save(path, **kw)
    return str(path)


def test_modes_convert_to_rgb(tmp_path):
    rgb = Image.new("RGB", (20, 10), (200, 30, 40))
    cases = {
        "gray.png": rgb.convert("L"),
        "rgba.png": rgb.convert("RGBA"),
        "palette.png": rgb.convert("P"),
        "cmyk.jpg": rgb.convert("CMYK"),
        "bw.png": rgb.convert("1"),
    }
    for name, im in cases.items():
        arr = load_image(save(tmp_path / name, im), 16)
        assert arr.shape == (16, 16, 3) and arr.dtype == np.uint8, name


def test_sixteen_bit_png_is_scaled_not_clipped(tmp_path):
    arr16 = np.full((8, 8), 32768, dtype=np.uint16)
    path = save(tmp_path / "deep.png", Image.fromarray(arr16))
    out = load_image(path, 8)
    assert 120 <= out.mean() <= 135  # half of full scale, not clipped to 255


def test_transparent_pixels_become_white(tmp_path):
    im = Image.new("RGBA", (8, 8), (0, 0, 0, 0))
    out = load_image(save(tmp_path / "clear.png", im), 8)
    assert out.min() == 255


def test_exif_orientation_is_applied(tmp_path):
    im = Image.new("RGB", (40, 20), (255, 0, 0))
    im.paste((0, 0, 255), (0, 0, 20, 20))  # left half blue
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90° clockwise on display
    path = save(tmp_path / "rot.jpg", im, exif=exif, quality=95)
    out = load_image(path, 20)
    assert out[2, 10, 2] > 150 and out[17, 10, 0] > 150  # blue now on top, red at the bottom


def test_first_frame_of_animated_gif(tmp_path):
    frames = [Image.new("RGB", (8, 8), c) for c in [(255, 0, 0), (0, 255, 0)]]
    path = tmp_path / "anim.gif"
    frames[0].save(path, save_all=True, append_images=frames[1:])
    out = load_image(str(path), 8)
    assert out[..., 0].mean() > 200


@pytest.mark.parametrize("content,reason", [
    (b"", "not an image"),
    (b"hello, I am text", "not an image"),
])
def test_not_images(tmp_path, content, reason):
    path = tmp_path / "x.jpg"
    path.write_bytes(content)
    with pytest.raises(DecodeError, match=reason):
        load_image(str(path), 8)


def test_truncated_jpeg(tmp_path):
    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(buf, "JPEG")
    path = tmp_path / "cut.jpg"
    path.write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
    with pytest.raises(DecodeError, match="corrupt"):
        load_image(str(path), 8)


def test_decompression_bomb_is_refused(tmp_path):
    path = tmp_path / "bomb.png"
    Image.new("1", (20000, 20000)).save(path)
    with pytest.raises(DecodeError, match="decompression bomb"):
        load_image(str(path), 8, max_pixels=100_000_000 // 2)


def test_centre_crop(tmp_path):
    im = Image.new("RGB", (30, 10), (0, 0, 255))
    im.paste((255, 0, 0), (10, 0, 20, 10))  # red centre square
    out = load_image(save(tmp_path / "wide.png", im), 10, crop_fraction=1.0)
    assert out[..., 0].min() > 200 and out[..., 2].max() < 50
