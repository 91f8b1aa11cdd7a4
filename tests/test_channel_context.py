"""The channel-wise context: latent slices coded one after another, exactly, on top of the
checkerboard."""

import numpy as np
import pytest
import torch

from conftest import natural_image
from tngvideo.image.codec import ImageCodec
from tngvideo.image.model import TNGImageModel
from tngvideo.image.weights import load_weights, save_weights
from tngvideo.latent.codec import LatentCodec
from tngvideo.latent.model import ModelConfig, with_channel_context, with_context
from tngvideo.latent.weights import build_tables


def _active_channel_model(slices: int = 3) -> TNGImageModel:
    """A small model whose context and channel networks are not zero."""
    torch.manual_seed(7)
    model = TNGImageModel(ModelConfig(channels=16, latent_channels=24, context=True, channel_slices=slices))
    with torch.no_grad():
        for net in (model.ctx_s, model.ctx_m, *model.chan_s, *model.chan_m):
            net[-1].weight.normal_(0.0, 0.2)
            net[-1].bias.normal_(0.0, 0.2)
    return model.eval()


@pytest.fixture(scope="module")
def channel_weights(tmp_path_factory):
    path = tmp_path_factory.mktemp("chan") / "chan.safetensors"
    model = _active_channel_model()
    save_weights(model, path, name="chan", tables=build_tables(model))
    return path


@pytest.fixture(scope="module")
def channel_codec(channel_weights):
    return ImageCodec(load_weights(channel_weights))


def _latent(model, size=64, quality=6.0):
    x = torch.from_numpy(natural_image(size, size)).permute(2, 0, 1)[None].float() / 255
    gain, _ = model.gains(torch.tensor([quality]))
    return model.g_a(x) * gain


def test_slices_cover_the_latent_in_order():
    cfg = ModelConfig(latent_channels=192, context=True, channel_slices=4)
    assert cfg.slices == [(0, 48), (48, 96), (96, 144), (144, 192)]
    assert ModelConfig(latent_channels=192).slices == [(0, 192)]
    with pytest.raises(ValueError):
        ModelConfig(latent_channels=192, channel_slices=4)  # needs the checkerboard
    with pytest.raises(ValueError):
        ModelConfig(latent_channels=190, context=True, channel_slices=4)


@pytest.mark.parametrize("shape", [(96, 128), (37, 53), (1, 1)])
def test_channel_context_round_trips_bit_exactly_at_any_size(channel_codec, shape):
    img = natural_image(*shape, seed=sum(shape))
    res = channel_codec.compress_with_info(img, 5.0)
    assert np.array_equal(channel_codec.decompress(res.data), res.reconstruction)


def test_channel_context_estimated_bits_agree_with_payload(channel_codec):
    res = channel_codec.compress_with_info(natural_image(128, 160), 7.0)
    assert abs(res.estimated_bits - res.payload_bits) <= 0.01 * res.payload_bits + 64


def test_training_pass_models_what_the_codec_codes(channel_weights):
    """The training pass (eval mode: rounded values) computes the means the codec codes against,
    slice by slice and pass by pass (the same decoded latent), and a rate within the small gap
    between its float Gaussian and the codec's quantized tables."""
    loaded = load_weights(channel_weights)
    y = _latent(loaded.model)
    with torch.no_grad():
        y_hat, bits_y, bits_z = loaded.model.code_latent(y)
    codec = LatentCodec(loaded.model, loaded.tables)
    streams, y_coded = codec.encode(y, exact=False)
    assert (y_hat - y_coded).abs().max() < 1e-4
    assert float(bits_y + bits_z) == pytest.approx(streams.estimated_bits, rel=0.03)
    # the fixed-point means (what files are coded against) stay within their rounding of the float ones
    _, y_exact = codec.encode(y)
    assert (y_hat - y_exact).abs().max() < 2e-3


def test_channel_nets_change_the_coded_latent(channel_weights):
    """Every channel net is used: zeroing either scale or mean nets changes the coded stream."""
    loaded = load_weights(channel_weights)
    y = _latent(loaded.model)
    active = LatentCodec(loaded.model, loaded.tables).encode(y)[0]
    for part in ("chan_s", "chan_m"):
        plain = load_weights(channel_weights).model
        with torch.no_grad():
            for net in getattr(plain, part):
                net[-1].weight.zero_()
                net[-1].bias.zero_()
        other = LatentCodec(plain, build_tables(plain)).encode(y)[0]
        assert other.latent != active.latent, part


def test_added_channel_context_starts_as_the_checkerboard_model():
    """with_channel_context adds zero-initialised nets: the same symbols, reconstruction and rate as
    the model it came from (the stream differs only in the order the groups are coded)."""
    torch.manual_seed(3)
    base = with_context(TNGImageModel(ModelConfig(channels=16, latent_channels=24))).eval()
    with torch.no_grad():
        for net in (base.ctx_s, base.ctx_m):
            net[-1].weight.normal_(0.0, 0.2)
    chan = with_channel_context(base, 4).eval()
    y = _latent(base)
    a, ya = LatentCodec(base, build_tables(base)).encode(y)
    b, yb = LatentCodec(chan, build_tables(chan)).encode(y)
    assert (a.hyper, a.symbols_crc) == (b.hyper, b.symbols_crc)
    assert a.estimated_bits == pytest.approx(b.estimated_bits, rel=1e-9)
    assert abs(len(a.latent) - len(b.latent)) <= 8
    assert torch.equal(ya, yb)


def test_channel_nets_get_gradients_from_the_rate():
    model = _active_channel_model().train()
    _, bits_y, bits_z = model.code_latent(_latent(model).detach())
    (bits_y + bits_z).sum().backward()
    for nets in (model.chan_s, model.chan_m):
        for net in nets:
            assert net[0].weight.grad.abs().sum() > 0
