"""Mean-scale Gaussian conditional: likelihoods for training and a scale table for coding."""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn
from scipy.special import ndtr

from tngvideo.entropy.tables import CdfTables, pack_tables, quantize_pmf

LIKELIHOOD_BOUND = 1e-9


def default_scale_table(min_scale: float = 0.11, max_scale: float = 96.0, levels: int = 64) -> np.ndarray:
    return np.exp(np.linspace(math.log(min_scale), math.log(max_scale), levels))


class GaussianConditional(nn.Module):
    """P(y | mean, scale) for a quantized latent; the scale picks a table by index when coding.

    The index is computed from a log-scale by `scale_index`, which works on integer-valued
    fixed-point numbers so that it is exact on every machine (see `tngvideo.entropy.exact`).
    """

    def __init__(self, scale_table: np.ndarray | None = None, *, tail_sigmas: float = 7.5):
        super().__init__()
        table = default_scale_table() if scale_table is None else np.asarray(scale_table, dtype=np.float64)
        self.register_buffer("scale_table", torch.tensor(table, dtype=torch.float64), persistent=False)
        self.tail_sigmas = tail_sigmas
        self.min_scale = float(table[0])
        self.log_min = math.log(table[0])
        self.log_step = (math.log(table[-1]) - math.log(table[0])) / (len(table) - 1)

    @property
    def levels(self) -> int:
        return int(self.scale_table.numel())

    def likelihood(self, y: torch.Tensor, mean: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
        scale = scale.float().clamp_min(self.min_scale)
        v = torch.abs(y.float() - mean.float())
        upper = _std_normal_cdf((0.5 - v) / scale)
        lower = _std_normal_cdf((-0.5 - v) / scale)
        return (upper - lower).clamp_min(LIKELIHOOD_BOUND)

    def scale_index(self, log_scale_fp: torch.Tensor, frac_bits: int) -> torch.Tensor:
        """Table index from a log-scale given as an integer-valued fixed-point float64 tensor."""
        one = float(1 << frac_bits)
        lo = float(round(self.log_min * one))
        step = float(round(self.log_step * one))
        idx = torch.floor((log_scale_fp.double() - lo + step // 2) / step)
        return idx.clamp(0, self.levels - 1).to(torch.int64)

    def build_tables(self) -> CdfTables:
        pmfs, offsets = [], []
        for s in self.scale_table.cpu().numpy():
            r = int(math.ceil(self.tail_sigmas * s))
            v = np.arange(-r, r + 1, dtype=np.float64)
            p = ndtr((v + 0.5) / s) - ndtr((v - 0.5) / s)
            tail = 2.0 * ndtr(-(r + 0.5) / s)
            pmfs.append(quantize_pmf(p, tail))
            offsets.append(-r)
        return pack_tables(pmfs, offsets)


def _std_normal_cdf(x: torch.Tensor) -> torch.Tensor:
    return 0.5 * torch.erfc(-x * (2.0**-0.5))
