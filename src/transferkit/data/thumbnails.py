"""Small JPEG previews of image files as data URLs, for the pages that show images (explore, audit)."""

from __future__ import annotations

import base64
import io
from pathlib import Path

from .decode import DecodeError, open_regular

THUMB = 96  # pixels on the longer side; ~2–4 kB each as JPEG


def thumbnail(path: Path) -> str:
    """A small JPEG of the image as a data URL ('' when it can no longer be read)."""
    from PIL import Image, ImageOps

    try:
        with open_regular(path) as f, Image.open(f) as im:
            im = ImageOps.exif_transpose(im)
            im.thumbnail((THUMB, THUMB))
            if im.mode not in ("RGB", "L"):
                im = im.convert("RGBA")
                back = Image.new("RGB", im.size, "white")
                back.paste(im, mask=im.getchannel("A"))
                im = back
            buf = io.BytesIO()
            im.convert("RGB").save(buf, "JPEG", quality=75)
    except (OSError, ValueError, Image.DecompressionBombError, DecodeError):
        return ""
    return "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode()
