"""Exact integer convolution: the float32-limb path and the float64 path give the exact integer
sums (checked against int64 arithmetic), at every input magnitude, down to the 2**24 bound; and
the shipped P-frame networks give the same values whichever path runs each layer. Also: the heap
setting that the command line makes for speed takes on glibc."""

from __future__ import annotations

import math
import platform

import pytest
import torch
import torch.nn.functional as F

from tngvideo.heap import keep_freed_memory
from tngvideo.nn import exact_conv
from tngvideo.nn.exact_conv import ExactConv


def _int64_conv(x: torch.Tensor, w: torch.Tensor, stride: int, padding: int) -> torch.Tensor:
    """The reference: im2col and an int64 matrix product."""
    b, _, h, wd = x.shape
    cols = F.unfold(x, w.shape[2:], padding=padding, stride=stride).long()  # exact: |x| < 2**53
    out = w.long().view(w.shape[0], -1) @ cols
    ho = (h + 2 * padding - w.shape[2]) // stride + 1
    wo = (wd + 2 * padding - w.shape[3]) // stride + 1
    return out.view(b, w.shape[0], ho, wo)


def _both(conv: ExactConv, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, tuple | None]:
    conv.forced = "float64"
    a = conv(x)
    conv.forced = "float32"
    plan = conv._plan(float(x.abs().max()))
    b = conv(x)
    conv.forced = None
    return a, b, plan and (len(plan[0].shifts), plan[1])


@pytest.mark.parametrize("stride,padding,size", [(1, 1, (37, 45)), (2, 1, (36, 45)), (1, 0, (9, 7))])
@pytest.mark.parametrize("magnitude", [10, 14, 17, 20, 23])
def test_limbs_are_exact_at_every_magnitude(stride, padding, size, magnitude):
    g = torch.Generator().manual_seed(magnitude)
    w = torch.round(torch.randn(24, 40, 3, 3, generator=g) * 0.1 * 2 ** 14).double()
    x = torch.round((torch.rand(2, 40, *size, generator=g) * 2 - 1) * 2.0 ** magnitude).double()
    conv = ExactConv(w, stride=(stride, stride), padding=(padding, padding))
    a, b, plan = _both(conv, x)
    ref = _int64_conv(x, w, stride, padding)
    assert plan is not None  # the float32 path really ran
    assert torch.equal(a.long(), ref) and torch.equal(b.long(), ref), plan


@pytest.mark.parametrize("shape,stride,padding,output_padding", [
    ((24, 20, 5, 5), (2, 2), (2, 2), (1, 1)),  # the synthesis layers (polyphase form)
    ((16, 12, 4, 4), (2, 2), (1, 1), (0, 0)),  # the P-frame refiner's upsampling
    ((24, 3, 5, 5), (2, 2), (2, 2), (1, 1)),  # a 3-channel output layer (matmul and col2im)
    ((6, 5, 5, 3), (3, 2), (0, 1), (2, 0)), ((6, 4, 7, 7), (2, 3), (4, 1), (1, 2)),
    ((6, 8, 3, 3), (1, 1), (1, 1), (0, 0)), ((6, 8, 2, 2), (2, 2), (0, 0), (0, 0))])
@pytest.mark.parametrize("size", [(9, 13), (2, 1)])
def test_transposed_convolution_is_exact(shape, stride, padding, output_padding, size):
    """Both forms of a transposed convolution, in float64 and in float32 limbs, give the integer
    sums of conv_transpose2d (exact in float64 at these magnitudes)."""
    g = torch.Generator().manual_seed(sum(shape))
    w = torch.round(torch.randn(*shape, generator=g) * 300).double()
    x = torch.round(torch.randn(2, shape[0], *size, generator=g) * 3000).double()
    ref = F.conv_transpose2d(x, w, stride=stride, padding=padding, output_padding=output_padding)
    conv = ExactConv(w, stride=stride, padding=padding, output_padding=output_padding, transposed=True)
    a, b, plan = _both(conv, x)
    assert plan is not None
    assert a.shape == ref.shape and torch.equal(a, ref) and torch.equal(b, ref)


def test_limbs_hold_at_the_float32_bound():
    """Odd weights and inputs of one sign, as large as each plan allows: the partial sums come
    within a few percent of 2**24 and stay exact (a bound one bit looser rounds them)."""
    g = torch.Generator().manual_seed(5)
    w = 2.0 * torch.randint(4090, 4100, (3, 16, 3, 3), generator=g).double() + 1.0
    conv = ExactConv(w, padding=(1, 1))
    whole = conv.plans[0]  # the weights in one limb: the largest sums
    top = math.floor(exact_conv.EXACT32 / whole.l1)  # the largest top limb
    for m in [math.floor(top * float(1 << (whole.bits * k)) * f) for k in range(3) for f in (0.97, 1.0)]:
        n = whole.act_limbs(m)
        assert n is not None
        for sign in (1.0, -1.0):
            x = sign * (m - torch.randint(0, 2, (1, 16, 7, 6), generator=g).double())
            x = torch.trunc(x)
            ref = _int64_conv(x, w, 1, 1)
            assert torch.equal(conv._float32(x, whole, n).long(), ref), (m, n, sign)
            assert torch.equal(conv(x).long(), ref)


def test_inputs_beyond_the_limbs_take_float64():
    w = torch.round(torch.randn(8, 32, 3, 3, generator=torch.Generator().manual_seed(1)) * 2 ** 13).double()
    conv = ExactConv(w, padding=(1, 1))
    x = torch.full((1, 32, 5, 5), 2.0 ** 32, dtype=torch.float64)
    x[..., 1::2] += 1.0
    conv.forced = "float32"
    assert conv._plan(2.0 ** 32) is None and conv.limit > 2.0 ** 32 + 1  # no limbs reach this far
    assert torch.equal(conv(x), _int64_conv(x, w, 1, 1).double())


def test_hostile_input_is_clamped_to_the_exact_limit():
    w = torch.full((1, 4, 3, 3), 2.0 ** 14)
    conv = ExactConv(w, padding=(1, 1), margin=2.0 ** 40)
    x = torch.full((1, 4, 3, 3), 1e300, dtype=torch.float64)
    out = conv(x)
    assert conv.limit * 36 * 2 ** 14 + 2 ** 40 < 2.0 ** 53
    assert torch.isfinite(out).all() and float(out.max()) == conv.limit * 36 * 2 ** 14


def test_shipped_networks_agree_whichever_path_runs(monkeypatch):
    """The shipped P-frame refiners (where the float32 path is taken) give the same values with
    every layer forced to float64 and to float32."""
    from tngvideo.nn.fixed import FixedNet
    from tngvideo.video.registry import load_video_codecs

    pframes = load_video_codecs().pframes
    g = torch.Generator().manual_seed(3)
    outs = {}
    for mode in ("float64", "float32", None):
        original = ExactConv._plan

        def plan(self, m, _mode=mode, _original=original):
            self.forced = _mode
            return _original(self, m)

        monkeypatch.setattr(ExactConv, "_plan", plan)
        refiner = pframes.loop_filter
        x = torch.rand(1, 6, 40, 56, generator=g.manual_seed(3))
        outs[mode] = FixedNet(refiner.tail)(FixedNet(refiner.body)(FixedNet(refiner.head)(x)))
        monkeypatch.setattr(ExactConv, "_plan", original)
    assert torch.equal(outs["float64"], outs["float32"]) and torch.equal(outs["float64"], outs[None])


def test_keep_freed_memory_takes_on_glibc():
    result = keep_freed_memory()
    assert isinstance(result, bool)
    if platform.system() == "Linux" and platform.libc_ver()[0] == "glibc":
        assert result


def test_float32_bound_is_the_format_limit():
    assert exact_conv.EXACT32 == 2.0 ** 24 and float(torch.tensor(2.0 ** 24 + 1, dtype=torch.float32)) != 2.0 ** 24 + 1
