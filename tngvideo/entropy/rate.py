"""Rate estimation: bits = -log2 of the model's probability."""

from __future__ import annotations

import math

import torch


def bits_from_likelihood(likelihood: torch.Tensor, *, per_sample: bool = True) -> torch.Tensor:
    """Sum of -log2(p) over everything but the batch dimension (or over everything)."""
    bits = -torch.log(likelihood.float()) / math.log(2.0)
    return bits.flatten(1).sum(1) if per_sample else bits.sum()
