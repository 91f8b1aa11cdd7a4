"""Convolution helpers and the down/up-sampling stages of the image transforms.

Each stage pairs a strided convolution (plus GDN) with a Haar-wavelet shortcut: a fixed
orthonormal 2x2 wavelet split, learnable per-subband scales and a 1x1 convolution (after the
auxiliary transforms of Li et al., ICLR 2025). The shortcut gives the transform a good linear
starting point, which speeds up early training at a small cost in compute. `shortcut=False`
builds the plain stage (for the speed-run comparison; shipped models have the shortcuts).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from tngvideo.nn.gdn import GDN


def conv(cin: int, cout: int, kernel: int = 5, stride: int = 2) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, kernel, stride=stride, padding=kernel // 2)


def deconv(cin: int, cout: int, kernel: int = 5, stride: int = 2) -> nn.ConvTranspose2d:
    return nn.ConvTranspose2d(
        cin, cout, kernel, stride=stride, padding=kernel // 2, output_padding=stride - 1
    )


# The orthonormal 2x2 Haar transform: rows are the subbands [LL, LH, HL, HH], columns the pixels
# [a, b, c, d] of a 2x2 block ([a b; c d]), in the order pixel_(un)shuffle puts them in channels.
# The matrix is symmetric and its own inverse.
HAAR = 0.5 * torch.tensor([[1.0, 1, 1, 1], [1, -1, 1, -1], [1, 1, -1, -1], [1, -1, -1, 1]])


def _haar(like: torch.Tensor) -> torch.Tensor:
    return HAAR.to(dtype=like.dtype, device=like.device)


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
        if self.shortcut is None:
            return y
        # 1x1 conv of the scaled subbands = 1x1 conv of the 2x2 blocks (pixel_unshuffle) with the
        # Haar matrix and the scales folded into the weights: one convolution, no subband tensors
        w = self.shortcut.weight[:, :, 0, 0]
        cin = w.shape[1] // 4
        ws = w.view(-1, 4, cin) * self.subband_scale.view(1, 4, cin)  # (out, subband, channel)
        folded = torch.einsum("sk,osc->ock", _haar(w), ws).reshape(w.shape[0], 4 * cin, 1, 1)
        return y + F.conv2d(F.pixel_unshuffle(x, 2), folded, self.shortcut.bias)


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
        if self.shortcut is None:
            return y
        # inverse Haar of the scaled 1x1 conv = pixel_shuffle of a 1x1 conv with the scales and
        # the Haar matrix folded into its weights and bias (about 15% less synthesis time)
        w, b = self.shortcut.weight[:, :, 0, 0], self.shortcut.bias
        cout = w.shape[0] // 4
        scale = self.subband_scale.view(4, cout)
        haar = _haar(w)
        folded = torch.einsum("ks,sci->cki", haar, w.view(4, cout, -1) * scale[..., None]).reshape(4 * cout, -1, 1, 1)
        bias = torch.einsum("ks,sc->ck", haar, b.view(4, cout) * scale).reshape(4 * cout)
        return y + F.pixel_shuffle(F.conv2d(x, folded, bias), 2)
