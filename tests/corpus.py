"""A generated corpus of awkward inputs (nothing committed): each entry knows its documented behaviour."""

from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np
from PIL import Image


def _jpeg_bytes(arr, **kw) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, "JPEG", **kw)
    return buf.getvalue()


def build_corpus(root: Path) -> dict[str, str]:
    """Write the corpus under `root` (one folder, unlabelled); return {relative path: "ok" or a skip reason}.

    "ok" means converted to an RGB image; any other value is a substring of the reason it is skipped with.
    """
    rng = np.random.default_rng(0)
    root.mkdir(parents=True, exist_ok=True)
    rgb = rng.integers(0, 256, (40, 60, 3), dtype=np.uint8)
    expected: dict[str, str] = {}

    def put(name: str, data: bytes | None = None, image: Image.Image | None = None, outcome="ok", **save):
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if image is not None:
            image.save(path, **save)
        else:
            path.write_bytes(data)
        expected[name] = outcome

    good = _jpeg_bytes(rgb)
    put("truncated.jpg", good[: len(good) // 2], outcome="corrupt")
    put("zero_bytes.jpg", b"", outcome="not an image")
    put("text_named.jpg", b"this is a text file, not a picture\n", outcome="not an image")
    put("png_named.jpg", image=Image.fromarray(rgb), format="PNG")
    put("cmyk.jpg", image=Image.fromarray(rgb).convert("CMYK"))
    put("sixteen_bit.png", image=Image.fromarray((rgb[..., 0].astype(np.uint16) * 257)))
    palette = Image.fromarray(rgb).convert("P")
    put("palette_transparent.png", image=palette, transparency=0)
    put("rgba.png", image=Image.fromarray(np.dstack([rgb, rgb[..., :1]])))
    put("grayscale.png", image=Image.fromarray(rgb[..., 0]))
    for orientation in range(1, 9):
        exif = Image.Exif()
        exif[0x0112] = orientation
        put(f"exif/orientation_{orientation}.jpg", image=Image.fromarray(rgb), exif=exif)
    frames = [Image.fromarray(rgb), Image.fromarray(255 - rgb)]
    put("animated.gif", image=frames[0], save_all=True, append_images=frames[1:])
    put("multipage.tif", image=frames[0], save_all=True, append_images=frames[1:])
    put("one_pixel.png", image=Image.new("RGB", (1, 1), (200, 10, 10)))
    put("very_large.jpg", image=Image.new("RGB", (6000, 4000), (30, 90, 200)), quality=70)
    put("bomb.png", image=Image.new("1", (20000, 20000)), outcome="decompression bomb")
    put("ünïcödé name with spaces.png", image=Image.fromarray(rgb))
    put("image.jpg/inside_a_folder_named_like_an_image.png", image=Image.fromarray(rgb))
    (root / "loop").mkdir(exist_ok=True)
    os.symlink("..", root / "loop" / "back_to_root")  # a symlink loop: listed once, never followed forever
    os.symlink(root / "does_not_exist.png", root / "dangling_link.png")
    expected["dangling_link.png"] = "file not found"
    put("unreadable.png", image=Image.fromarray(rgb))
    os.chmod(root / "unreadable.png", 0)
    if os.geteuid() != 0:  # root reads anything: then the file is simply converted
        expected["unreadable.png"] = "permission denied"
    return expected
