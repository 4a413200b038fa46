"""Image folders in, uint8 batches out: indexing, decoding and labels."""

from .decode import DecodeError, load_image
from .folder import IMAGE_EXTENSIONS, ImageIndex, index_images
from .input_config import PREPROCESSING, InputConfig, Preprocessing

__all__ = ["DecodeError", "IMAGE_EXTENSIONS", "ImageIndex", "InputConfig", "PREPROCESSING", "Preprocessing",
           "index_images", "load_image"]
