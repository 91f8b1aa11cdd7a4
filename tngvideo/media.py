"""Media I/O for still images (Pillow). Thin: decoding errors become `MediaError`."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from tngvideo.fileio import atomic_output

Image.MAX_IMAGE_PIXELS = 1 << 27


class MediaError(ValueError):
    """The input is not readable media."""


def read_image(path: str | os.PathLike) -> np.ndarray:
    """Any image Pillow reads -> (H, W, 3) uint8. Greyscale is replicated, alpha dropped, 16-bit scaled."""
    try:
        with Image.open(path) as im:
            im.load()
            if im.mode in ("I;16", "I;16B", "I;16L", "I"):
                a = np.asarray(im, dtype=np.float64)
                im = Image.fromarray(np.clip(a / 257.0 + 0.5, 0, 255).astype(np.uint8))
            return np.array(im.convert("RGB"))
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        raise MediaError(f"not a readable image ({exc.__class__.__name__})") from None


def write_image(path: str | os.PathLike, rgb: np.ndarray) -> None:
    """Write an (H, W, 3) uint8 array; the format follows the suffix (PNG by default)."""
    path = Path(path)
    fmt = Image.registered_extensions().get(path.suffix.lower(), "PNG")
    with atomic_output(path) as tmp:
        Image.fromarray(rgb).save(tmp, format=fmt)
