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

With a channel-wise context as well, each pass codes the latent's channel slices one after
another: a slice's log-scales are corrected by `ExactNet(chan_s[i])` over the symbols of the
slices already decoded (exact), its means by `chan_m[i]` over their values (float). One walk
over the groups (`_walk`) serves encoder and decoder alike.

With `exact=True` (the default; files of earlier formats decode with `exact=False`) the means and
the synthesis run in fixed point as well (`tngvideo.nn.fixed`): the decoded latent and the
decoded picture are then functions of the bytes alone, the same on every machine.
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
from tngvideo.latent.model import HyperpriorCoder, LatentCondition, checkerboard_anchors
from tngvideo.nn.fixed import FixedNet, fixed_scale, grid_float
from tngvideo.latent.weights import EntropyTables


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
        self._channel_nets = [ExactNet(n, in_bits=ACT_BITS) for n in getattr(coder, "chan_s", [])]
        self._hyper_bits = float(tables.hyper.least_bits().sum())  # one hyper-latent position, all channels
        self._latent_bits = float(tables.latent.least_bits().min())  # one latent symbol
        self._fixed: dict[str, object] | None = None  # fixed-point means and synthesis, built on first use

    def _fixed_nets(self) -> dict[str, object]:
        if self._fixed is None:
            c = self.coder
            self._fixed = {
                "h_m": FixedNet(c.h_m),
                "ctx_m": FixedNet(c.ctx_m) if c.config.context else None,
                "chan_m": [FixedNet(n) for n in getattr(c, "chan_m", [])],
                "g_s": FixedNet(c.g_s) if hasattr(c, "g_s") else None,
            }
        return self._fixed

    def _mean_nets(self, exact: bool):
        """(ctx_m, chan_m list): float networks, or their fixed-point versions."""
        if exact:
            f = self._fixed_nets()
            return f["ctx_m"], f["chan_m"]
        return getattr(self.coder, "ctx_m", None), list(getattr(self.coder, "chan_m", []))

    def mean_offset(self, condition: LatentCondition | None, quality: float, *, exact: bool = True
                    ) -> torch.Tensor | None:
        """A conditional coder's term added to the hyperprior means: the condition's mean term, gained."""
        if condition is None:
            return None
        if exact:
            return fixed_scale(condition.mean, self.coder.exact_gains(quality)[0])
        gain, _ = self.coder.gains(torch.tensor([quality], device=condition.mean.device))
        return condition.mean * gain

    @torch.no_grad()
    def synthesize(self, y_hat: torch.Tensor, quality: float, condition: LatentCondition | None = None, *,
                   exact: bool = True) -> torch.Tensor:
        """The decoded picture (image, flow or residual) from the decoded latent: inverse gain,
        the condition's synthesis term, g_s; in fixed point with `exact`."""
        t = self.coder
        if not exact:
            _, inv_gain = t.gains(torch.tensor([quality], device=y_hat.device))
            return t.g_s(t.synthesis_input(y_hat * inv_gain, condition))
        latent = fixed_scale(y_hat, t.exact_gains(quality)[1])
        if condition is not None:
            latent = latent + condition.synthesis.double()
        return grid_float(self._fixed_nets()["g_s"](latent))

    def _hyper_indices(self, shape: tuple[int, ...]) -> np.ndarray:
        return np.broadcast_to(np.arange(shape[1]).reshape(1, -1, 1, 1), shape)

    def _side(self, z_sym: torch.Tensor, device: torch.device, exact: bool) -> tuple[torch.Tensor, torch.Tensor]:
        """From hyper-latent symbols: exact fixed-point log-scales, and means (fixed-point with `exact`)."""
        h_m = self._fixed_nets()["h_m"] if exact else self.coder.h_m
        return self._scale_net(z_sym), h_m(z_sym.to(device))

    def _indices(self, log_scale_fp: torch.Tensor) -> np.ndarray:
        return self.coder.gaussian.scale_index(log_scale_fp, ACT_BITS).numpy()

    def _walk(self, log_scale_fp: torch.Tensor, mean: torch.Tensor, code, exact: bool) -> torch.Tensor:
        """The context model's groups in coding order, for encoder and decoder alike.

        `code(mask, indices, mean, channels)` codes (or decodes) the symbols of one group: the
        positions `mask` (bool, shaped like the slice) of the channel range `channels`, whose
        tables are `indices` and means `mean`; it returns the slice's symbols (zero outside the
        mask) as a float tensor on the means' device. Returns the means the symbols were coded
        against (the decoded latent is symbols + means)."""
        coder = self.coder
        ctx_m, chan_m = self._mean_nets(exact)
        dev = mean.device
        anchor = checkerboard_anchors(mean.shape[-2:], dev)
        keep = 1.0 - anchor

        def run(second_pass, means, scales_fp, mask, known_sym, known_val):
            out_m, syms, vals = [], [], []
            for k, (a, b) in enumerate(coder.config.slices):
                m_k, s_k = means[:, a:b], scales_fp[:, a:b]
                if k > 0:
                    i = coder.channel_net_index(k, second_pass)
                    prev_sym, prev_val = torch.cat(syms, 1), torch.cat(vals, 1)
                    s_k = s_k + self._channel_nets[i](torch.cat([prev_sym.cpu().double() * float(1 << ACT_BITS),
                                                                 s_k], dim=1))
                    m_k = m_k + chan_m[i](torch.cat([prev_val, m_k], dim=1)) * mask
                sym_k = code(mask.bool().expand_as(m_k), self._indices(s_k), m_k, (a, b))
                val_k = (sym_k + m_k) * mask
                syms.append(sym_k if known_sym is None else known_sym[:, a:b] + sym_k)
                vals.append(val_k if known_val is None else known_val[:, a:b] + val_k)
                out_m.append(m_k)
            return torch.cat(out_m, 1), torch.cat(syms, 1), torch.cat(vals, 1)

        a_mean, a_sym, a_val = run(False, mean, log_scale_fp, anchor, None, None)
        d_scale = self._context_net(torch.cat([a_sym.cpu().double() * float(1 << ACT_BITS), log_scale_fp], dim=1))
        n_mean = mean + ctx_m(torch.cat([a_val, mean], dim=1)) * keep
        n_mean, _, _ = run(True, n_mean, log_scale_fp + d_scale * keep.cpu().double(), keep, a_sym, a_val)
        return torch.where(anchor.bool(), a_mean, n_mean)

    def hyper_shape(self, latent_shape: tuple[int, int, int, int]) -> tuple[int, int, int, int]:
        b, _, h, w = latent_shape
        return (b, self.coder.config.channels, -(-h // 4), -(-w // 4))

    @torch.no_grad()
    def encode(self, y: torch.Tensor, z: torch.Tensor | None = None, *, mean_offset: torch.Tensor | None = None,
               exact: bool = True) -> tuple[LatentStreams, torch.Tensor]:
        """y: gained latent (1, M, h, w) with h, w multiples of 4; z: its hyper-latent (default:
        h_a(y); an encoder search may pass its own); `mean_offset`: a conditional coder's term
        added to the hyperprior means (gained; `mean_offset()`). Returns streams and y_hat (float64
        on the fixed grid with `exact`)."""
        z_sym = torch.round(self.coder.h_a(y) if z is None else z).cpu()
        log_scale_fp, mean = self._side(z_sym, y.device, exact)
        if mean_offset is not None:
            mean = mean + mean_offset
        if self._context_net is None:
            indices = self._indices(log_scale_fp)
            y_sym = torch.round(y - mean)
            y_np = y_sym.cpu().numpy().astype(np.int64)
            groups = [(y_np, indices)]
        else:
            y_np = np.zeros(y.shape, dtype=np.int64)
            indices = np.zeros(y.shape, dtype=np.int64)
            groups = []

            def code(mask, idx, m_k, channels):
                a, b = channels
                sym = torch.where(mask, torch.round(y[:, a:b] - m_k), 0.0)
                mask_np, sym_np = mask.cpu().numpy(), sym.cpu().numpy().astype(np.int64)
                groups.append((sym_np[mask_np], idx[mask_np]))
                y_np[:, a:b][mask_np] = sym_np[mask_np]
                indices[:, a:b][mask_np] = idx[mask_np]
                return sym

            mean = self._walk(log_scale_fp, mean, code, exact)
            y_sym = torch.from_numpy(y_np.astype(np.float32)).to(y.device)
        z_np = z_sym.numpy().astype(np.int64)
        h_idx = self._hyper_indices(z_np.shape)
        est = self.tables.hyper.bits(z_np.ravel(), h_idx.ravel()) + self.tables.latent.bits(y_np.ravel(), indices.ravel())
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
               mean_offset: torch.Tensor | None = None, exact: bool = True) -> torch.Tensor:
        """Inverse of `encode` (given the same `mean_offset` and `exact`): the same y_hat the encoder had."""
        self.check_stream_lengths(streams, latent_shape)
        try:
            z_np = decode_symbols(streams.hyper, self._hyper_indices(self.hyper_shape(latent_shape)), self.tables.hyper)
            z_sym = torch.from_numpy(z_np.astype(np.float32))
            log_scale_fp, mean = self._side(z_sym, device, exact)
            if mean_offset is not None:
                mean = mean + mean_offset
            reader = SymbolDecoder(streams.latent)
            if self._context_net is None:
                y_np = reader.decode(self._indices(log_scale_fp), self.tables.latent)
            else:
                y_np = np.zeros(latent_shape, dtype=np.int64)

                def code(mask, idx, m_k, channels):
                    mask_np = mask.cpu().numpy()
                    part = np.zeros(mask_np.shape, dtype=np.int64)
                    part[mask_np] = reader.decode(idx[mask_np], self.tables.latent)
                    y_np[:, channels[0]:channels[1]] += part
                    return torch.from_numpy(part.astype(np.float32)).to(device)

                mean = self._walk(log_scale_fp, mean, code, exact)
        except CorruptStreamError as exc:
            raise DecodeError(str(exc)) from None
        if _symbols_crc(z_np, y_np) != streams.symbols_crc:
            raise DecodeError("decoded symbols do not match the encoder's (corrupt stream or different weights)")
        return torch.from_numpy(y_np.astype(np.float32)).to(device) + mean
