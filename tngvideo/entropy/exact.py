"""Exact fixed-point evaluation of a small conv/ReLU network.

The decoder must pick the same probability table for every symbol as the encoder did, on any
machine, thread count or device. Float convolutions do not guarantee that: the order of the
additions changes the last bits. Here weights and activations are integers (fixed point with
`WEIGHT_BITS` and `ACT_BITS` fractional bits) held in float64, where every product and every
partial sum is an integer below 2**53, so the result does not depend on the order of
operations. Rescaling is a floor-division by a power of two, which is exact as well.
`ExactNet` checks that bound from the weights themselves when it is built.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
import torch.nn.functional as F

WEIGHT_BITS = 12
ACT_BITS = 8
ACT_LIMIT = float(1 << 24)  # activations clamp to +-2**24 (value +-65536)
EXACT_LIMIT = float(1 << 53)


@dataclass(frozen=True)
class _Layer:
    kind: str  # "conv" or "deconv"
    weight: torch.Tensor  # integer-valued float64
    bias: torch.Tensor  # integer-valued float64
    stride: int
    padding: int
    output_padding: int
    relu: bool


class ExactNet:
    """Integer version of an `nn.Sequential` of Conv2d / ConvTranspose2d / ReLU layers.

    Input: integer-valued tensor, fixed point with `in_bits` fractional bits (0: plain integers
    such as the decoded hyper-latent). Output: fixed-point values with ACT_BITS fractional bits,
    integer-valued float64 on the CPU.
    """

    def __init__(self, net: nn.Sequential, *, in_bits: int = 0):
        if not 0 <= in_bits <= ACT_BITS:
            raise ValueError(f"in_bits must be between 0 and {ACT_BITS}")
        self.in_bits = in_bits
        layers: list[_Layer] = []
        modules = list(net)
        bound = ACT_LIMIT
        for i, m in enumerate(modules):
            if isinstance(m, nn.ReLU):
                continue
            if not isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
                raise TypeError(f"ExactNet cannot evaluate {type(m).__name__}")
            relu = i + 1 < len(modules) and isinstance(modules[i + 1], nn.ReLU)
            w = torch.round(m.weight.detach().double().cpu() * (1 << WEIGHT_BITS))
            b = torch.round(m.bias.detach().double().cpu() * (1 << (WEIGHT_BITS + in_bits)))
            fan_in_abs = w.abs().sum(dim=(1, 2, 3)) if isinstance(m, nn.Conv2d) else w.abs().sum(dim=(0, 2, 3))
            worst = float((fan_in_abs * bound + b.abs()).max())
            if worst >= EXACT_LIMIT:
                raise ValueError("hyper-synthesis weights too large for exact evaluation")
            layers.append(
                _Layer(
                    kind="conv" if isinstance(m, nn.Conv2d) else "deconv",
                    weight=w,
                    bias=b,
                    stride=m.stride[0],
                    padding=m.padding[0],
                    output_padding=m.output_padding[0] if isinstance(m, nn.ConvTranspose2d) else 0,
                    relu=relu,
                )
            )
            in_bits = ACT_BITS
        self.layers = layers

    @torch.no_grad()
    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        a = x.detach().double().cpu().clamp(-ACT_LIMIT, ACT_LIMIT)
        shift = self.in_bits  # fractional bits of the current input
        for layer in self.layers:
            if layer.kind == "conv":
                acc = F.conv2d(a, layer.weight, layer.bias, stride=layer.stride, padding=layer.padding)
            else:
                acc = F.conv_transpose2d(
                    a, layer.weight, layer.bias, stride=layer.stride, padding=layer.padding,
                    output_padding=layer.output_padding,
                )
            # acc has WEIGHT_BITS + shift fractional bits; bring it to ACT_BITS.
            a = torch.floor(acc / float(1 << (WEIGHT_BITS + shift - ACT_BITS)))
            if layer.relu:
                a = a.clamp_min(0.0)
            a = a.clamp(-ACT_LIMIT, ACT_LIMIT)
            shift = ACT_BITS
        return a
