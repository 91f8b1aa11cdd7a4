"""The TNG intra codec: `compress(image, quality) -> bytes`, `decompress(bytes) -> image`.

Coding path (encoder and decoder run the same steps on the same integers):

    x -> pad to a multiple of 64 -> g_a -> * gain(q) -> y
    y -> h_a -> round -> z symbols           (factorized tables, one per channel)
    z -> ExactNet(h_s) -> scale indices      (integer arithmetic: identical everywhere)
    z -> h_m -> means
    round(y - mean) -> y symbols             (Gaussian tables chosen by the indices)
    (y symbols + mean) * inverse gain(q) -> g_s -> crop -> RGB8
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from tngvideo.bitstream import BitstreamError, TngImageFile, pack_image, unpack_image
from tngvideo.entropy import ACT_BITS, CorruptStreamError, ExactNet, decode_symbols, encode_symbols
from tngvideo.image.model import TNGImageModel
from tngvideo.image.registry import DEFAULT_MODEL, weights_path
from tngvideo.image.weights import EntropyTables, LoadedModel, load_weights


class DecodeError(ValueError):
    """A stream that this codec cannot decode (corrupt, or made by other weights)."""


@dataclass(frozen=True)
class LatentCode:
    """Entropy-coded latents plus what the encoder knows about them."""

    hyper: bytes
    latent: bytes
    symbols_crc: int
    estimated_bits: float  # ideal code length under the model's tables
    x_hat: torch.Tensor  # (1, 3, Hp, Wp) padded float reconstruction, as the decoder will see it


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


def _symbols_crc(*arrays: np.ndarray) -> int:
    crc = 0
    for a in arrays:
        crc = zlib.crc32(np.ascontiguousarray(a, dtype="<i4").tobytes(), crc)
    return crc


class ImageCodec:
    """A loaded model plus its integer tables: everything needed to code images."""

    def __init__(self, loaded: LoadedModel, *, device: str | torch.device = "cpu"):
        if loaded.tables is None:
            raise ValueError(f"model '{loaded.name}' has no entropy tables; build them with build_tables() first")
        self.name = loaded.name
        self.weights_hash = loaded.weights_hash
        self.model: TNGImageModel = loaded.model.eval().to(device)
        self.tables: EntropyTables = loaded.tables
        self.device = torch.device(device)
        self._scale_net = ExactNet(self.model.h_s)

    @classmethod
    def from_name(cls, name: str = DEFAULT_MODEL, *, device: str | torch.device = "cpu") -> "ImageCodec":
        return cls(load_weights(weights_path(name)), device=device)

    @property
    def quality_range(self) -> tuple[float, float]:
        return self.model.config.min_quality, self.model.config.max_quality

    def check_quality(self, quality: float) -> float:
        lo, hi = self.quality_range
        if not (lo <= float(quality) <= hi):
            raise ValueError(f"quality must be between {lo:g} and {hi:g}, got {quality}")
        return round(float(quality) * 100) / 100  # what the file can carry

    # -- latent coding, shared with the video codec ---------------------------------------
    def _hyper_indices(self, shape: tuple[int, ...]) -> np.ndarray:
        return np.broadcast_to(np.arange(shape[1]).reshape(1, -1, 1, 1), shape)

    def _decode_side(self, z_sym: torch.Tensor) -> tuple[np.ndarray, torch.Tensor]:
        """From hyper-latent symbols: exact scale indices and float means."""
        indices = self.model.gaussian.scale_index(self._scale_net(z_sym), ACT_BITS).numpy()
        mean = self.model.h_m(z_sym.to(self.device))
        return indices, mean

    @torch.no_grad()
    def encode_tensor(self, x: torch.Tensor, quality: float) -> LatentCode:
        """x: (1, 3, H, W) float in [0, 1], H and W multiples of 64."""
        m = self.model
        q = torch.tensor([quality], device=self.device)
        gain, inv_gain = m.gains(q)
        y = m.g_a(x.to(self.device)) * gain
        z_sym = torch.round(m.h_a(y)).cpu()
        indices, mean = self._decode_side(z_sym)
        y_sym = torch.round(y - mean)
        z_np = z_sym.numpy().astype(np.int64)
        y_np = y_sym.cpu().numpy().astype(np.int64)
        h_idx = self._hyper_indices(z_np.shape)
        hyper = encode_symbols(z_np, h_idx, self.tables.hyper)
        latent = encode_symbols(y_np, indices, self.tables.latent)
        est = self.tables.hyper.bits(z_np.ravel(), h_idx.ravel()) + self.tables.latent.bits(y_np.ravel(), indices.ravel())
        x_hat = m.g_s((y_sym + mean) * inv_gain)
        return LatentCode(hyper, latent, _symbols_crc(z_np, y_np), est, x_hat)

    @torch.no_grad()
    def decode_tensor(self, hyper: bytes, latent: bytes, symbols_crc: int, padded_hw: tuple[int, int], quality: float) -> torch.Tensor:
        m = self.model
        h, w = padded_hw
        z_shape = (1, m.config.channels, h // 64, w // 64)
        try:
            z_np = decode_symbols(hyper, self._hyper_indices(z_shape), self.tables.hyper)
            z_sym = torch.from_numpy(z_np.astype(np.float32))
            indices, mean = self._decode_side(z_sym)
            y_np = decode_symbols(latent, indices, self.tables.latent)
        except CorruptStreamError as exc:
            raise DecodeError(str(exc)) from None
        if _symbols_crc(z_np, y_np) != symbols_crc:
            raise DecodeError("decoded symbols do not match the encoder's (corrupt stream or different weights)")
        _, inv_gain = m.gains(torch.tensor([quality], device=self.device))
        y_hat = torch.from_numpy(y_np.astype(np.float32)).to(self.device) + mean
        return m.g_s(y_hat * inv_gain)

    # -- images -----------------------------------------------------------------------------
    def compress_with_info(self, image: np.ndarray, quality: float) -> CompressResult:
        rgb = to_rgb8(image)
        h, w = rgb.shape[:2]
        if h == 0 or w == 0:
            raise ValueError("empty image")
        quality = self.check_quality(quality)
        x = _pad(torch.from_numpy(rgb).permute(2, 0, 1)[None].float() / 255.0, TNGImageModel.PAD_MULTIPLE)
        code = self.encode_tensor(x, quality)
        f = TngImageFile(
            model=self.name, weights_hash=self.weights_hash, width=w, height=h, quality=quality,
            hyper=code.hyper, latent=code.latent, symbols_crc=code.symbols_crc,
        )
        data = pack_image(f)
        return CompressResult(
            data=data, reconstruction=_to_uint8(code.x_hat, h, w), estimated_bits=code.estimated_bits,
            payload_bits=8 * (len(code.hyper) + len(code.latent)),
        )

    def compress(self, image: np.ndarray, quality: float) -> bytes:
        return self.compress_with_info(image, quality).data

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
        x_hat = self.decode_tensor(f.hyper, f.latent, f.symbols_crc, (ph, pw), f.quality)
        return _to_uint8(x_hat, f.height, f.width)


def _ceil(v: int, m: int) -> int:
    return -(-v // m) * m


def _pad(x: torch.Tensor, multiple: int) -> torch.Tensor:
    h, w = x.shape[-2:]
    ph, pw = _ceil(h, multiple) - h, _ceil(w, multiple) - w
    if ph == 0 and pw == 0:
        return x
    # replicate needs pad < size for reflect only; replicate works for any size
    return F.pad(x, (0, pw, 0, ph), mode="replicate")


def _to_uint8(x_hat: torch.Tensor, h: int, w: int) -> np.ndarray:
    x = x_hat[0, :, :h, :w].clamp(0, 1).mul(255).round().to(torch.uint8)
    return x.permute(1, 2, 0).cpu().numpy()
