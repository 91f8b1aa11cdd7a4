"""Entropy coding of one gained latent through its hyperprior: tensors <-> two byte streams.

Shared by the image codec and, in the video codec, by the motion and residual coders.

    y -> h_a -> round -> z symbols           (factorized tables, one per channel)
    z -> ExactNet(h_s) -> scale indices      (integer arithmetic: identical everywhere)
    z -> h_m -> means
    round(y - mean) -> y symbols             (Gaussian tables chosen by the indices)
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

import numpy as np
import torch

from tngvideo.entropy import ACT_BITS, CorruptStreamError, ExactNet, decode_symbols, encode_symbols
from tngvideo.image.model import HyperpriorCoder
from tngvideo.image.weights import EntropyTables


class DecodeError(ValueError):
    """A stream that this codec cannot decode (corrupt, or made by other weights)."""


@dataclass(frozen=True)
class LatentStreams:
    hyper: bytes
    latent: bytes
    symbols_crc: int  # CRC-32 of all decoded symbols: a decoder that disagrees is caught
    estimated_bits: float  # ideal code length under the tables

    @property
    def payload_bits(self) -> int:
        return 8 * (len(self.hyper) + len(self.latent))


def _symbols_crc(*arrays: np.ndarray) -> int:
    crc = 0
    for a in arrays:
        crc = zlib.crc32(np.ascontiguousarray(a, dtype="<i4").tobytes(), crc)
    return crc


class LatentCodec:
    def __init__(self, coder: HyperpriorCoder, tables: EntropyTables):
        self.coder = coder
        self.tables = tables
        self._scale_net = ExactNet(coder.h_s)  # explicit step: integer h_s from the weights

    def _hyper_indices(self, shape: tuple[int, ...]) -> np.ndarray:
        return np.broadcast_to(np.arange(shape[1]).reshape(1, -1, 1, 1), shape)

    def _side(self, z_sym: torch.Tensor, device: torch.device) -> tuple[np.ndarray, torch.Tensor]:
        """From hyper-latent symbols: exact scale indices and float means."""
        indices = self.coder.gaussian.scale_index(self._scale_net(z_sym), ACT_BITS).numpy()
        return indices, self.coder.h_m(z_sym.to(device))

    def hyper_shape(self, latent_shape: tuple[int, int, int, int]) -> tuple[int, int, int, int]:
        b, _, h, w = latent_shape
        return (b, self.coder.config.channels, -(-h // 4), -(-w // 4))

    @torch.no_grad()
    def encode(self, y: torch.Tensor, z: torch.Tensor | None = None) -> tuple[LatentStreams, torch.Tensor]:
        """y: gained latent (1, M, h, w) with h, w multiples of 4; z: its hyper-latent (default:
        h_a(y); an encoder search may pass its own). Returns streams and y_hat."""
        z_sym = torch.round(self.coder.h_a(y) if z is None else z).cpu()
        indices, mean = self._side(z_sym, y.device)
        y_sym = torch.round(y - mean)
        z_np = z_sym.numpy().astype(np.int64)
        y_np = y_sym.cpu().numpy().astype(np.int64)
        h_idx = self._hyper_indices(z_np.shape)
        est = self.tables.hyper.bits(z_np.ravel(), h_idx.ravel()) + self.tables.latent.bits(y_np.ravel(), indices.ravel())
        streams = LatentStreams(
            hyper=encode_symbols(z_np, h_idx, self.tables.hyper),
            latent=encode_symbols(y_np, indices, self.tables.latent),
            symbols_crc=_symbols_crc(z_np, y_np),
            estimated_bits=est,
        )
        return streams, y_sym + mean

    @torch.no_grad()
    def decode(self, streams: LatentStreams, latent_shape: tuple[int, int, int, int], device: torch.device) -> torch.Tensor:
        """Inverse of `encode`: the same y_hat the encoder had."""
        try:
            z_np = decode_symbols(streams.hyper, self._hyper_indices(self.hyper_shape(latent_shape)), self.tables.hyper)
            z_sym = torch.from_numpy(z_np.astype(np.float32))
            indices, mean = self._side(z_sym, device)
            y_np = decode_symbols(streams.latent, indices, self.tables.latent)
        except CorruptStreamError as exc:
            raise DecodeError(str(exc)) from None
        if _symbols_crc(z_np, y_np) != streams.symbols_crc:
            raise DecodeError("decoded symbols do not match the encoder's (corrupt stream or different weights)")
        return torch.from_numpy(y_np.astype(np.float32)).to(device) + mean
