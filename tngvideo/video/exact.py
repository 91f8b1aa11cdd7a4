"""The P-frame decoder's networks in fixed point (`tngvideo.nn.fixed`): motion compensation,
reconstruction with the loop filter, and the coders' conditions, each a function of its inputs'
values alone, so encoder and decoder keep the same reference on any machine.

Inputs are real-valued tensors on the fixed grid (pixels k/255 of an 8-bit reference, decoded
flows, predictions); outputs are float32 on the grid (`grid_float`).
"""

from __future__ import annotations

import torch
from torch import nn

from tngvideo.latent.model import LatentCondition
from tngvideo.nn.fixed import compile_fixed, fixed_warp, from_fixed, grid_float, to_fixed


class ExactRefiner:
    """`HalfResRefiner.correction` in fixed point (fixed-point in, fixed-point out)."""

    def __init__(self, refiner: nn.Module):
        self.head, self.body, self.tail = (compile_fixed(refiner.head), compile_fixed(refiner.body),
                                           compile_fixed(refiner.tail))

    def __call__(self, inputs: torch.Tensor) -> torch.Tensor:
        h = self.head(inputs)
        return self.tail(h + self.body(h))


class ExactMotionCompensation:
    """`MotionCompensation` in fixed point: fixed-point warp, then the refinement."""

    def __init__(self, mc: nn.Module):
        self.correction = ExactRefiner(mc)

    @torch.no_grad()
    def __call__(self, ref: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
        warped = to_fixed(fixed_warp(ref, flow))
        inputs = torch.cat([warped, to_fixed(ref), to_fixed(flow)], dim=1)
        return grid_float(from_fixed(warped + self.correction(inputs)))


class ExactReconstruction:
    """prediction + decoded residual - 0.5, then the loop filter (if any), in fixed point."""

    def __init__(self, loop_filter: nn.Module | None, offset: float):
        self.filter = ExactRefiner(loop_filter) if loop_filter is not None else None
        self.offset = offset

    @torch.no_grad()
    def __call__(self, pred: torch.Tensor, res_hat: torch.Tensor) -> torch.Tensor:
        p = to_fixed(pred)
        x = to_fixed(res_hat) + p - to_fixed(torch.tensor(self.offset, device=pred.device))
        if self.filter is not None:
            x = x + self.filter(torch.cat([x, p], dim=1))
        return grid_float(from_fixed(x))


class ExactContext:
    """`LatentContext` in fixed point: its three terms on the fixed grid (float64)."""

    def __init__(self, context: nn.Module):
        self.shift, self.scale = context.shift, context.scale
        self.features = compile_fixed(context.features)
        self.heads = {k: compile_fixed(h) for k, h in context.heads.items()}

    @torch.no_grad()
    def __call__(self, inputs: torch.Tensor) -> LatentCondition:
        # shift and scale are exact in binary (-0.5, 1/8): the same values as the float context sees
        f = self.features(to_fixed((inputs.double() + self.shift) * self.scale))
        return LatentCondition(**{k: from_fixed(h(f)) for k, h in self.heads.items()})
