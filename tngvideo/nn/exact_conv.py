"""Exact integer convolution: the sum of products of integer weights and integer activations,
computed the fast way where that is exact.

Float64 holds any integer below 2**53, so a float64 convolution of integers whose sums stay below
that is exact in any order of addition. It is also slow on CPUs (no vectorised direct kernels:
im2col and a double GEMM). Float32 holds integers up to 2**24, and its convolutions are 5-40x
faster. So each operand is cut into limbs small enough that every partial sum of a float32
convolution of limbs stays within 2**24 (an integer bound from the weights' L1 norms and the
input's largest magnitude, checked on each call), the limb products are convolved in float32 in
one call (activation limbs stacked on the batch axis, weight limbs on the output channels), and
recombined with powers of two in float64. Every step is exact, so the result is the same integer
whichever path computes it; the path is chosen for speed alone, from the sizes, and falls back to
float64 when the input is too large for the limbs (a hostile stream's, say).
"""

from __future__ import annotations

import math
from contextlib import ExitStack

import torch
import torch.nn.functional as F

EXACT32 = float(1 << 24)
EXACT64 = float(1 << 53)
MAX_ACT_LIMBS = 3


def _exact_settings(stack: ExitStack, x: torch.Tensor) -> None:
    """No algorithm that rounds: cuDNN (Winograd, FFT, TF32) is off for these convolutions, and
    so is TF32 in the matrix products of the native path, whatever the program has set."""
    if x.is_cuda:
        stack.enter_context(torch.backends.cudnn.flags(enabled=False))
        matmul = torch.backends.cuda.matmul
        previous = matmul.allow_tf32
        matmul.allow_tf32 = False
        stack.callback(setattr, matmul, "allow_tf32", previous)


def _row_l1(w: torch.Tensor) -> torch.Tensor:
    """L1 norm of each output channel's weights (conv2d layout: out, in, kh, kw)."""
    return w.abs().sum(dim=(1, 2, 3))


class _Limbs:
    """One float32 evaluation of an integer weight: its limbs (stacked on the output channels),
    their shifts, and the activation limb width that keeps every partial sum within 2**24."""

    def __init__(self, w: torch.Tensor, split: int | None):
        if split is None:
            parts, self.shifts = [w], (0,)
        else:
            hi = torch.round(w / float(1 << split))
            parts, self.shifts = [w - hi * float(1 << split), hi], (0, split)
        self.l1 = max(float(_row_l1(p).max()) for p in parts)
        self.scale_sum = sum(float(_row_l1(p).max()) * float(1 << s) for p, s in zip(parts, self.shifts))
        # activation limbs below 2**bits: (2**bits - 1) * l1 <= 2**24
        self.bits = int(math.floor(math.log2(EXACT32 / max(self.l1, 1.0) + 1.0)))
        while self.bits > 0 and (float(1 << self.bits) - 1.0) * self.l1 > EXACT32:
            self.bits -= 1
        self.weight = torch.cat(parts, dim=0).float()
        self.cache: dict[torch.device, torch.Tensor] = {}

    def act_limbs(self, m: float) -> int | None:
        """How many activation limbs make |x| <= m exact, or None."""
        if self.bits < 1:
            return None
        for n in range(1, MAX_ACT_LIMBS + 1):
            if self.top(m, n) * self.l1 <= EXACT32:
                return n
        return None

    def top(self, m: float, n: int) -> float:
        """The largest magnitude of the top limb of |x| <= m cut into n limbs."""
        return math.ceil(m / float(1 << (self.bits * (n - 1)))) if n > 1 else m

    def weight_on(self, device: torch.device) -> torch.Tensor:
        if device not in self.cache:
            self.cache[device] = self.weight.to(device).contiguous(memory_format=torch.channels_last)
        return self.cache[device]


class _Polyphase:
    """A transposed convolution (stride s) as a plain one: output pixel f = s*m + r of phase r sums
    x[m - j] * w[r + s*j] over j, a correlation of x with the phase's taps, reversed. The phases'
    kernels (zero-padded to ceil(k/s) taps) stack on the output channels, one stride-1 convolution
    of the padded input computes them all, and interleaving and cropping give the output. The same
    products are summed, so on integers it is exact; it is faster than the native kernel (which
    zero-fills a column buffer of cout*k*k rows) and lets the float32 limbs run it."""

    def __init__(self, w: torch.Tensor, stride: tuple[int, int], padding: tuple[int, int],
                 output_padding: tuple[int, int]):
        cin, cout, kh, kw = w.shape
        self.stride, self.padding, self.output_padding, self.kernel = stride, padding, output_padding, (kh, kw)
        self.taps = tuple(-(-k // s) for k, s in zip((kh, kw), stride))  # ceil(k / s)
        (sh, sw), (th, tw) = stride, self.taps
        full = torch.zeros(cin, cout, sh * th, sw * tw, dtype=w.dtype)
        full[:, :, :kh, :kw] = w
        # phase (rh, rw), tap (a, b) <- w[rh + sh*(th-1-a), rw + sw*(tw-1-b)]
        phased = full.view(cin, cout, th, sh, tw, sw).flip(2, 4)
        self.weight = phased.permute(1, 3, 5, 0, 2, 4).reshape(cout * sh * sw, cin, th, tw).contiguous()
        # first phase row computed, m0 = floor(p / s): rows before it fall in the cropped padding
        self.first = tuple(p // s for p, s in zip(padding, stride))
        self.low = tuple(t - 1 - m for t, m in zip(self.taps, self.first))
        # rows computed past the input: ceil((k + op - p - s) / s) - m0 (independent of its size)
        self.extra = tuple(-(-(k + op - p - s) // s) - m for k, op, p, s, m in
                           zip(self.kernel, output_padding, padding, stride, self.first))

    def pad(self, x: torch.Tensor) -> torch.Tensor:
        (lh, lw), (eh, ew), (th, tw) = self.low, self.extra, self.taps
        return F.pad(x, (lw, ew - lw + tw - 1, lh, eh - lh + th - 1))  # negative pads crop

    def out_size(self, h: int, w: int) -> tuple[int, int]:
        return tuple((n - 1) * s - 2 * p + k + op for n, s, p, k, op in
                     zip((h, w), self.stride, self.padding, self.kernel, self.output_padding))

    def interleave(self, y: torch.Tensor, shape: torch.Size) -> torch.Tensor:
        n, _, h, w = shape
        (sh, sw), (ph, pw) = self.stride, self.padding
        c, rows, cols = y.shape[1] // (sh * sw), y.shape[2], y.shape[3]
        y = y.view(n, c, sh, sw, rows, cols).permute(0, 1, 4, 2, 5, 3).reshape(n, c, rows * sh, cols * sw)
        oh, ow = self.out_size(h, w)
        top, left = ph - sh * self.first[0], pw - sw * self.first[1]
        return y[:, :, top:top + oh, left:left + ow]


class ExactConv:
    """conv2d or conv_transpose2d of integer-valued float64 tensors, without bias: the exact integer
    sums (float64). Inputs are clamped to `limit`: the largest magnitude for which the sums stay
    below 2**53 with `margin` to spare (for a bias added afterwards), or `cap` if smaller.
    `forced` ("float64", "float32" or None) pins the path, for tests and benchmarks."""

    def __init__(self, weight: torch.Tensor, *, stride: tuple[int, int] = (1, 1),
                 padding: tuple[int, int] = (0, 0), transposed: bool = False,
                 output_padding: tuple[int, int] = (0, 0), margin: float = 0.0, cap: float = math.inf):
        w = weight.double()
        fan_in = w.abs().sum(dim=(0, 2, 3)) if transposed else _row_l1(w)
        self.limit = min(cap, math.floor((EXACT64 - margin - 1.0) / max(float(fan_in.max()), 1.0)))
        self.margin = margin
        self.forced: str | None = None
        self.polyphase = _Polyphase(w, stride, padding, output_padding) if transposed else None
        # the plain convolution that the float32 limbs (and float64, unless folded) evaluate
        conv_w = w if self.polyphase is None else self.polyphase.weight
        self.kw = dict(stride=(1, 1), padding=(0, 0)) if transposed else dict(stride=stride, padding=padding)
        # float64 runs a transposed convolution in the form with the smaller column buffer: its
        # polyphase convolution (cin * taps rows) or a matrix product and a col2im (cout * k*k rows;
        # 10x faster than the polyphase form for the 3-channel output layer, 1.2-2x slower elsewhere)
        self.fold = transposed and conv_w[0].numel() > w[0].numel()
        self.w64 = w if self.polyphase is None or self.fold else conv_w
        self.cout = conv_w.shape[0]
        self.plans = [_Limbs(conv_w, None), _Limbs(conv_w, self._split(conv_w))]
        # where the float32 limbs pay (measured layer by layer in a CIF decode on a 2-core x86
        # CPU): plain 3x3 convolutions at stride 1 from wide inputs to few outputs, the layers
        # float64 kernels run slowest (im2col dominates); elsewhere float64 is as fast or faster
        self.prefer32 = (not transposed and stride == (1, 1) and w.shape[2:] == (3, 3)
                         and w.shape[1] >= 32 and self.cout <= 64)
        self.cache: dict[torch.device, torch.Tensor] = {}

    @staticmethod
    def _split(w: torch.Tensor) -> int:
        """The weight split (bits in the low limb) that minimises the larger limb norm."""
        def larger_norm(s: int) -> float:
            hi = torch.round(w / float(1 << s))
            return max(float(_row_l1(hi).max()), float(_row_l1(w - hi * float(1 << s)).max()))

        return min(range(2, 14), key=larger_norm)

    def _plan(self, m: float) -> tuple[_Limbs, int] | None:
        """The cheapest exact float32 plan for inputs |x| <= m where float32 is the faster path."""
        if self.forced == "float64" or (self.forced is None and not self.prefer32):
            return None
        best = None
        for plan in self.plans:
            n = plan.act_limbs(m)
            if n is None:
                continue
            # bound on the recombination's partial sums in float64
            spread = (plan.top(m, n) + 1.0) * float(1 << (plan.bits * (n - 1)))
            if spread * plan.scale_sum + self.margin >= EXACT64:
                continue
            cost = n * len(plan.shifts)
            if best is None or cost < best[1] * len(best[0].shifts):
                best = (plan, n)
        return best

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        lo, hi = torch.aminmax(x)
        m = max(-float(lo), float(hi))
        if m > self.limit:
            x = x.clamp(-self.limit, self.limit)
            m = float(self.limit)
        with ExitStack() as stack:
            _exact_settings(stack, x)
            plan = self._plan(m)
            if plan is None:
                return self._float64(x)
            if self.polyphase is None:
                return self._float32(x, *plan)
            return self.polyphase.interleave(self._float32(self.polyphase.pad(x), *plan), x.shape)

    def _float64(self, x: torch.Tensor) -> torch.Tensor:
        if x.device not in self.cache:
            self.cache[x.device] = self.w64.to(x.device)
        w, poly = self.cache[x.device], self.polyphase
        if poly is None:
            return F.conv2d(x.contiguous(), w, **self.kw)
        if not self.fold:
            return poly.interleave(F.conv2d(poly.pad(x), w, **self.kw), x.shape)
        n, cin, h, wd = x.shape
        cout, kh, kw = w.shape[1:]
        cols = torch.matmul(w.reshape(cin, cout * kh * kw).t(), x.reshape(n, cin, h * wd))
        return F.fold(cols, poly.out_size(h, wd), (kh, kw), stride=poly.stride, padding=poly.padding)

    def _float32(self, x: torch.Tensor, plan: _Limbs, n: int) -> torch.Tensor:
        b = x.shape[0]
        step = float(1 << plan.bits)
        # x = sum of limb_i * step**i, low limbs in [0, step), stacked on the batch axis
        xs = torch.empty((n * b, *x.shape[1:]), dtype=torch.float32, device=x.device,
                         memory_format=torch.channels_last)
        rest = x
        for i in range(n - 1):
            q = rest.mul(1.0 / step).floor_()
            xs[i * b:(i + 1) * b].copy_(torch.sub(rest, q, alpha=step))
            rest = q
        xs[(n - 1) * b:].copy_(rest)
        out = F.conv2d(xs, plan.weight_on(x.device), **self.kw)
        co = out.shape[1] // len(plan.shifts)
        acc = None
        for i in range(n):
            for j, shift in enumerate(plan.shifts):
                part = out[i * b:(i + 1) * b, j * co:(j + 1) * co].double()
                scale = float(1 << (plan.bits * i + shift))
                acc = part.mul_(scale) if acc is None else acc.add_(part, alpha=scale)
        return acc
