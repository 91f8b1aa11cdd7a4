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
