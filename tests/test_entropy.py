import numpy as np
import pytest
import torch
from torch import nn

from tngvideo.entropy import (
    ACT_BITS,
    CorruptStreamError,
    ExactNet,
    FactorizedDensity,
    GaussianConditional,
    SymbolDecoder,
    add_uniform_noise,
    decode_symbols,
    dequantize,
    encode_symbol_groups,
    encode_symbols,
    quantize,
    ste_round,
)
from tngvideo.nn import deconv, conv


@pytest.fixture(scope="module")
def gaussian_tables():
    return GaussianConditional().build_tables()


def test_decoded_symbols_equal_encoded_ones_including_escapes(gaussian_tables):
    rng = np.random.default_rng(1)
    idx = rng.integers(0, gaussian_tables.count, size=5000)
    scales = GaussianConditional().scale_table.numpy()[idx]
    sym = np.round(rng.normal(0, scales)).astype(np.int64)
    sym[:6] = [10**6, -(10**6), 2**40, -(2**40), 0, 123456]  # far outside any table: escapes
    idx[:6] = 0
    data = encode_symbols(sym, idx, gaussian_tables)
    assert np.array_equal(decode_symbols(data, idx, gaussian_tables), sym)


def test_estimated_bits_agree_with_coded_bits(gaussian_tables):
    rng = np.random.default_rng(2)
    idx = rng.integers(0, gaussian_tables.count, size=(4, 50, 50))
    scales = GaussianConditional().scale_table.numpy()[idx]
    sym = np.round(rng.normal(0, scales)).astype(np.int64)
    actual = 8 * len(encode_symbols(sym, idx, gaussian_tables))
    estimated = gaussian_tables.bits(sym.ravel(), idx.ravel())
    assert abs(actual - estimated) <= 0.01 * actual + 64


def test_empty_symbol_array_round_trips(gaussian_tables):
    idx = np.zeros((0,), dtype=np.int64)
    data = encode_symbols(np.zeros(0, dtype=np.int64), idx, gaussian_tables)
    assert decode_symbols(data, idx, gaussian_tables).shape == (0,)


def test_stream_of_partial_words_is_rejected(gaussian_tables):
    idx = np.zeros(10, dtype=np.int64)
    data = encode_symbols(np.arange(10), idx, gaussian_tables)
    with pytest.raises(CorruptStreamError):
        decode_symbols(data[:-1], idx, gaussian_tables)


def test_quantization_rounds_around_the_mean_and_dequantizes_back():
    x = torch.tensor([0.2, 1.7, -2.6, 3.49])
    mean = torch.tensor([0.5, 0.5, -0.5, 0.0])
    sym = quantize(x, mean)
    assert torch.equal(sym, torch.tensor([0.0, 1.0, -2.0, 3.0]))
    assert torch.allclose(dequantize(sym, mean), torch.tensor([0.5, 1.5, -2.5, 3.0]))


def test_training_quantizers():
    x = torch.linspace(-3, 3, 1000, requires_grad=True)
    noisy = add_uniform_noise(x)
    assert (noisy - x).abs().max() <= 0.5
    y = ste_round(x)
    assert torch.equal(y, torch.round(x))
    y.sum().backward()
    assert torch.equal(x.grad, torch.ones_like(x))


def test_factorized_likelihood_sums_to_one_and_tables_cover_it():
    torch.manual_seed(0)
    d = FactorizedDensity(3)
    v = torch.arange(-600, 601, dtype=torch.float32).view(1, 1, 1, -1).expand(1, 3, 1, -1)
    total = d.likelihood(v).sum(dim=-1)
    assert torch.allclose(total, torch.ones_like(total), atol=1e-3)
    t = d.build_tables()
    assert t.count == 3 and (t.pmf.sum(axis=1) == 1 << 16).all()


def _hyper_synthesis(n=16, m=24):
    torch.manual_seed(3)
    return nn.Sequential(deconv(n, n), nn.ReLU(), deconv(n, n), nn.ReLU(), conv(n, m, 3, 1))


def test_exact_net_tracks_the_float_network():
    net = _hyper_synthesis()
    z = torch.round(torch.randn(1, 16, 3, 5) * 4)
    exact = ExactNet(net)(z) / float(1 << ACT_BITS)
    with torch.no_grad():
        ref = net(z).double()
    assert (exact - ref).abs().max() < 0.05


def test_scale_indices_identical_across_threads_and_batch_sizes():
    net = _hyper_synthesis()
    exact = ExactNet(net)
    gc = GaussianConditional()
    z = torch.round(torch.randn(3, 16, 4, 6) * 6)
    old = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = gc.scale_index(exact(z[1:2]), ACT_BITS)
        torch.set_num_threads(2)
        batch = gc.scale_index(exact(z), ACT_BITS)
    finally:
        torch.set_num_threads(old)
    assert torch.equal(one[0], batch[1])


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_scale_indices_identical_on_cuda():
    net = _hyper_synthesis()
    gc = GaussianConditional()
    z = torch.round(torch.randn(2, 16, 4, 6) * 6)
    cpu = gc.scale_index(ExactNet(net)(z), ACT_BITS)
    gpu = gc.scale_index(ExactNet(net.cuda())(z.cuda()), ACT_BITS)
    assert torch.equal(cpu, gpu)


def test_symbol_groups_decode_in_order_with_indices_chosen_from_earlier_groups(gaussian_tables):
    rng = np.random.default_rng(4)
    first_idx = rng.integers(0, gaussian_tables.count, size=300)
    first = np.round(rng.normal(0, 3, size=300)).astype(np.int64)
    first[0] = 10**7  # an escape inside the first group
    second_idx = np.abs(first[:200]) % gaussian_tables.count  # depends on the first group's values
    second = np.round(rng.normal(0, 2, size=200)).astype(np.int64)
    data = encode_symbol_groups([(first, first_idx), (second, second_idx)], gaussian_tables)
    reader = SymbolDecoder(data)
    got_first = reader.decode(first_idx, gaussian_tables)
    assert np.array_equal(got_first, first)
    assert np.array_equal(reader.decode(np.abs(got_first[:200]) % gaussian_tables.count, gaussian_tables), second)
    assert encode_symbol_groups([(first, first_idx)], gaussian_tables) == encode_symbols(first, first_idx, gaussian_tables)


def test_exact_net_with_fixed_point_input_tracks_the_float_network():
    torch.manual_seed(6)
    net = nn.Sequential(conv(8, 8, 5, 1), nn.ReLU(), conv(8, 4, 1, 1))
    x = torch.round(torch.randn(1, 8, 6, 7) * 3 * (1 << ACT_BITS)) / (1 << ACT_BITS)
    exact = ExactNet(net, in_bits=ACT_BITS)(x * (1 << ACT_BITS)) / float(1 << ACT_BITS)
    with torch.no_grad():
        ref = net(x.float()).double()
    assert (exact - ref).abs().max() < 0.05


def test_haar_shortcuts_split_blocks_into_wavelet_subbands_and_put_them_back():
    """With identity 1x1 convolutions and unit scales, the analysis shortcut turns each 2x2 block
    [a b; c d] into the orthonormal Haar subbands (LL, LH, HL, HH) and the synthesis shortcut
    inverts it exactly (shortcuts of a trained stage scale the subbands and mix them)."""
    from tngvideo.nn import AnalysisStage, SynthesisStage

    torch.manual_seed(0)
    x = torch.rand(1, 2, 6, 8)
    ana, syn = AnalysisStage(2, 8), SynthesisStage(8, 2)
    with torch.no_grad():
        for stage in (ana, syn):
            stage.shortcut.weight.copy_(torch.eye(8).view(8, 8, 1, 1))
            stage.shortcut.bias.zero_()
            stage.gdn = torch.nn.Identity()
            main = stage.conv if stage is ana else stage.deconv
            main.weight.zero_()  # the shortcut alone
            main.bias.zero_()
        s = ana(x)
        a, b, c, d = x[..., 0::2, 0::2], x[..., 0::2, 1::2], x[..., 1::2, 0::2], x[..., 1::2, 1::2]
        expected = 0.5 * torch.cat([a + b + c + d, a - b + c - d, a + b - c - d, a - b - c + d], dim=1)
        assert torch.allclose(s, expected, atol=1e-6)
        assert torch.allclose(syn(s), x, atol=1e-6)


# -- the exact path, pinned against a pure-integer reference ---------------------------------
# The tests above only ask ExactNet to come close to the float network, which "float network,
# times 2**ACT_BITS, floor" would do as well. The ones below state what ExactNet promises: its
# output is the integer result of the fixed-point arithmetic that exact.py documents (weights
# rounded to WEIGHT_BITS fractional bits, bias to the accumulator's, integer accumulation,
# rescaling by a floor shift, ReLU, clamp to +-ACT_LIMIT), computed here independently with numpy
# int64 (no floats after the weights are read), so that it cannot depend on threads, batch or
# position. Each test also checks that the float network plus floor gives other values on its
# input, so that the test can tell the two apart.

from tngvideo.entropy.exact import ACT_LIMIT, WEIGHT_BITS


def _fixed(t: torch.Tensor, frac_bits: int) -> np.ndarray:
    """round(t * 2**frac_bits) as int64 (scaling a float by a power of two is exact; ties to even)."""
    return np.round(t.detach().cpu().double().numpy() * float(1 << frac_bits)).astype(np.int64)


def _int_conv2d(a: np.ndarray, w: np.ndarray, b: np.ndarray, stride: int, pad: int) -> np.ndarray:
    n, c, h, wd = a.shape
    o, _, k, _ = w.shape
    ap = np.pad(a, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    ho, wo = (h + 2 * pad - k) // stride + 1, (wd + 2 * pad - k) // stride + 1
    out = np.zeros((n, o, ho, wo), dtype=np.int64)
    for ki in range(k):
        for kj in range(k):
            patch = ap[:, :, ki:ki + stride * (ho - 1) + 1:stride, kj:kj + stride * (wo - 1) + 1:stride]
            out += np.tensordot(patch, w[:, :, ki, kj], axes=([1], [1])).transpose(0, 3, 1, 2)
    return out + b.reshape(1, -1, 1, 1)


def _int_conv_transpose2d(a: np.ndarray, w: np.ndarray, b: np.ndarray, stride: int, pad: int,
                          output_padding: int) -> np.ndarray:
    n, c, h, wd = a.shape
    _, o, k, _ = w.shape
    full = np.zeros((n, o, (h - 1) * stride + k + output_padding, (wd - 1) * stride + k + output_padding),
                    dtype=np.int64)
    for ki in range(k):
        for kj in range(k):
            contrib = np.tensordot(a, w[:, :, ki, kj], axes=([1], [0])).transpose(0, 3, 1, 2)
            full[:, :, ki:ki + stride * (h - 1) + 1:stride, kj:kj + stride * (wd - 1) + 1:stride] += contrib
    ho = (h - 1) * stride - 2 * pad + k + output_padding
    wo = (wd - 1) * stride - 2 * pad + k + output_padding
    return full[:, :, pad:pad + ho, pad:pad + wo] + b.reshape(1, -1, 1, 1)


def _integer_reference(net: nn.Sequential, x_fp: np.ndarray, in_bits: int) -> np.ndarray:
    """The fixed-point evaluation of `net` in int64: x_fp has `in_bits` fractional bits, the
    result ACT_BITS."""
    limit = int(ACT_LIMIT)
    a = np.clip(np.asarray(x_fp, dtype=np.int64), -limit, limit)
    frac = in_bits
    modules = list(net)
    for i, m in enumerate(modules):
        if isinstance(m, nn.ReLU):
            continue
        w = _fixed(m.weight, WEIGHT_BITS)
        b = _fixed(m.bias, WEIGHT_BITS + frac)
        # no int64 overflow anywhere (exact Python-int bound on every partial sum)
        assert int(np.abs(w).sum()) * int(np.abs(a).max(initial=0)) + int(np.abs(b).max()) < 2**62
        if isinstance(m, nn.Conv2d):
            acc = _int_conv2d(a, w, b, m.stride[0], m.padding[0])
        else:
            acc = _int_conv_transpose2d(a, w, b, m.stride[0], m.padding[0], m.output_padding[0])
        a = acc >> (WEIGHT_BITS + frac - ACT_BITS)  # arithmetic shift = floor division
        if i + 1 < len(modules) and isinstance(modules[i + 1], nn.ReLU):
            a = np.maximum(a, 0)
        a = np.clip(a, -limit, limit)
        frac = ACT_BITS
    return a


def _integer_scale_index(gc: GaussianConditional, log_scale_fp: np.ndarray) -> np.ndarray:
    """GaussianConditional.scale_index in integers (ACT_BITS fractional bits)."""
    lo = round(gc.log_min * (1 << ACT_BITS))
    step = round(gc.log_step * (1 << ACT_BITS))
    return np.clip((log_scale_fp - lo + step // 2) // step, 0, gc.levels - 1)


def _float_then_floor(net: nn.Sequential, x_fp: torch.Tensor, in_bits: int) -> np.ndarray:
    """What ExactNet must not be: the float network, scaled to ACT_BITS and floored."""
    with torch.no_grad():
        y = net(x_fp.float() / float(1 << in_bits)).double()
    return torch.floor(y * float(1 << ACT_BITS)).numpy().astype(np.int64)


def _exact_np(exact: ExactNet, x_fp: torch.Tensor) -> np.ndarray:
    out = exact(x_fp)
    assert out.dtype == torch.float64 and out.device.type == "cpu"
    assert torch.equal(out, torch.floor(out))  # integer-valued
    return out.numpy().astype(np.int64)


def _mixed_net(cin: int, seed: int) -> nn.Sequential:
    """ConvTranspose2d (two kinds), Conv2d with stride 1 and 2, ReLUs, and a last layer without one
    (negative outputs)."""
    torch.manual_seed(seed)
    net = nn.Sequential(
        nn.ConvTranspose2d(cin, 6, 5, stride=2, padding=2, output_padding=1), nn.ReLU(),
        nn.Conv2d(6, 7, 3, stride=1, padding=1), nn.ReLU(),
        nn.ConvTranspose2d(7, 5, 3, stride=2, padding=1, output_padding=1), nn.ReLU(),
        nn.Conv2d(5, 4, 3, stride=2, padding=1),
    )
    with torch.no_grad():
        for m in net:
            if not isinstance(m, nn.ReLU):
                m.weight.mul_(3.0)  # larger than the default initialisation: wider activations
                m.bias.normal_(0.0, 2.0)
    return net


def _awkward_input(shape: tuple[int, ...], in_bits: int, seed: int) -> torch.Tensor:
    """Fixed-point integers (in_bits fractional bits) of mixed magnitudes: most small, some large
    enough that float32 partial sums drop low bits (the float result then depends on the order of
    the additions), a few beyond the +-ACT_LIMIT clamp."""
    g = torch.Generator().manual_seed(seed)
    one = float(1 << in_bits)
    x = torch.round(torch.randn(shape, generator=g, dtype=torch.float64) * 5 * one)
    big = torch.rand(shape, generator=g) < 0.15
    x = torch.where(big, torch.round(torch.randn(shape, generator=g, dtype=torch.float64) * 2000 * one) + 1, x)
    huge = torch.rand(shape, generator=g) < 0.02
    return torch.where(huge, torch.sign(x + 0.5) * (ACT_LIMIT * 2 + 3), x)


@pytest.mark.parametrize("in_bits", [0, 3, ACT_BITS])
def test_exact_net_equals_the_integer_reference(in_bits):
    net = _mixed_net(5, seed=11 + in_bits)
    x = _awkward_input((2, 5, 5, 6), in_bits, seed=in_bits)
    got = _exact_np(ExactNet(net, in_bits=in_bits), x)
    ref = _integer_reference(net, x.numpy().astype(np.int64), in_bits)
    assert got.shape == ref.shape == (2, 4, 10, 12)
    assert (ref < 0).any() and (ref > 0).any()
    assert np.array_equal(got, ref), f"{int((got != ref).sum())} of {ref.size} values differ"
    assert not np.array_equal(_float_then_floor(net, x, in_bits), ref)


def test_exact_net_floors_where_float32_rounds_across_the_boundary():
    """One product per output, x * (1 + 2**-12) with |x| near 40000, whose float32 value (spacing
    2**-8 there, one ACT_BITS step) is x * 4097 / 16 steps rounded to the nearest integer. The
    inputs make the fraction 15/16 (x > 0: rounded up) or 1/16 below zero (x < 0: rounded towards
    zero), so the float network plus floor lands one step above the exact floor, whatever order
    a backend adds in (there is only one product)."""
    net = nn.Sequential(nn.Conv2d(1, 1, 1))
    with torch.no_grad():
        net[0].weight.fill_(1.0 + 2.0**-12)  # exactly WEIGHT_BITS fractional bits
        net[0].bias.zero_()
    xs = [40015, 40031, 39999, -40001, -40017, -39985]  # x * 4097 = 15 (positive) / 1 (negative) mod 16
    x = torch.tensor(xs, dtype=torch.float64).view(1, 1, 1, -1)
    expected = np.array([(v * 4097) // 16 for v in xs]).reshape(1, 1, 1, -1)  # Python ints: floor
    assert np.array_equal(_exact_np(ExactNet(net), x), expected)
    assert np.array_equal(_integer_reference(net, x.numpy().astype(np.int64), 0), expected)
    assert np.array_equal(_float_then_floor(net, x, 0), expected + 1)


def test_exact_net_is_identical_across_threads_and_batch_composition():
    net = _hyper_synthesis()
    with torch.no_grad():
        for m in net:
            if not isinstance(m, nn.ReLU):
                m.weight.mul_(4.0)
    exact = ExactNet(net)
    z = _awkward_input((3, 16, 4, 6), 0, seed=21)
    ref = _integer_reference(net, z.numpy().astype(np.int64), 0)
    old = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        single = [_exact_np(exact, z[i:i + 1]) for i in range(3)]
        swapped = _exact_np(exact, z[[2, 0, 1]])
        torch.set_num_threads(2)
        batch = _exact_np(exact, z)
        pair = _exact_np(exact, z[1:])
    finally:
        torch.set_num_threads(old)
    assert np.array_equal(batch, ref)
    for i in range(3):
        assert np.array_equal(single[i][0], ref[i])
    assert np.array_equal(swapped, ref[[2, 0, 1]])
    assert np.array_equal(pair, ref[1:])
    assert not np.array_equal(_float_then_floor(net, z, 0), ref)


def test_exact_net_with_fixed_point_input_is_identical_at_every_position():
    """A context-style network (5x5 then 1x1, stride 1, fixed-point input): an output depends only
    on the inputs around it, so a shifted crop gives the same values where the crop covers the
    receptive field, at any thread count, and both equal the integer reference."""
    torch.manual_seed(7)
    net = nn.Sequential(conv(8, 8, 5, 1), nn.ReLU(), conv(8, 6, 1, 1), nn.ReLU(), conv(6, 4, 1, 1))
    exact = ExactNet(net, in_bits=ACT_BITS)
    x = _awkward_input((1, 8, 13, 15), ACT_BITS, seed=5)
    ref = _integer_reference(net, x.numpy().astype(np.int64), ACT_BITS)
    old = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        whole = _exact_np(exact, x)
        torch.set_num_threads(1)
        crops = {(r, c): _exact_np(exact, x[..., r:r + 8, c:c + 9]) for r, c in [(0, 0), (1, 3), (5, 6)]}
    finally:
        torch.set_num_threads(old)
    assert np.array_equal(whole, ref)
    for (r, c), crop in crops.items():
        # a 5x5 kernel: outputs 2 or more from the crop's border see no padding
        assert np.array_equal(crop[..., 2:-2, 2:-2], ref[..., r + 2:r + 6, c + 2:c + 7])
    assert not np.array_equal(_float_then_floor(net, x, ACT_BITS), ref)


def test_shipped_image_model_scale_indices_are_exact_and_thread_independent():
    """The real coding path (LatentCodec: ExactNet(h_s) on the hyper-latent symbols, then the
    walk over the checkerboard passes and channel slices with ExactNet(ctx_s) and
    ExactNet(chan_s[i]) on the symbols already coded) on the shipped image model and a small
    picture: every scale index is the same at 1 and 2 threads and equal to an int64 reference of
    the same walk."""
    from tngvideo.image.codec import ImageCodec
    from tngvideo.latent.model import checkerboard_anchors

    codec = ImageCodec.from_name()
    model, latents = codec.model, codec.latents
    assert model.config.context  # the checkerboard's exact network is on the path
    rng = np.random.default_rng(8)
    yy, xx = np.mgrid[0:128, 0:128] / 128.0
    img = np.stack([0.5 + 0.4 * np.sin(6 * xx + 3 * yy), yy, 0.3 + 0.5 * xx * yy])
    img = np.clip(img + rng.normal(0, 0.08, img.shape), 0, 1)
    x = torch.from_numpy(img).float().unsqueeze(0)
    with torch.no_grad():
        gain, _ = model.gains(torch.tensor([5.0]))
        y = model.g_a(x) * gain
        z_sym = torch.round(model.h_a(y))
        mean = model.h_m(z_sym)
        sym = torch.round(y - mean)  # the symbols fed to the walk (float side: computed once)
    anchor = checkerboard_anchors(y.shape[-2:]).bool().expand_as(y)

    def walk_indices() -> tuple[np.ndarray, np.ndarray]:
        log_fp, _ = latents._side(z_sym, torch.device("cpu"), False)
        got = np.full(y.shape, -1, dtype=np.int64)

        def code(mask, idx, m_k, channels):
            a, b = channels
            mask_np = mask.numpy()
            got[:, a:b][mask_np] = idx[mask_np]
            return torch.where(mask, sym[:, a:b], 0.0)

        with torch.no_grad():
            latents._walk(log_fp, mean, code, False)
        return log_fp.numpy().astype(np.int64), got

    results = {}
    old = torch.get_num_threads()
    try:
        for threads in (1, 2):
            torch.set_num_threads(threads)
            results[threads] = walk_indices()
    finally:
        torch.set_num_threads(old)

    # the int64 reference of the same walk
    gc, act = model.gaussian, ACT_BITS
    s_int, anc = sym.numpy().astype(np.int64), anchor.numpy()
    s_anchor = np.where(anc, s_int, 0)
    ref_log = _integer_reference(model.h_s, z_sym.numpy().astype(np.int64), 0)
    slices = model.config.slices
    ref = np.full(y.shape, -1, dtype=np.int64)
    second = ref_log + _integer_reference(model.ctx_s, np.concatenate([s_anchor << act, ref_log], 1), act) * ~anc[:1]
    for second_pass, (base, known, where) in enumerate(((ref_log, s_anchor, anc), (second, s_int, ~anc))):
        for k, (a, b) in enumerate(slices):
            s_k = base[:, a:b]
            if k > 0:
                net = model.chan_s[model.channel_net_index(k, bool(second_pass))]
                s_k = s_k + _integer_reference(net, np.concatenate([known[:, :a] << act, s_k], 1), act)
            ref[:, a:b][where[:, a:b]] = _integer_scale_index(gc, s_k)[where[:, a:b]]
    assert (ref >= 0).all()
    plain = _integer_scale_index(gc, ref_log)
    assert len(np.unique(plain)) > 5 and (plain != ref).mean() > 0.05  # the contexts move indices
    for threads, (log_fp, got) in results.items():
        assert np.array_equal(log_fp, ref_log), threads
        assert np.array_equal(got, ref), f"{threads} threads: {int((got != ref).sum())} indices differ"
    assert not np.array_equal(_float_then_floor(model.h_s, z_sym, 0), ref_log)
