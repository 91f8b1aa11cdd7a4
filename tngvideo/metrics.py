"""Image quality metrics on RGB8 arrays.

PSNR-RGB is the mean squared error over all three channels (as in the learned-compression
literature). MS-SSIM comes from pytorch-msssim (the implementation CompressAI's evaluations use),
computed on RGB in [0, 255].
"""

from __future__ import annotations

import math

import numpy as np
import torch
from pytorch_msssim import ms_ssim as _ms_ssim

MS_SSIM_MIN_SIDE = 161  # 5 scales of an 11-tap window


def mse(a: np.ndarray, b: np.ndarray) -> float:
    if a.shape != b.shape:
        raise ValueError(f"shape mismatch {a.shape} vs {b.shape}")
    d = a.astype(np.float64) - b.astype(np.float64)
    return float(np.mean(d * d))


def psnr(a: np.ndarray, b: np.ndarray, peak: float = 255.0) -> float:
    m = mse(a, b)
    return float("inf") if m == 0 else 10.0 * math.log10(peak * peak / m)


def ms_ssim(a: np.ndarray, b: np.ndarray) -> float:
    """MS-SSIM of two (H, W, 3) uint8 images; NaN when a side is below 161 pixels."""
    if a.shape != b.shape:
        raise ValueError(f"shape mismatch {a.shape} vs {b.shape}")
    if min(a.shape[:2]) < MS_SSIM_MIN_SIDE:
        return float("nan")
    ta = torch.from_numpy(np.ascontiguousarray(a)).permute(2, 0, 1)[None].double()
    tb = torch.from_numpy(np.ascontiguousarray(b)).permute(2, 0, 1)[None].double()
    return float(_ms_ssim(ta, tb, data_range=255.0, size_average=True))


def luma(rgb: np.ndarray) -> np.ndarray:
    """Full-range BT.601 luma (Y = 0.299 R + 0.587 G + 0.114 B) as float64."""
    a = rgb.astype(np.float64)
    return 0.299 * a[..., 0] + 0.587 * a[..., 1] + 0.114 * a[..., 2]


def psnr_y(a: np.ndarray, b: np.ndarray) -> float:
    d = luma(a) - luma(b)
    m = float(np.mean(d * d))
    return float("inf") if m == 0 else 10.0 * math.log10(255.0**2 / m)
