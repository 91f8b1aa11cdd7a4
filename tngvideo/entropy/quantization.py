"""Quantization for training (noise, straight-through rounding) and coding (rounding)."""

from __future__ import annotations

import torch


def add_uniform_noise(x: torch.Tensor) -> torch.Tensor:
    """Training proxy for rounding: x + U(-0.5, 0.5). Used for the rate terms."""
    return x + torch.empty_like(x).uniform_(-0.5, 0.5)


def ste_round(x: torch.Tensor) -> torch.Tensor:
    """Round in the forward pass, identity gradient in the backward pass."""
    return x + (torch.round(x) - x).detach()


def quantize(x: torch.Tensor, mean: torch.Tensor | None = None) -> torch.Tensor:
    """Integer symbols for coding: round(x - mean)."""
    return torch.round(x if mean is None else x - mean)


def dequantize(symbols: torch.Tensor, mean: torch.Tensor | None = None) -> torch.Tensor:
    """Inverse of `quantize`: symbols + mean."""
    symbols = symbols.to(torch.float32)
    return symbols if mean is None else symbols + mean
