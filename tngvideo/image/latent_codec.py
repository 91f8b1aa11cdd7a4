"""Entropy coding of one gained latent through its hyperprior: tensors <-> two byte streams.

Shared by the image codec and, in the video codec, by the motion and residual coders.

    y -> h_a -> round -> z symbols           (factorized tables, one per channel)
    z -> ExactNet(h_s) -> scale indices      (integer arithmetic: identical everywhere)
    z -> h_m -> means
    round(y - mean) -> y symbols             (Gaussian tables chosen by the indices)

With a context model the latent stream holds two groups: the checkerboard's anchors, coded as
above, then the other half, whose scale indices come from `ExactNet(ctx_s)` over the anchors'
symbols and the hyperprior's fixed-point log-scales (exact again) and whose means come from
`ctx_m` over the decoded anchors (float).
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

import numpy as np
import torch

from tngvideo.errors import DecodeError
from tngvideo.entropy import (
    ACT_BITS,
    CorruptStreamError,
    ExactNet,
    SymbolDecoder,
    decode_symbols,
    encode_symbol_groups,
    encode_symbols,
)
from tngvideo.image.model import HyperpriorCoder, checkerboard_anchors
from tngvideo.image.weights import EntropyTables


# A stream cannot be shorter than the information its symbols carry when each takes its most
# likely value (ANS output is at least that, less the coder's 64-bit state). Half of that bound
# is required: a tiny stream cannot describe a huge picture, and no real stream comes near it.
_BOUND_SHARE, _STATE_BITS = 0.5, 64


def _least_bytes(bits: float) -> int:
    return max(0, int((_BOUND_SHARE * bits - _STATE_BITS) // 8))


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
        # explicit step: integer versions of the scale networks, from the weights
        self._scale_net = ExactNet(coder.h_s)
        self._context_net = ExactNet(coder.ctx_s, in_bits=ACT_BITS) if coder.config.context else None
        self._hyper_bits = float(tables.hyper.least_bits().sum())  # one hyper-latent position, all channels
        self._latent_bits = float(tables.latent.least_bits().min())  # one latent symbol

    def _hyper_indices(self, shape: tuple[int, ...]) -> np.ndarray:
        return np.broadcast_to(np.arange(shape[1]).reshape(1, -1, 1, 1), shape)

    def _side(self, z_sym: torch.Tensor, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        """From hyper-latent symbols: exact fixed-point log-scales and float means."""
        return self._scale_net(z_sym), self.coder.h_m(z_sym.to(device))

    def _indices(self, log_scale_fp: torch.Tensor) -> np.ndarray:
        return self.coder.gaussian.scale_index(log_scale_fp, ACT_BITS).numpy()

    def _context(self, anchor_sym: torch.Tensor, log_scale_fp: torch.Tensor, mean: torch.Tensor
                 ) -> tuple[np.ndarray, torch.Tensor]:
        """Scale indices and means of the non-anchors from the anchors' symbols (zero elsewhere)."""
        assert self._context_net is not None
        anchor_sym = anchor_sym.cpu().double()
        d_scale = self._context_net(torch.cat([anchor_sym * float(1 << ACT_BITS), log_scale_fp], dim=1))
        d_mean = self.coder.context_mean_delta(anchor_sym.to(device=mean.device, dtype=mean.dtype), mean)
        return self._indices(log_scale_fp + d_scale), mean + d_mean

    def hyper_shape(self, latent_shape: tuple[int, int, int, int]) -> tuple[int, int, int, int]:
        b, _, h, w = latent_shape
        return (b, self.coder.config.channels, -(-h // 4), -(-w // 4))

    @torch.no_grad()
    def encode(self, y: torch.Tensor, z: torch.Tensor | None = None, *, mean_offset: torch.Tensor | None = None
               ) -> tuple[LatentStreams, torch.Tensor]:
        """y: gained latent (1, M, h, w) with h, w multiples of 4; z: its hyper-latent (default:
        h_a(y); an encoder search may pass its own); `mean_offset`: a conditional coder's term
        added to the hyperprior means (gained). Returns streams and y_hat."""
        z_sym = torch.round(self.coder.h_a(y) if z is None else z).cpu()
        log_scale_fp, mean = self._side(z_sym, y.device)
        if mean_offset is not None:
            mean = mean + mean_offset
        indices = self._indices(log_scale_fp)
        y_sym = torch.round(y - mean)
        if self._context_net is not None:
            anchor = checkerboard_anchors(y.shape[-2:], y.device).bool().expand_as(y)
            ctx_indices, ctx_mean = self._context(torch.where(anchor, y_sym, 0.0), log_scale_fp, mean)
            mean = torch.where(anchor, mean, ctx_mean)
            y_sym = torch.round(y - mean)
            groups_mask = anchor.cpu().numpy()
            indices = np.where(groups_mask, indices, ctx_indices)
        z_np = z_sym.numpy().astype(np.int64)
        y_np = y_sym.cpu().numpy().astype(np.int64)
        h_idx = self._hyper_indices(z_np.shape)
        est = self.tables.hyper.bits(z_np.ravel(), h_idx.ravel()) + self.tables.latent.bits(y_np.ravel(), indices.ravel())
        if self._context_net is not None:
            groups = [(y_np[groups_mask], indices[groups_mask]), (y_np[~groups_mask], indices[~groups_mask])]
        else:
            groups = [(y_np, indices)]
        streams = LatentStreams(
            hyper=encode_symbols(z_np, h_idx, self.tables.hyper),
            latent=encode_symbol_groups(groups, self.tables.latent),
            symbols_crc=_symbols_crc(z_np, y_np),
            estimated_bits=est,
        )
        return streams, y_sym + mean

    def least_stream_bytes(self, latent_shape: tuple[int, int, int, int]) -> tuple[int, int]:
        """(hyper-latent, latent) stream lengths below which no stream of this shape can be."""
        b, c, h, w = latent_shape
        _, _, hh, hw = self.hyper_shape(latent_shape)
        return _least_bytes(self._hyper_bits * b * hh * hw), _least_bytes(self._latent_bits * b * c * h * w)

    def check_stream_lengths(self, streams: LatentStreams, latent_shape: tuple[int, int, int, int]) -> None:
        """DecodeError when the streams are too short for the picture size they are decoded at
        (checked before anything is allocated for it)."""
        least_hyper, least_latent = self.least_stream_bytes(latent_shape)
        if len(streams.hyper) < least_hyper or len(streams.latent) < least_latent:
            raise DecodeError(f"{len(streams.hyper) + len(streams.latent)} bytes of coded data cannot describe a "
                              f"picture of this size (at least {least_hyper + least_latent} needed)")

    @torch.no_grad()
    def decode(self, streams: LatentStreams, latent_shape: tuple[int, int, int, int], device: torch.device, *,
               mean_offset: torch.Tensor | None = None) -> torch.Tensor:
        """Inverse of `encode` (given the same `mean_offset`): the same y_hat the encoder had."""
        self.check_stream_lengths(streams, latent_shape)
        try:
            z_np = decode_symbols(streams.hyper, self._hyper_indices(self.hyper_shape(latent_shape)), self.tables.hyper)
            z_sym = torch.from_numpy(z_np.astype(np.float32))
            log_scale_fp, mean = self._side(z_sym, device)
            if mean_offset is not None:
                mean = mean + mean_offset
            indices = self._indices(log_scale_fp)
            reader = SymbolDecoder(streams.latent)
            if self._context_net is None:
                y_np = reader.decode(indices, self.tables.latent)
            else:
                anchor = checkerboard_anchors(latent_shape[-2:]).bool().expand(latent_shape).numpy()
                y_np = np.zeros(latent_shape, dtype=np.int64)
                y_np[anchor] = reader.decode(indices[anchor], self.tables.latent)
                ctx_indices, ctx_mean = self._context(torch.from_numpy(y_np.astype(np.float32)), log_scale_fp, mean)
                y_np[~anchor] = reader.decode(ctx_indices[~anchor], self.tables.latent)
                mean = torch.where(torch.from_numpy(anchor).to(device), mean, ctx_mean)
        except CorruptStreamError as exc:
            raise DecodeError(str(exc)) from None
        if _symbols_crc(z_np, y_np) != streams.symbols_crc:
            raise DecodeError("decoded symbols do not match the encoder's (corrupt stream or different weights)")
        return torch.from_numpy(y_np.astype(np.float32)).to(device) + mean
