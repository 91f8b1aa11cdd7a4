"""Conditional coding: the prediction's features enter the residual coder's analysis, its
entropy model's means and its synthesis, and the previous P-frame's decoded flow does the same
for the motion coder (never the scales)."""

import numpy as np
import pytest
import torch

from conftest import natural_image
from tngvideo.latent.model import ModelConfig
from tngvideo.video import EncoderOptions
from tngvideo.video.codec import PFrameCoder, VideoDecoder, VideoEncoder
from tngvideo.video.model import PFrameModel, VideoModelConfig, with_conditional, with_motion_context
from tngvideo.video.weights import load_video_weights, save_video_weights

SMALL = ModelConfig(channels=16, latent_channels=24)


def frames(n: int = 4) -> list[np.ndarray]:
    scene = natural_image(40, 80, seed=2)
    return [np.ascontiguousarray(scene[:, 3 * i: 3 * i + 50]) for i in range(n)]  # 50x40: padded inside


def coded(image, pframes) -> tuple[list[bytes], list[np.ndarray]]:
    pframes.mode_decision = False  # motion in every P-frame: each one's context is the last one's flow
    enc = VideoEncoder(image, pframes, width=50, height=40, quality=4.0, gop=8,
                       options=EncoderOptions(adaptive_intra=False))
    outs = [enc.encode(f) for f in frames()]
    return [o.packet for o in outs], [o.reconstruction for o in outs]


CONVERSIONS = {"residual": (with_conditional, "condition"), "motion": (with_motion_context, "motion_condition")}


@pytest.mark.parametrize("which", [("residual",), ("motion",), ("residual", "motion")])
def test_a_new_context_codes_exactly_as_before_and_a_trained_one_round_trips(tiny_codec, tmp_path, which):
    """Converted, a model writes the same bytes as the model it came from (the contexts' heads
    start at zero); once the heads are non-zero it codes other frames, the decoder, loaded from
    saved weights, reproduces the encoder's frames exactly (P-frames after P-frames: the motion
    context is the previous decoded flow), and a decoder without the contexts does not."""
    torch.manual_seed(0)
    model = PFrameModel(VideoModelConfig(motion=SMALL, residual=SMALL)).eval()
    save_video_weights(model, tmp_path / "plain.safetensors", name="plain")
    plain = load_video_weights(tmp_path / "plain.safetensors")
    cond = plain.model
    for role in which:
        cond = CONVERSIONS[role][0](cond).eval()
    save_video_weights(cond, tmp_path / "new.safetensors", name="new")
    new = load_video_weights(tmp_path / "new.safetensors")
    assert new.model.config.conditional == ("residual" in which)
    assert new.model.config.motion_context == ("motion" in which)
    before, recon_before = coded(tiny_codec, PFrameCoder.for_model(plain.model, plain.tables))
    after, _ = coded(tiny_codec, PFrameCoder.for_model(new.model, new.tables))
    assert after == before

    with torch.no_grad():
        for role in which:
            for head in getattr(cond, CONVERSIONS[role][1]).heads.values():
                torch.nn.init.normal_(head.weight, std=0.05)
    save_video_weights(cond, tmp_path / "trained.safetensors", name="trained")
    trained = load_video_weights(tmp_path / "trained.safetensors")
    pframes = PFrameCoder.for_model(trained.model, trained.tables)
    packets, recon = coded(tiny_codec, pframes)
    assert any(not np.array_equal(a, b) for a, b in zip(recon[1:], recon_before[1:]))
    dec = VideoDecoder(tiny_codec, pframes, width=50, height=40)
    without = VideoDecoder(tiny_codec, PFrameCoder.for_model(plain.model, plain.tables), width=50, height=40)
    mismatched = False
    for packet, want in zip(packets, recon):
        assert np.array_equal(dec.decode(packet)[1], want)
        mismatched |= not np.array_equal(without.decode(packet)[1], want)  # same symbols, other pixels
    assert mismatched


def test_the_condition_never_changes_the_scales_and_its_heads_learn(tiny_codec):
    """Scales come from the hyperprior alone (exact integers in the codec): a condition moves the
    means, not the log-scales; and a training step's gradient reaches all three heads."""
    torch.manual_seed(1)
    model = with_conditional(PFrameModel(VideoModelConfig(motion=SMALL, residual=SMALL)))
    with torch.no_grad():
        for head in model.condition.heads.values():
            torch.nn.init.normal_(head.weight, std=0.05)
    y = torch.randn(1, SMALL.latent_channels, 4, 4)
    z_hat = torch.round(model.residual.h_a(y))
    offset = model.condition(torch.rand(1, 3, 64, 64)).mean
    m0, s0 = model.residual.latent_params(y, z_hat, torch.round)
    m1, s1 = model.residual.latent_params(y, z_hat, torch.round, mean_offset=offset)
    assert torch.equal(s0, s1) and not torch.equal(m0, m1)

    model.train()
    x, ref = torch.rand(2, 3, 64, 64), torch.rand(2, 3, 64, 64)
    res = model(x, ref, torch.tensor([2.0, 6.0]))
    loss = (res.lmbda * 255.0**2 * ((res.x_hat - x) ** 2).mean(dim=(1, 2, 3)) + res.bits_residual).mean()
    loss.backward()
    for name, head in model.condition.heads.items():
        assert head.weight.grad is not None and head.weight.grad.abs().sum() > 0, name
