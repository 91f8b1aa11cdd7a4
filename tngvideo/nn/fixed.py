"""Fixed-point evaluation of the networks that make decoded pixels: a result that is a function of
the bitstream alone, the same on every thread count, CPU and device.

Float convolutions add their products in an order that depends on threads, vector width and
device, so their last bits differ from machine to machine; in a video those differences feed the
next frame's prediction and grow. Here every value that reaches a reconstruction is a fixed-point
number with `ACT_BITS` fractional bits and every weight one with `WEIGHT_BITS`, held as
integer-valued float64: each product and each partial sum is an integer below 2**53, so any
order of addition gives the same result. Before each layer the input is clamped to the bound
its weights allow (computed from the weights when the network is compiled), so that stays true
for any input, a hostile stream's included. Rescaling is a floor-division by a power of two;
LeakyReLU multiplies by a fixed-point slope; inverse GDN takes a correctly rounded square root
(IEEE 754 requires it) of an exact sum. Values cross module boundaries in real units as float64
on the fixed grid (value = integer / 2**ACT_BITS), which float64 holds exactly.

The convolutions themselves are `tngvideo.nn.exact_conv.ExactConv`: exact integer sums, in float64
or, where that is faster, in float32 limbs. On CUDA, cuDNN is switched off for them (its
Winograd and FFT algorithms are not exact); the native im2col + GEMM path adds integers, which is.
"""

from __future__ import annotations

import math
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from tngvideo.nn.exact_conv import ExactConv

ACT_BITS = 14
WEIGHT_BITS = 14
SLOPE_BITS = 16
EXACT = float(1 << 53)
# no activation grows past 2**26 in real units (real ones stay far below): each layer's input is
# clamped to this or to the smaller bound its weights allow
ACT_LIMIT = float(1 << (ACT_BITS + 26)) - 1.0

Fn = Callable[[torch.Tensor], torch.Tensor]


def to_fixed(x: torch.Tensor) -> torch.Tensor:
    """Real values -> integer-valued float64 with ACT_BITS fractional bits (nearest, ties to even)."""
    return torch.round(x.double() * float(1 << ACT_BITS)).clamp(-ACT_LIMIT, ACT_LIMIT)


def from_fixed(v: torch.Tensor) -> torch.Tensor:
    """Integer-valued fixed point -> real values (float64, exact)."""
    return v / float(1 << ACT_BITS)


# what float32 holds exactly on the grid: ACT_BITS fractional and 10 integer bits (pixels, flows)
PIXEL_LIMIT = 1024.0 - 2.0 ** -ACT_BITS


def grid_float(x: torch.Tensor) -> torch.Tensor:
    """A tensor on the fixed grid as float32, exact within +-PIXEL_LIMIT (clamped to it)."""
    return x.clamp(-PIXEL_LIMIT, PIXEL_LIMIT).float()


def _rescale(acc: torch.Tensor, bits: int) -> torch.Tensor:
    """floor(acc / 2**bits), in place (`acc` must be a temporary): the power of two is exact."""
    return acc.mul_(1.0 / float(1 << bits)).floor_()


def _bounded(x: torch.Tensor, limit: float) -> torch.Tensor:
    """x clamped to +-limit (a new tensor only when something is out of range)."""
    lo, hi = torch.aminmax(x)
    return x.clamp(-limit, limit) if float(lo) < -limit or float(hi) > limit else x


def quantize_weight(w: torch.Tensor, bits: int = WEIGHT_BITS) -> torch.Tensor:
    return torch.round(w.detach().double() * float(1 << bits))


def _conv_fn(m: nn.Conv2d | nn.ConvTranspose2d) -> Fn:
    transposed = isinstance(m, nn.ConvTranspose2d)
    if m.groups != 1 or m.dilation != (1, 1) or m.padding_mode != "zeros" or isinstance(m.padding, str):
        raise TypeError("fixed-point convolution supports plain convolutions only")
    w = quantize_weight(m.weight)
    b = quantize_weight(m.bias, WEIGHT_BITS + ACT_BITS) if m.bias is not None else torch.zeros(
        m.weight.shape[1 if transposed else 0], dtype=torch.float64)
    kw = dict(stride=m.stride, padding=m.padding)
    if transposed:
        kw["output_padding"] = m.output_padding
    # the input is clamped so that |sum of products + bias| < 2**53 whatever the input
    conv = ExactConv(w, transposed=transposed, margin=float(b.abs().max()), cap=ACT_LIMIT, **kw)
    if conv.limit < 1.0:
        raise ValueError("weights too large for exact fixed-point evaluation")
    cache: dict[torch.device, torch.Tensor] = {}

    def run(x: torch.Tensor) -> torch.Tensor:
        if x.device not in cache:
            cache[x.device] = b.to(x.device).view(1, -1, 1, 1)
        return _rescale(conv(x).add_(cache[x.device]), WEIGHT_BITS)

    return run


def _leaky_fn(slope: float) -> Fn:
    """floor(x * s / 2**SLOPE_BITS) where x < 0, else x. With 0 <= s <= 2**SLOPE_BITS that is
    max(x, floor(x * s')) for integer x, in three passes over x instead of five (s' = s / 2**bits
    is exact, and scaling by a power of two commutes with the product's rounding)."""
    s = float(round(slope * (1 << SLOPE_BITS)))
    if not 0.0 <= s <= float(1 << SLOPE_BITS):
        raise TypeError("fixed-point LeakyReLU needs a slope in [0, 1]")
    scale = s / float(1 << SLOPE_BITS)

    def run(x: torch.Tensor) -> torch.Tensor:
        return torch.maximum(x, x.mul(scale).floor_())

    return run


def _igdn_fn(gdn: nn.Module) -> Fn:
    """x * sqrt(beta + gamma * x^2): x^2 at SQ_BITS fractional bits, the sum exact, its square
    root correctly rounded and floored to (SQ_BITS + WEIGHT_BITS) / 2 bits."""
    if not getattr(gdn, "inverse", False):
        raise TypeError("only the inverse GDN of a synthesis transform is evaluated in fixed point")
    sq_bits = 16
    beta, gamma = gdn._params()
    c = gamma.shape[0]
    g = quantize_weight(gamma).view(c, c, 1, 1)
    bt = quantize_weight(beta, WEIGHT_BITS + sq_bits)
    root_bits = (sq_bits + WEIGHT_BITS) // 2
    conv = ExactConv(g, margin=float(bt.abs().max()))
    x_limit = float(1 << 26) - 1.0  # x*x below 2**52
    cache: dict[torch.device, torch.Tensor] = {}

    def run(x: torch.Tensor) -> torch.Tensor:
        if x.device not in cache:
            cache[x.device] = bt.to(x.device).view(1, -1, 1, 1)
        x = _bounded(x, x_limit)
        v = conv(_rescale(x * x, 2 * ACT_BITS - sq_bits)).add_(cache[x.device])
        norm = v.clamp_min_(0.0).sqrt_().floor_()  # root_bits fractional bits, |norm| < 2**27
        return _rescale(_bounded(x, float(1 << 25)).mul(norm), root_bits)

    return run


def _synthesis_stage_fn(stage: nn.Module) -> Fn:
    from tngvideo.nn.layers import HAAR

    deconv = _conv_fn(stage.deconv)
    gdn = None if isinstance(stage.gdn, nn.Identity) else _igdn_fn(stage.gdn)
    if stage.shortcut is None:
        return deconv if gdn is None else (lambda x: gdn(deconv(x)))
    w, b = stage.shortcut.weight[:, :, 0, 0].detach().double(), stage.shortcut.bias.detach().double()
    cout = w.shape[0] // 4
    scale = stage.subband_scale.detach().double().view(4, cout)
    haar = HAAR.double()
    folded = nn.Conv2d(w.shape[1], 4 * cout, 1).double()
    with torch.no_grad():
        folded.weight.copy_(torch.einsum("ks,sci->cki", haar, w.view(4, cout, -1) * scale[..., None])
                            .reshape(4 * cout, -1, 1, 1))
        folded.bias.copy_(torch.einsum("ks,sc->ck", haar, b.view(4, cout) * scale).reshape(4 * cout))
    shortcut = _conv_fn(folded)

    def run(x: torch.Tensor) -> torch.Tensor:
        y = deconv(x)
        if gdn is not None:
            y = gdn(y)
        return y + F.pixel_shuffle(shortcut(x), 2)

    return run


def compile_fixed(module: nn.Module) -> Fn:
    """The fixed-point version of a decoder network: integer-valued float64 (ACT_BITS fractional
    bits) in and out. Sequential stacks of Conv2d, ConvTranspose2d, ReLU, LeakyReLU, inverse GDN
    and synthesis stages; anything else is a TypeError."""
    from tngvideo.nn.layers import SynthesisStage

    if isinstance(module, nn.Sequential):
        fns = [compile_fixed(m) for m in module]

        def chain(x: torch.Tensor) -> torch.Tensor:
            for f in fns:
                x = f(x)
            return x

        return chain
    if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d)):
        return _conv_fn(module)
    if isinstance(module, nn.ReLU):
        return lambda x: x.clamp_min(0.0)
    if isinstance(module, nn.LeakyReLU):
        return _leaky_fn(module.negative_slope)
    if isinstance(module, SynthesisStage):
        return _synthesis_stage_fn(module)
    if type(module).__name__ == "GDN":
        return _igdn_fn(module)
    raise TypeError(f"no fixed-point evaluation for {type(module).__name__}")


class FixedNet:
    """A compiled network in real units: float input (rounded onto the fixed grid), float64
    output on the grid. Exact: the output depends on the input values alone."""

    def __init__(self, module: nn.Module):
        self._fn = compile_fixed(module)

    @torch.no_grad()
    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return from_fixed(self._fn(to_fixed(x)))


def fixed_scale(x: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    """x * factor on the fixed grid: factor rounded to WEIGHT_BITS, the product floored to ACT_BITS.
    Both in real units (float64 output)."""
    f = quantize_weight(factor).to(x.device)
    limit = math.floor((EXACT - 1.0) / max(float(f.abs().max()), 1.0))
    return from_fixed(_rescale(_bounded(to_fixed(x), limit) * f, WEIGHT_BITS))


def fixed_warp(frame: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
    """Backward warping (as `tngvideo.video.warp.backward_warp`: bilinear, borders replicate) on
    the fixed grid: the sample position and the interpolation weights are fixed-point, the
    weighted sum of the four neighbours exact. Real units in, float64 on the grid out."""
    b, c, h, w = frame.shape
    one = float(1 << ACT_BITS)
    v = to_fixed(frame)
    f = to_fixed(flow)
    ys = torch.arange(h, device=frame.device, dtype=torch.float64).view(1, h, 1) * one
    xs = torch.arange(w, device=frame.device, dtype=torch.float64).view(1, 1, w) * one
    px = (xs + f[:, 0]).clamp(0.0, (w - 1) * one)
    py = (ys + f[:, 1]).clamp(0.0, (h - 1) * one)
    x0, y0 = torch.floor(px / one), torch.floor(py / one)
    fx, fy = px - x0 * one, py - y0 * one  # ACT_BITS fractional weights
    x0l, y0l = x0.long(), y0.long()
    x1l, y1l = (x0l + 1).clamp(max=w - 1), (y0l + 1).clamp(max=h - 1)
    flat = v.reshape(b, c, h * w)

    def at(yy: torch.Tensor, xx: torch.Tensor) -> torch.Tensor:
        idx = (yy * w + xx).reshape(b, 1, h * w).expand(b, c, h * w)
        return torch.gather(flat, 2, idx).reshape(b, c, h, w)

    fx, fy = fx[:, None], fy[:, None]
    top = at(y0l, x0l) * (one - fx) + at(y0l, x1l) * fx  # 2 * ACT_BITS fractional bits, exact
    bottom = at(y1l, x0l) * (one - fx) + at(y1l, x1l) * fx
    rows = _rescale(top, ACT_BITS) * (one - fy) + _rescale(bottom, ACT_BITS) * fy
    return from_fixed(_rescale(rows, ACT_BITS))
