"""Backward warping of a frame with a dense flow field (pixels)."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def backward_warp(frame: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
    """Sample `frame` (B, C, H, W) at (x + flow_x, y + flow_y); borders replicate."""
    b, _, h, w = frame.shape
    ys = torch.arange(h, device=frame.device, dtype=flow.dtype)
    xs = torch.arange(w, device=frame.device, dtype=flow.dtype)
    gy, gx = torch.meshgrid(ys, xs, indexing="ij")
    x = gx + flow[:, 0]
    y = gy + flow[:, 1]
    grid = torch.stack([2 * x / max(w - 1, 1) - 1, 2 * y / max(h - 1, 1) - 1], dim=-1)
    return F.grid_sample(frame, grid.to(frame.dtype), mode="bilinear", padding_mode="border", align_corners=True)
