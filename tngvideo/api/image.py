"""Still images in the public API: `tngvideo.encode_image` (any picture Pillow reads -> .tng),
`tngvideo.decode_image`, and `demo`, the round trip of a sample photo at a few qualities."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from tngvideo.api.paths import check_input, check_output
from tngvideo.errors import BadInputError

if TYPE_CHECKING:
    from tngvideo.image.codec import ImageCodec


@dataclass(frozen=True)
class ImageEncodeResult:
    """The .tng written: its size in bytes and bits per pixel, the reconstruction's PSNR over RGB
    (the picture any decoder gets) and the encode time."""

    path: Path
    width: int
    height: int
    bytes: int
    bpp: float
    psnr_rgb: float
    encode_ms: float


@dataclass(frozen=True)
class ImageDecodeResult:
    path: Path
    width: int
    height: int
    decode_ms: float


def _codec(model: str) -> ImageCodec:
    from tngvideo.image.codec import ImageCodec

    return ImageCodec.from_name(model)


def _check_image_input(src: Path, search: int) -> None:
    """The picture's size, from its header, against the limits and this machine's memory: before
    any pixel is decoded or encoded."""
    from tngvideo.bitstream.tng_file import check_size
    from tngvideo.limits import IMAGE_ENCODE, IMAGE_SEARCH, check_memory
    from tngvideo.media import probe_image

    w, h = probe_image(src)
    check_size(w, h)
    check_memory(w, h, IMAGE_SEARCH if search else IMAGE_ENCODE)


def encode_image(src: str | Path, dst: str | Path | None = None, *, quality: float = 6.0, model: str | None = None,
                 search: int = 0, overwrite: bool = False) -> ImageEncodeResult:
    """Encode a picture to a .tng (default: next to `src`) at `quality`, 1 (smallest) .. the
    model's top level. `search` > 0: an encoder-side latent search of that many steps (fewer
    bytes, a slower encode; decoding is unchanged). An unknown `model` raises UnknownModelError."""
    from tngvideo.fileio import atomic_write_bytes
    from tngvideo.image.registry import DEFAULT_MODEL
    from tngvideo.media import read_image
    from tngvideo.metrics import psnr

    src = check_input(src)
    out = check_output(dst or src.with_suffix(".tng"), overwrite, src=src)
    codec = _codec(DEFAULT_MODEL if model is None else model)
    _check_image_input(src, search)
    rgb = read_image(src)
    t = time.perf_counter()
    res = codec.compress_with_info(rgb, quality, search_steps=search)
    ms = (time.perf_counter() - t) * 1000
    atomic_write_bytes(out, res.data, overwrite=overwrite)
    h, w = rgb.shape[:2]
    return ImageEncodeResult(out, w, h, len(res.data), len(res.data) * 8 / (w * h), psnr(rgb, res.reconstruction), ms)


def decode_image(src: str | Path, dst: str | Path | None = None, *, overwrite: bool = False) -> ImageDecodeResult:
    """Decode a .tng into a picture file, its type by suffix (default: PNG next to `src`). A file
    that is not a .tng, or one made by a model not shipped here, raises BadInputError."""
    from tngvideo.bitstream import BitstreamError, unpack_image
    from tngvideo.image.registry import UnknownModelError
    from tngvideo.media import write_image

    src = check_input(src)
    out = check_output(dst or src.with_suffix(".png"), overwrite, src=src)
    data = src.read_bytes()
    try:
        model = unpack_image(data).model
    except BitstreamError as exc:
        raise BadInputError(f"{src}: {exc}") from exc
    try:
        codec = _codec(model)
    except UnknownModelError as exc:
        raise BadInputError(f"{src}: made with an {exc}") from exc
    t = time.perf_counter()
    rgb = codec.decompress(data)
    ms = (time.perf_counter() - t) * 1000
    write_image(out, rgb, overwrite=overwrite)
    return ImageDecodeResult(out, rgb.shape[1], rgb.shape[0], ms)


def sample_image() -> np.ndarray:
    """A natural photograph shipped with an installed package (matplotlib's sample data)."""
    import matplotlib

    from tngvideo.media import read_image

    return read_image(Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg")


@dataclass(frozen=True)
class DemoRow:
    """One quality's round trip: size, PSNR over RGB, the entropy model's estimate against the
    bits coded, times, and whether the decoder gave exactly the encoder's reconstruction."""

    quality: float
    bytes: int
    bpp: float
    psnr_rgb: float
    estimate_ratio: float
    encode_ms: float
    decode_ms: float
    exact: bool


@dataclass(frozen=True)
class Demo:
    """The sample photo's round trips: `rows` runs them one by one as it is iterated."""

    model: str
    weights_hash: str
    width: int
    height: int
    rows: Iterator[DemoRow]


def demo(model: str | None = None, qualities: list[float] | None = None) -> Demo:
    """Compress and decompress `sample_image()` at each quality (default: four spread over the
    model's range)."""
    from tngvideo.analysis.image_bench import model_qualities
    from tngvideo.image.registry import DEFAULT_MODEL

    rgb = sample_image()
    codec = _codec(DEFAULT_MODEL if model is None else model)
    h, w = rgb.shape[:2]
    return Demo(codec.name, codec.weights_hash.hex(), w, h,
                _round_trips(codec, rgb, qualities or model_qualities(codec, 4)))


def _round_trips(codec: ImageCodec, rgb: np.ndarray, qualities: list[float]) -> Iterator[DemoRow]:
    from tngvideo.metrics import psnr

    h, w = rgb.shape[:2]
    for q in qualities:
        t0 = time.perf_counter()
        res = codec.compress_with_info(rgb, q)
        t1 = time.perf_counter()
        dec = codec.decompress(res.data)
        t2 = time.perf_counter()
        yield DemoRow(q, len(res.data), len(res.data) * 8 / (w * h), psnr(rgb, dec),
                      res.estimated_bits / res.payload_bits, (t1 - t0) * 1000, (t2 - t1) * 1000,
                      bool(np.array_equal(dec, res.reconstruction)))
