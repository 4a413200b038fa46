"""Small JPEG previews of image files as data URLs, for the pages that show images (explore, audit)."""

from __future__ import annotations

import base64
import io
from pathlib import Path

from .decode import DecodeError, open_regular

THUMB = 96  # pixels on the longer side; ~2–4 kB each as JPEG


def thumbnail(path: Path) -> str:
    """A small JPEG of the image as a data URL ('' when it can no longer be read)."""
    data = preview_jpeg(path, THUMB)
    return "data:image/jpeg;base64," + base64.b64encode(data).decode() if data else ""


def preview_jpeg(path: Path, size: int, quality: int = 75) -> bytes:
    """The image as JPEG bytes, at most `size` pixels on its longer side, upright, transparency on white
    (b'' when it can no longer be read).

    Example:
    >>> preview_jpeg("images/cats/00.jpg", 480)[:2]  # doctest: +SKIP
    b'\\xff\\xd8'
    """
    from PIL import Image, ImageOps

    try:
        with open_regular(path) as f, Image.open(f) as im:
            im.draft("RGB", (size, size))  # JPEGs decode at a reduced scale when that is enough
            im = ImageOps.exif_transpose(im)
            im.thumbnail((size, size))
            if im.mode not in ("RGB", "L"):
                im = im.convert("RGBA")
                back = Image.new("RGB", im.size, "white")
                back.paste(im, mask=im.getchannel("A"))
                im = back
            buf = io.BytesIO()
            im.convert("RGB").save(buf, "JPEG", quality=quality)
    except (OSError, ValueError, Image.DecompressionBombError, DecodeError):
        return b""
    return buf.getvalue()


def gallery(entries, root=None) -> list[dict]:
    """Thumbnails with captions for a page or a notebook cell: `entries` are (path, caption lines); a relative
    path is read under `root`.

    Example:
    >>> gallery([("cats/00.jpg", ["cat", "0.97"])], root="images")[0]["lines"]
    ['cat', '0.97']
    """
    items = []
    for path, lines in entries:
        full = Path(root) / path if root is not None and not Path(path).is_absolute() else Path(path)
        items.append({"src": thumbnail(full), "path": str(path), "lines": [str(line) for line in lines]})
    return items
