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


def annealed_round(x: torch.Tensor, tau: float) -> torch.Tensor:
    """Stochastic Gumbel annealing (Yang et al., NeurIPS 2020): a differentiable random pick of
    floor(x) or ceil(x), favouring the nearer one more strongly as the temperature tau falls.

    For encoder-side latent search; rounding with straight-through gradients stalls there."""
    fl = torch.floor(x)
    r = (x - fl).clamp(1e-5, 1 - 1e-5)
    logits = torch.stack([-torch.atanh(r), -torch.atanh(1 - r)], dim=-1) / tau
    pick = torch.nn.functional.gumbel_softmax(logits, tau=1.0, hard=False)
    return fl + pick[..., 1]
