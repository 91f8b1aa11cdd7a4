"""Learned factorized density for the hyper-latent (Balle et al., 2018, appendix 6.1)."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn
import torch.nn.functional as F

from tngvideo.entropy.tables import CdfTables, pack_tables, quantize_pmf

LIKELIHOOD_BOUND = 1e-9


class FactorizedDensity(nn.Module):
    """A per-channel non-parametric density, modelled as a monotonic cumulative function.

    `likelihood(x)` gives P(x - 0.5 < X < x + 0.5) per element, for the rate term.
    `build_tables()` turns it into integer tables (one per channel) for the coder.
    """

    def __init__(self, channels: int, *, filters: tuple[int, ...] = (3, 3, 3), init_scale: float = 10.0):
        super().__init__()
        self.channels = channels
        dims = (1, *filters, 1)
        scale = init_scale ** (1 / (len(filters) + 1))
        self.matrices = nn.ParameterList()
        self.biases = nn.ParameterList()
        self.factors = nn.ParameterList()
        for i in range(len(filters) + 1):
            init = float(np.log(np.expm1(1 / scale / dims[i + 1])))
            self.matrices.append(nn.Parameter(torch.full((channels, dims[i + 1], dims[i]), init)))
            self.biases.append(nn.Parameter(torch.empty(channels, dims[i + 1], 1).uniform_(-0.5, 0.5)))
            if i < len(filters):
                self.factors.append(nn.Parameter(torch.zeros(channels, dims[i + 1], 1)))

    def _logits_cumulative(self, x: torch.Tensor) -> torch.Tensor:
        # x: (C, 1, N)
        for i, (matrix, bias) in enumerate(zip(self.matrices, self.biases)):
            x = torch.matmul(F.softplus(matrix), x) + bias
            if i < len(self.factors):
                x = x + torch.tanh(self.factors[i]) * torch.tanh(x)
        return x

    def likelihood(self, x: torch.Tensor) -> torch.Tensor:
        """x: (B, C, H, W) float32 -> likelihoods of the same shape."""
        b, c, h, w = x.shape
        v = x.float().permute(1, 0, 2, 3).reshape(c, 1, -1)
        lower = self._logits_cumulative(v - 0.5)
        upper = self._logits_cumulative(v + 0.5)
        sign = -torch.sign(lower + upper).detach()
        p = torch.abs(torch.sigmoid(sign * upper) - torch.sigmoid(sign * lower))
        p = p.clamp_min(LIKELIHOOD_BOUND)
        return p.reshape(c, b, h, w).permute(1, 0, 2, 3)

    @torch.no_grad()
    def build_tables(self, *, max_value: int = 1024, tail_mass: float = 1e-9) -> CdfTables:
        """One integer table per channel, covering the values that carry probability mass."""
        device = self.matrices[0].device
        values = torch.arange(-max_value, max_value + 1, device=device, dtype=torch.float32)
        v = values.view(1, 1, -1).expand(self.channels, 1, -1)
        lower = torch.sigmoid(self._logits_cumulative(v - 0.5)).squeeze(1).double().cpu().numpy()
        upper = torch.sigmoid(self._logits_cumulative(v + 0.5)).squeeze(1).double().cpu().numpy()
        pmfs, offsets = [], []
        for c in range(self.channels):
            p = np.clip(upper[c] - lower[c], 0.0, 1.0)
            cdf_lo, cdf_hi = lower[c], upper[c]
            keep = np.nonzero((cdf_hi > tail_mass / 2) & (cdf_lo < 1 - tail_mass / 2))[0]
            lo, hi = (int(keep[0]), int(keep[-1])) if len(keep) else (max_value, max_value)
            tail = float(cdf_lo[lo] + (1.0 - cdf_hi[hi]))
            pmfs.append(quantize_pmf(p[lo : hi + 1], tail))
            offsets.append(lo - max_value)
        return pack_tables(pmfs, offsets)
