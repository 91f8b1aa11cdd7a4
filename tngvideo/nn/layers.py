"""Convolution helpers and the down/up-sampling stages of the image transforms.

Each stage pairs a strided convolution (plus GDN) with a Haar-wavelet shortcut: a fixed
orthonormal 2x2 wavelet split, learnable per-subband scales and a 1x1 convolution (after the
auxiliary transforms of Li et al., ICLR 2025). The shortcut gives the transform a good linear
starting point, which speeds up early training at a small cost in compute. `shortcut=False`
builds the plain stage (for the speed-run comparison; shipped models have the shortcuts).
"""

from __future__ import annotations

import torch
from torch import nn

from tngvideo.nn.gdn import GDN


def conv(cin: int, cout: int, kernel: int = 5, stride: int = 2) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, kernel, stride=stride, padding=kernel // 2)


def deconv(cin: int, cout: int, kernel: int = 5, stride: int = 2) -> nn.ConvTranspose2d:
    return nn.ConvTranspose2d(
        cin, cout, kernel, stride=stride, padding=kernel // 2, output_padding=stride - 1
    )


def haar_forward(x: torch.Tensor) -> torch.Tensor:
    """(B, C, H, W) -> (B, 4C, H/2, W/2): subbands [LL | LH | HL | HH], each C channels."""
    a, b = x[..., 0::2, 0::2], x[..., 0::2, 1::2]
    c, d = x[..., 1::2, 0::2], x[..., 1::2, 1::2]
    return 0.5 * torch.cat([a + b + c + d, a - b + c - d, a + b - c - d, a - b - c + d], dim=1)


def haar_inverse(s: torch.Tensor) -> torch.Tensor:
    """Inverse of `haar_forward`: (B, 4C, h, w) -> (B, C, 2h, 2w)."""
    ll, lh, hl, hh = s.chunk(4, dim=1)
    a = ll + lh + hl + hh
    b = ll - lh + hl - hh
    c = ll + lh - hl - hh
    d = ll - lh - hl + hh
    top = torch.stack([a, b], dim=-1).flatten(-2)  # (B, C, h, 2w)
    bottom = torch.stack([c, d], dim=-1).flatten(-2)
    return 0.5 * torch.stack([top, bottom], dim=-2).flatten(-3, -2)


class AnalysisStage(nn.Module):
    """Stride-2 downsampling: conv5x5 (+GDN) plus a Haar shortcut."""

    def __init__(self, cin: int, cout: int, *, gdn: bool = True, shortcut: bool = True):
        super().__init__()
        self.conv = conv(cin, cout)
        self.gdn = GDN(cout) if gdn else nn.Identity()
        self.shortcut = nn.Conv2d(4 * cin, cout, 1) if shortcut else None
        if shortcut:
            self.subband_scale = nn.Parameter(torch.ones(1, 4 * cin, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.gdn(self.conv(x))
        return y if self.shortcut is None else y + self.shortcut(haar_forward(x) * self.subband_scale)


class SynthesisStage(nn.Module):
    """Stride-2 upsampling: deconv5x5 (+IGDN) plus an inverse-Haar shortcut."""

    def __init__(self, cin: int, cout: int, *, gdn: bool = True, shortcut: bool = True):
        super().__init__()
        self.deconv = deconv(cin, cout)
        self.gdn = GDN(cout, inverse=True) if gdn else nn.Identity()
        self.shortcut = nn.Conv2d(cin, 4 * cout, 1) if shortcut else None
        if shortcut:
            self.subband_scale = nn.Parameter(torch.ones(1, 4 * cout, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.gdn(self.deconv(x))
        return y if self.shortcut is None else y + haar_inverse(self.shortcut(x) * self.subband_scale)
