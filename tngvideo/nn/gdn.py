"""Generalized divisive normalization (Balle et al., 2016)."""

from __future__ import annotations

import torch
from torch import nn
import torch.nn.functional as F


class GDN(nn.Module):
    """y = x / sqrt(beta + gamma * x^2) (or its inverse, x * sqrt(...)).

    beta and gamma are reparametrized through a square so they stay non-negative.
    """

    def __init__(self, channels: int, *, inverse: bool = False, beta_min: float = 1e-6, gamma_init: float = 0.1):
        super().__init__()
        self.inverse = inverse
        self.beta_min = beta_min
        self.pedestal = 2.0**-18
        self.beta = nn.Parameter(torch.sqrt(torch.ones(channels) + self.pedestal))
        self.gamma = nn.Parameter(torch.sqrt(gamma_init * torch.eye(channels) + self.pedestal))

    def _params(self) -> tuple[torch.Tensor, torch.Tensor]:
        beta = self.beta.clamp_min((self.beta_min + self.pedestal) ** 0.5) ** 2 - self.pedestal
        gamma = self.gamma.clamp_min(0.0) ** 2 - self.pedestal
        return beta, gamma

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        beta, gamma = self._params()
        c = gamma.shape[0]
        norm = F.conv2d(x * x, gamma.to(x.dtype).view(c, c, 1, 1), beta.to(x.dtype))
        norm = torch.sqrt(norm.clamp_min(1e-12))
        return x * norm if self.inverse else x / norm
