"""The checkerboard context model: exact two-pass coding and the entropy-model fit."""

import numpy as np
import pytest
import torch

from conftest import code_at_thread_counts, natural_image
from tngvideo.image.codec import DecodeError, ImageCodec
from tngvideo.image.model import TNGImageModel
from tngvideo.image.weights import load_weights, save_weights
from tngvideo.latent.codec import LatentCodec
from tngvideo.latent.model import ModelConfig, checkerboard_anchors, with_context
from tngvideo.latent.weights import build_tables
from tngvideo.train.entropy_fit import EntropyFitConfig, eval_bpp, fit_entropy_model


def _active_context_model() -> TNGImageModel:
    """A small model whose context networks are not zero (so the second pass really differs)."""
    torch.manual_seed(5)
    model = TNGImageModel(ModelConfig(channels=16, latent_channels=24, context=True))
    with torch.no_grad():
        for net in (model.ctx_s, model.ctx_m):
            net[-1].weight.normal_(0.0, 0.2)
            net[-1].bias.normal_(0.0, 0.2)
    return model.eval()


@pytest.fixture(scope="module")
def context_weights(tmp_path_factory):
    path = tmp_path_factory.mktemp("ctx") / "ctx.safetensors"
    model = _active_context_model()
    save_weights(model, path, name="ctx", tables=build_tables(model))
    return path


@pytest.fixture(scope="module")
def context_codec(context_weights):
    return ImageCodec(load_weights(context_weights))


def test_checkerboard_anchors_alternate():
    a = checkerboard_anchors((3, 4))[0, 0]
    assert a.tolist() == [[1, 0, 1, 0], [0, 1, 0, 1], [1, 0, 1, 0]]


@pytest.mark.parametrize("shape", [(96, 128), (37, 53), (1, 1), (70, 17)])
def test_context_codec_round_trips_bit_exactly_at_any_size(context_codec, shape):
    img = natural_image(*shape, seed=sum(shape))
    res = context_codec.compress_with_info(img, 5.0)
    assert np.array_equal(context_codec.decompress(res.data), res.reconstruction)


def test_context_codec_estimated_bits_agree_with_payload(context_codec):
    res = context_codec.compress_with_info(natural_image(128, 160), 7.0)
    assert abs(res.estimated_bits - res.payload_bits) <= 0.01 * res.payload_bits + 64


def test_context_changes_the_tables_of_the_second_pass(context_weights):
    """The same weights with the context nets zeroed code different (non-anchor) indices."""
    loaded = load_weights(context_weights)
    plain = load_weights(context_weights).model
    with torch.no_grad():
        for net in (plain.ctx_s, plain.ctx_m):
            net[-1].weight.zero_()
            net[-1].bias.zero_()
    y = plain.g_a(torch.from_numpy(natural_image(64, 64)).permute(2, 0, 1)[None].float() / 255) * 4
    active = LatentCodec(loaded.model, loaded.tables).encode(y)[0]
    zeroed = LatentCodec(plain, build_tables(plain)).encode(y)[0]
    assert active.latent != zeroed.latent


def test_added_context_model_starts_as_the_plain_hyperprior(tiny_codec):
    """with_context adds zero-initialised context nets: the same symbols and the same rate."""
    plain = tiny_codec.model
    ctx = with_context(plain).eval()
    x = torch.from_numpy(natural_image(128, 128)).permute(2, 0, 1)[None].float() / 255
    gain, _ = plain.gains(torch.tensor([6.0]))
    y = plain.g_a(x) * gain
    a, ya = LatentCodec(plain, tiny_codec.latents.tables).encode(y)
    b, yb = LatentCodec(ctx, build_tables(ctx)).encode(y)
    assert a.symbols_crc == b.symbols_crc
    assert a.estimated_bits == pytest.approx(b.estimated_bits, rel=1e-9)
    assert torch.equal(ya, yb)
    with pytest.raises(ValueError, match="already"):
        with_context(ctx)


def test_context_codec_identical_across_thread_counts(context_weights):
    (_, dec1), (_, dec2) = code_at_thread_counts(context_weights, natural_image(128, 192), 4.5)
    assert np.array_equal(dec1, dec2)


def test_corrupt_context_stream_is_rejected(context_codec):
    data = bytearray(context_codec.compress(natural_image(64, 64), 5.0))
    rejected = 0
    for pos in range(len(data) - 40, len(data), 3):
        bad = bytearray(data)
        bad[pos] ^= 0x10
        try:
            context_codec.decompress(bytes(bad))
        except DecodeError:
            rejected += 1
    assert rejected == len(range(len(data) - 40, len(data), 3))


def test_context_model_trains_end_to_end(context_weights):
    """The training forward pass gives gradients to the context networks."""
    model = load_weights(context_weights).model.train()
    res = model(torch.rand(2, 3, 64, 64), torch.tensor([2.0, 8.0]))
    (res.bits_latent.sum() + res.bits_hyper.sum()).backward()
    assert model.ctx_s[0].weight.grad.abs().sum() > 0
    assert model.ctx_m[0].weight.grad.abs().sum() > 0


def test_entropy_fit_lowers_the_rate_and_leaves_the_transforms_alone(tiny_weights):
    model = with_context(load_weights(tiny_weights).model)
    torch.manual_seed(0)
    latents = [model.g_a(torch.rand(1, 3, 128, 128))[0].detach() for _ in range(4)]
    frozen = {k: v.clone() for k, v in model.state_dict().items() if k.startswith(("g_a", "g_s", "log_"))}
    before = eval_bpp(model, latents, [3.0, 8.0])
    cfg = EntropyFitConfig(crop=8, batch=8, lr=1e-3, new_lr=1e-3, warmup_steps=1, amp=False)
    res = fit_entropy_model(model, latents, cfg, minutes=5, max_steps=60, progress=False)
    after = eval_bpp(model, latents, [3.0, 8.0])
    assert res.steps == 60
    assert sum(after) < 0.97 * sum(before)
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in frozen.items())
