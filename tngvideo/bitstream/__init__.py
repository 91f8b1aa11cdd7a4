"""Bitstream formats. Pure byte layouts: this package never imports a model."""

from tngvideo.bitstream.errors import BitstreamError
from tngvideo.bitstream.tng_file import MAX_PIXELS, MAX_SIDE, TngImageFile, pack_image, unpack_image

__all__ = ["BitstreamError", "MAX_PIXELS", "MAX_SIDE", "TngImageFile", "pack_image", "unpack_image"]
