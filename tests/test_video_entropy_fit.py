"""Context models for the P-frame coders: adding them, capturing the latents they code, fitting them."""

import numpy as np
import pytest
import torch

from conftest import make_clip, motion_pframes, natural_image
from tngvideo.latent.codec import LatentCodec
from tngvideo.latent.model import ModelConfig
from tngvideo.latent.weights import build_tables
from tngvideo.train.entropy_fit import EntropyFitConfig, eval_bpp, fit_entropy_model
from tngvideo.train.video_data import read_clips
from tngvideo.train.video_latents import pframe_latents
from tngvideo.video import EncoderOptions
from tngvideo.video.codec import VideoEncoder
from tngvideo.video.model import PFrameModel, VideoModelConfig, with_video_context

SMALL = ModelConfig(channels=8, latent_channels=12)


def _frames(n: int, h: int = 40, w: int = 56) -> list[np.ndarray]:
    base = natural_image(h, w + 4 * n, seed=3)
    return [np.ascontiguousarray(base[:, 4 * i: 4 * i + w]) for i in range(n)]


def test_added_video_context_codes_as_the_plain_coders():
    """Both coders (3-channel residual, 2-channel motion) gain zero-initialised context nets:
    the same symbols and the same estimated rate, and the original model is left as it was."""
    torch.manual_seed(0)
    plain = PFrameModel(VideoModelConfig(motion=SMALL, residual=SMALL)).eval()
    ctx = with_video_context(plain).eval()
    assert ctx.config.residual.context and ctx.config.motion.context
    assert not plain.config.residual.context and not hasattr(plain.residual, "ctx_s")
    for role, channels in (("residual", 3), ("motion", 2)):
        x = torch.rand(1, channels, 64, 128)
        a, b = getattr(plain, role), getattr(ctx, role)
        y = a.g_a(x) * a.gains(torch.tensor([5.0]))[0]
        sa, ya = LatentCodec(a, build_tables(a)).encode(y)
        sb, yb = LatentCodec(b, build_tables(b)).encode(y)
        assert sa.symbols_crc == sb.symbols_crc and torch.equal(ya, yb)
        assert sa.estimated_bits == pytest.approx(sb.estimated_bits, rel=1e-9)


@pytest.fixture(scope="module")
def motion_coders(tiny_weights):
    return motion_pframes(tiny_weights, mode_decision=False)


def test_captured_latents_are_the_ones_the_encoder_codes(motion_coders):
    """Coding each captured residual latent again gives exactly the encoder's residual bits."""
    image, pframes = motion_coders
    frames, gop = _frames(6), 4
    got = pframe_latents(image, pframes, [frames], [2.0, 8.0], gop=gop, progress=False)
    p_frames = [i for i in range(len(frames)) if i % gop]
    assert got["residual"].qualities == [2.0] * len(p_frames) + [8.0] * len(p_frames)
    assert len(got["motion"].latents) == len(got["residual"].latents)  # motion always coded here
    coder = pframes.residual.coder
    for k, q in enumerate((2.0, 8.0)):
        enc = VideoEncoder(image, pframes, width=56, height=40, quality=q, gop=gop, options=EncoderOptions(adaptive_intra=False))
        bits = [enc.encode(f).stats.bits.get("residual") for f in frames]
        for j, i in enumerate(p_frames):
            y = got["residual"].latents[k * len(p_frames) + j]
            assert y.shape == (coder.config.latent_channels, 64 // 16, 64 // 16)
            streams, _ = pframes.residual.encode(y[None] * coder.gains(torch.tensor([q]))[0])
            assert streams.payload_bits == bits[i]


def test_capture_stops_when_asked(motion_coders):
    image, pframes = motion_coders
    got = pframe_latents(image, pframes, [_frames(5)], [4.0], gop=8, progress=False, should_stop=lambda: True)
    assert got["residual"].latents == [] and got["motion"].latents == []


def test_fit_at_the_captured_qualities_lowers_their_rate():
    torch.manual_seed(1)
    coder = with_video_context(PFrameModel(VideoModelConfig(motion=SMALL, residual=SMALL))).residual
    latents = [coder.g_a(torch.rand(1, 3, 128, 128) * 0.2 + 0.4)[0].detach() for _ in range(4)]
    qualities = [2.0, 2.0, 9.0, 9.0]
    cfg = EntropyFitConfig(crop=8, batch=8, lr=1e-3, new_lr=1e-3, warmup_steps=1, amp=False)
    with pytest.raises(ValueError, match="one quality per latent"):
        fit_entropy_model(coder, latents, cfg, minutes=1, qualities=qualities[:3], progress=False)
    before = eval_bpp(coder, latents[:2], [2.0])[0] + eval_bpp(coder, latents[2:], [9.0])[0]
    fit_entropy_model(coder, latents, cfg, minutes=5, qualities=qualities, max_steps=60, progress=False)
    after = eval_bpp(coder, latents[:2], [2.0])[0] + eval_bpp(coder, latents[2:], [9.0])[0]
    assert after < 0.97 * before


def test_read_clips_takes_files_and_folders(tmp_path):
    written = make_clip(tmp_path / "a.mkv", frames=4)
    clips = read_clips([tmp_path / "a.mkv"], max_frames=3, max_side=720)
    assert len(clips) == 1 and len(clips[0]) == 3 and np.array_equal(clips[0][0], written[0])
    assert [len(c) for c in read_clips([tmp_path], max_frames=9, max_side=720)] == [4]


def test_pframe_coders_with_a_trained_channel_context_round_trip(tiny_codec, tmp_path):
    """Both coders with checkerboard and channel-wise context (nets made non-zero), saved and
    loaded: the decoder reproduces every P-frame of the encoder exactly, and the channel nets
    change what is coded."""
    from test_conditional import coded
    from tngvideo.video.codec import PFrameCoder, VideoDecoder
    from tngvideo.video.weights import load_video_weights, save_video_weights

    torch.manual_seed(0)
    small = ModelConfig(channels=16, latent_channels=24)
    model = with_video_context(PFrameModel(VideoModelConfig(motion=small, residual=small)), channel_slices=3).eval()
    assert model.config.residual.channel_slices == 3 and model.config.motion.channel_slices == 3
    save_video_weights(model, tmp_path / "zero.safetensors", name="zero")
    with torch.no_grad():
        for role in ("motion", "residual"):
            for net in (*getattr(model, role).chan_s, *getattr(model, role).chan_m):
                torch.nn.init.normal_(net[-1].weight, std=0.1)
    save_video_weights(model, tmp_path / "chan.safetensors", name="chan")
    loaded, zero = load_video_weights(tmp_path / "chan.safetensors"), load_video_weights(tmp_path / "zero.safetensors")
    pframes = PFrameCoder.for_model(loaded.model, loaded.tables)
    packets, recon = coded(tiny_codec, pframes)
    assert packets[1:] != coded(tiny_codec, PFrameCoder.for_model(zero.model, zero.tables))[0][1:]
    dec = VideoDecoder(tiny_codec, pframes, width=50, height=40)
    for packet, want in zip(packets, recon):
        assert np.array_equal(dec.decode(packet)[1], want)
