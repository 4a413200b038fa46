"""Decoding one image file of any mode into an RGB uint8 array of the model's input size."""

from __future__ import annotations

import contextlib
import os
import stat
import warnings

import numpy as np

from ..errors import TransferkitError

# Larger images are refused as decompression bombs (PIL's own default is ~89 Mpx).
MAX_PIXELS = 178_956_970
RESAMPLE = ("nearest", "bilinear", "bicubic", "lanczos", "box", "hamming")


class DecodeError(Exception):
    """One file could not be turned into an image; `reason` says why in a few words."""

    def __init__(self, path: str, reason: str):
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.reason = reason


class TooManyPixels(DecodeError):
    """The image is larger than the pixel limit (a decompression bomb, or just too big to decode here)."""


class NotAnImage(DecodeError):
    """The file is in no image format Pillow knows."""


FILE_KINDS = ((stat.S_ISFIFO, "a named pipe"), (stat.S_ISSOCK, "a socket"), (stat.S_ISCHR, "a character device"),
              (stat.S_ISBLK, "a block device"), (stat.S_ISDIR, "a folder"))


def open_regular(path):
    """Open a file for reading only if it is a regular file: a named pipe, socket, device or folder is refused
    before anything reads it (opening a pipe without O_NONBLOCK waits for a writer forever).

    Raises:
        DecodeError: not a regular file, gone, or unreadable (the reason says which).

    Example:
    >>> with open_regular("cat.jpg") as f:  # doctest: +SKIP
    ...     head = f.read(16)
    """
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        raise DecodeError(str(path), "file not found (deleted while running?)") from None
    except PermissionError:
        raise DecodeError(str(path), "permission denied") from None
    except IsADirectoryError:
        raise DecodeError(str(path), "not a regular file (a folder)") from None
    except OSError as exc:
        raise DecodeError(str(path), f"cannot open: {exc.strerror or exc}") from None
    mode = os.fstat(fd).st_mode
    if not stat.S_ISREG(mode):
        os.close(fd)
        kind = next((name for test, name in FILE_KINDS if test(mode)), "not a plain file")
        raise DecodeError(str(path), f"not a regular file ({kind})")
    if hasattr(os, "set_blocking"):
        os.set_blocking(fd, True)
    return os.fdopen(fd, "rb")


def _to_rgb(im):
    """Convert any PIL mode to RGB: 16-bit and float scaled to 8 bits, transparency composited on white."""
    from PIL import Image

    mode = im.mode
    if mode == "RGB":
        return im
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        arr = np.asarray(im, dtype=np.float64)
        hi = 65535.0 if mode.startswith("I;16") or arr.max(initial=0) > 255 else 255.0
        arr8 = np.clip(arr / hi * 255.0 + 0.5, 0, 255).astype(np.uint8)
        return Image.fromarray(arr8, "L").convert("RGB")
    if mode == "P":
        im = im.convert("RGBA") if "transparency" in im.info else im.convert("RGB")
        mode = im.mode
    if mode in ("LA", "La", "PA"):
        im = im.convert("RGBA")
        mode = "RGBA"
    if mode in ("RGBA", "RGBa"):
        background = Image.new("RGB", im.size, (255, 255, 255))
        background.paste(im.convert("RGBA"), mask=im.convert("RGBA").getchannel("A"))
        return background
    return im.convert("RGB")  # L, 1, CMYK, YCbCr, LAB, HSV


REDUCIBLE = ("RGB", "RGBA", "L", "LA", "I", "F", "CMYK", "YCbCr")
REDUCE_ABOVE = 16_000_000  # pixels: larger decodes are reduced at once (memory), smaller ones left as they are


def _reduced(im, need: float):
    """`im` shrunk by a whole factor (box average) while it stays at least twice the needed side, right after
    decoding, when it has more than `REDUCE_ABOVE` pixels: the conversions that follow (RGBA on white, EXIF
    turns) then work on the small image, and the full-resolution one is freed at once. (JPEGs are reduced while
    decoding instead, in draft mode.)"""
    factor = int(min(im.size) // (2 * need))
    if factor < 2 or im.mode not in REDUCIBLE or im.size[0] * im.size[1] <= REDUCE_ABOVE:
        return im
    im.load()
    return im.reduce(factor)


def _crop_resize(im, size: int, crop_fraction: float | None, filt):
    """The centre square of side `crop_fraction` × the shorter side (None: the whole image), resized to
    `size` × `size`."""
    w, h = im.size
    box = None
    if crop_fraction:
        side = max(1.0, min(w, h) * crop_fraction)
        left, top = (w - side) / 2, (h - side) / 2
        box = (left, top, left + side, top + side)
    if (w, h) != (size, size) or box is not None:
        im = im.resize((size, size), filt, box=box)
    return im


def load_image(path: str, size: int, *, crop_fraction: float | None = None, resample: str = "bilinear",
               max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """Read one image as a (size, size, 3) uint8 RGB array.

    EXIF orientation is applied; multi-frame files (GIF, TIFF) give their first
    frame; grayscale, palette, CMYK, 16-bit and transparent images are converted.
    JPEGs are decoded at a reduced scale when the target is much smaller (PIL draft mode).

    Args:
        path: the image file (only a regular file is opened: `open_regular`), or a binary file object.
        size: output side in pixels.
        crop_fraction: None resizes the whole image (aspect ratio not kept, as Keras
            does); a fraction f takes the centre square of side f × shorter side.
        resample: PIL filter name ("bilinear", "bicubic", ...).
        max_pixels: larger images are refused as decompression bombs.

    Raises:
        DecodeError: the file is not a readable image (reason in `.reason`).

    Example:
    >>> load_image("cat.jpg", 224).shape  # doctest: +SKIP
    (224, 224, 3)
    """
    from PIL import Image, ImageOps, UnidentifiedImageError

    filt = getattr(Image.Resampling, resample.upper())
    try:
        with warnings.catch_warnings():
            # `max_pixels` is the limit (checked from the header below); Pillow's own warning would cite its own
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            source = open_regular(path) if isinstance(path, (str, os.PathLike)) else contextlib.nullcontext(path)
            with source as f, Image.open(f) as opened:
                im = opened
                w, h = im.size
                if w * h > max_pixels:
                    raise TooManyPixels(path, f"decompression bomb: {w}x{h} pixels exceeds the limit of "
                                              f"{max_pixels}")
                if w < 1 or h < 1:
                    raise DecodeError(path, f"empty image ({w}x{h})")
                if im.format == "JPEG":
                    # Decode at 1/2, 1/4 or 1/8 scale while still >= the needed resolution.
                    need = size / crop_fraction if crop_fraction else size
                    im.draft("RGB", (int(need * w / min(w, h)) + 1, int(need * h / min(w, h)) + 1)
                             if crop_fraction else (size, size))
                im.seek(0)
                im = _reduced(im, size / crop_fraction if crop_fraction else size)
                if im is not opened:
                    opened.close()  # the full-resolution decode is not kept while the rest runs
                im = ImageOps.exif_transpose(im)
                im.load()
                im = _to_rgb(im)
                arr = np.asarray(_crop_resize(im, size, crop_fraction, filt), dtype=np.uint8)
    except DecodeError:
        raise
    except FileNotFoundError:
        raise DecodeError(path, "file not found (deleted while running?)") from None
    except PermissionError:
        raise DecodeError(path, "permission denied") from None
    except IsADirectoryError:
        raise DecodeError(path, "is a directory") from None
    except UnidentifiedImageError:
        raise NotAnImage(path, "not an image (unrecognised format)") from None
    except Image.DecompressionBombError as exc:
        raise TooManyPixels(path, f"decompression bomb: {exc}") from None
    except (OSError, ValueError, SyntaxError, EOFError, MemoryError) as exc:
        text = str(exc) or type(exc).__name__
        if "truncated" in text:
            text = "truncated or corrupt image data"
        raise DecodeError(path, f"corrupt image: {text}") from None
    if arr.shape != (size, size, 3):  # defensive: every branch above yields RGB
        raise DecodeError(path, f"unexpected decoded shape {arr.shape}")
    return arr


def check_resample(resample: str) -> str:
    """Validate a resampling filter name."""
    if resample not in RESAMPLE:
        from ..errors import one_of_message

        raise TransferkitError(one_of_message("resample", resample, list(RESAMPLE)))
    return resample
