"""The TNG intra codec: `compress(image, quality) -> bytes`, `decompress(bytes) -> image`.

    x -> pad to a multiple of 64 -> g_a -> * gain(q) -> LatentCodec (hyperprior, ANS) -> bytes
    bytes -> LatentCodec -> y_hat * inverse gain(q) -> g_s -> crop -> RGB8

Files are written in format 2, whose means and synthesis run in fixed point
(`tngvideo.nn.fixed`): a file decodes to the same pixels on every machine. Format 1 files
(float reconstruction) still decode.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from tngvideo.bitstream import BitstreamError, TngImageFile, pack_image, unpack_image
from tngvideo.errors import DecodeError
from tngvideo.image.model import TNGImageModel
from tngvideo.image.registry import DEFAULT_MODEL, weights_path
from tngvideo.image.weights import LoadedModel, load_weights
from tngvideo.latent.codec import LatentCodec, LatentStreams
from tngvideo.latent.search import encode_latents
from tngvideo.limits import IMAGE_DECODE, MemoryLimitError, check_memory

__all__ = ["CompressResult", "DecodeError", "ImageCodec", "check_quality", "to_rgb8"]


@dataclass(frozen=True)
class CompressResult:
    data: bytes
    reconstruction: np.ndarray  # (H, W, 3) uint8, exactly what decompress(data) returns
    estimated_bits: float
    payload_bits: int  # bits of the entropy-coded streams (header excluded)


def to_rgb8(image: np.ndarray) -> np.ndarray:
    """Conversion rule: greyscale is copied to R, G and B; an alpha channel is dropped."""
    a = np.asarray(image)
    if a.dtype != np.uint8:
        raise ValueError(f"expected uint8 pixels, got {a.dtype}")
    if a.ndim == 2:
        a = a[:, :, None]
    if a.ndim != 3 or a.shape[2] not in (1, 2, 3, 4):
        raise ValueError(f"expected an HxW, HxWx1, HxWx3 or HxWx4 image, got shape {a.shape}")
    if a.shape[2] in (1, 2):
        a = np.repeat(a[:, :, :1], 3, axis=2)
    return np.ascontiguousarray(a[:, :, :3])


def check_quality(quality: float, quality_range: tuple[float, float]) -> float:
    """`quality` rounded to what a file carries (0.01 steps); ValueError outside the range."""
    lo, hi = quality_range
    if not (lo <= float(quality) <= hi):
        raise ValueError(f"quality must be between {lo:g} and {hi:g}, got {quality}")
    return round(float(quality) * 100) / 100


class ImageCodec:
    """A loaded model plus its integer tables: everything needed to code images."""

    def __init__(self, loaded: LoadedModel, *, device: str | torch.device = "cpu"):
        if loaded.tables is None:
            raise ValueError(f"model '{loaded.name}' has no entropy tables; build them with build_tables() first")
        self.name = loaded.name
        self.weights_hash = loaded.weights_hash
        self.model: TNGImageModel = loaded.model.eval().to(device)
        self.device = torch.device(device)
        self.latents = LatentCodec(self.model, loaded.tables)

    @classmethod
    def from_name(cls, name: str = DEFAULT_MODEL, *, device: str | torch.device = "cpu") -> "ImageCodec":
        return cls(load_weights(weights_path(name)), device=device)

    @property
    def quality_range(self) -> tuple[float, float]:
        return self.model.config.min_quality, self.model.config.max_quality

    def check_quality(self, quality: float) -> float:
        return check_quality(quality, self.quality_range)

    @torch.no_grad()
    def encode_tensor(self, x: torch.Tensor, quality: float, *, search_steps: int = 0,
                      hw: tuple[int, int] | None = None, exact: bool = True) -> tuple[LatentStreams, torch.Tensor]:
        """x: (1, 3, H, W) in [0, 1], H and W multiples of 64 -> streams and the reconstruction
        (in fixed point with `exact`, as format 2 files are decoded).

        search_steps > 0 refines the latents for this image first (`tngvideo.latent.search`) over the
        region hw (the real image size; default all of x)."""
        x = x.to(self.device)
        streams, y_hat = encode_latents(self.latents, self.model, x, quality, search_steps=search_steps, hw=hw,
                                        exact=exact)
        return streams, self.latents.synthesize(y_hat, quality, exact=exact)

    @torch.no_grad()
    def decode_tensor(self, streams: LatentStreams, padded_hw: tuple[int, int], quality: float, *,
                      exact: bool = True) -> torch.Tensor:
        h, w = padded_hw
        shape = (1, self.model.config.latent_channels, h // 16, w // 16)
        y_hat = self.latents.decode(streams, shape, self.device, exact=exact)
        return self.latents.synthesize(y_hat, quality, exact=exact)

    # -- images -----------------------------------------------------------------------------
    def compress_with_info(self, image: np.ndarray, quality: float, *, search_steps: int = 0,
                           exact: bool = True) -> CompressResult:
        """Code an RGB8 image. `exact=False` writes a format 1 file (float reconstruction, which
        differs between machines): only to compare with files made before format 2."""
        rgb = to_rgb8(image)
        h, w = rgb.shape[:2]
        if h == 0 or w == 0:
            raise ValueError("empty image")
        quality = self.check_quality(quality)
        x = tensor_from_rgb8(rgb)
        streams, x_hat = self.encode_tensor(x, quality, search_steps=search_steps, hw=(h, w), exact=exact)
        f = TngImageFile(
            model=self.name, weights_hash=self.weights_hash, width=w, height=h, quality=quality,
            hyper=streams.hyper, latent=streams.latent, symbols_crc=streams.symbols_crc, version=2 if exact else 1,
        )
        return CompressResult(
            data=pack_image(f), reconstruction=rgb8_from_tensor(x_hat, h, w), estimated_bits=streams.estimated_bits,
            payload_bits=streams.payload_bits,
        )

    def compress(self, image: np.ndarray, quality: float, *, search_steps: int = 0) -> bytes:
        return self.compress_with_info(image, quality, search_steps=search_steps).data

    def decompress(self, data: bytes) -> np.ndarray:
        try:
            f = unpack_image(data)
        except BitstreamError as exc:
            raise DecodeError(str(exc)) from None
        if f.model != self.name or f.weights_hash != self.weights_hash:
            raise DecodeError(
                f"file was made with model '{f.model}' (weights {f.weights_hash.hex()}), "
                f"this decoder has '{self.name}' (weights {self.weights_hash.hex()})"
            )
        lo, hi = self.quality_range
        if not lo <= f.quality <= hi:
            raise DecodeError(f"quality {f.quality} is outside this model's range")
        ph, pw = (_ceil(f.height, 64), _ceil(f.width, 64))
        streams = LatentStreams(f.hyper, f.latent, f.symbols_crc, estimated_bits=float("nan"))
        self.latents.check_stream_lengths(streams, (1, self.model.config.latent_channels, ph // 16, pw // 16))
        try:  # both before any network runs
            check_memory(f.width, f.height, IMAGE_DECODE)
        except MemoryLimitError as exc:
            raise DecodeError(str(exc)) from None
        x_hat = self.decode_tensor(streams, (ph, pw), f.quality, exact=f.exact)
        return rgb8_from_tensor(x_hat, f.height, f.width)


def _ceil(v: int, m: int) -> int:
    return -(-v // m) * m


def _pad(x: torch.Tensor, multiple: int) -> torch.Tensor:
    h, w = x.shape[-2:]
    ph, pw = _ceil(h, multiple) - h, _ceil(w, multiple) - w
    if ph == 0 and pw == 0:
        return x
    # replicate needs pad < size for reflect only; replicate works for any size
    return F.pad(x, (0, pw, 0, ph), mode="replicate")


def tensor_from_rgb8(rgb: np.ndarray) -> torch.Tensor:
    """(H, W, 3) uint8 -> (1, 3, H', W') float in [0, 1], padded (replicated) to the model's multiple."""
    return _pad(torch.from_numpy(rgb).permute(2, 0, 1)[None].float() / 255.0, TNGImageModel.PAD_MULTIPLE)


def rgb8_from_tensor(x_hat: torch.Tensor, h: int, w: int) -> np.ndarray:
    """The top-left h x w of a reconstruction (1, 3, H', W') as uint8 RGB."""
    x = x_hat[0, :, :h, :w].clamp(0, 1).mul(255).round().to(torch.uint8)
    return x.permute(1, 2, 0).cpu().numpy()
