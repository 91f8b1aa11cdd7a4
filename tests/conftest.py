"""Shared fixtures: a small randomly initialised model (fast) and the shipped model."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tngvideo.image.codec import ImageCodec
from tngvideo.image.model import TNGImageModel
from tngvideo.image.weights import load_weights, save_weights
from tngvideo.latent.model import ModelConfig
from tngvideo.latent.weights import build_tables


@pytest.fixture(scope="session")
def tiny_weights(tmp_path_factory):
    torch.manual_seed(0)
    model = TNGImageModel(ModelConfig(channels=16, latent_channels=24))
    path = tmp_path_factory.mktemp("weights") / "tiny.safetensors"
    save_weights(model, path, name="tiny", tables=build_tables(model))
    return path


@pytest.fixture(scope="session")
def tiny_codec(tiny_weights):
    return ImageCodec(load_weights(tiny_weights))


@pytest.fixture(scope="session")
def shipped_codec():
    return ImageCodec.from_name()


def natural_image(h: int = 96, w: int = 128, seed: int = 0) -> np.ndarray:
    """A smooth synthetic picture with edges and texture (no external data)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    img = np.stack([
        128 + 80 * np.sin(xx / 9.0) * np.cos(yy / 13.0),
        100 + 0.8 * xx - 0.5 * yy,
        90 + 60 * ((xx // 24 + yy // 24) % 2),
    ], axis=-1)
    img += rng.normal(0, 6, img.shape)
    return np.clip(img, 0, 255).astype(np.uint8)


def make_clip(path, *, frames: int = 6, size: tuple[int, int] = (40, 56), pts: list[int] | None = None,
              time_base=None, audio: bool = False, seed: int = 0, rotation: int = 0,
              colour: dict | None = None, chapters: list[dict] | None = None):
    """A small H.264 (.mp4) or FFV1 (.mkv) clip made with PyAV: moving gradient + noise, optional AAC
    tone, optional display rotation, colour description (codec-context enums) and chapters.

    Returns the list of RGB frames written (lossless for .mkv)."""
    from fractions import Fraction

    import av

    time_base = time_base or Fraction(1, 25)
    pts = pts if pts is not None else list(range(frames))
    h, w = size
    out_frames = []
    fmt = "matroska" if str(path).endswith(".mkv") else "mp4"
    with av.open(str(path), "w", format=fmt) as c:
        lossless = fmt == "matroska"
        v = c.add_stream("ffv1" if lossless else "libx264", rate=Fraction(25))
        v.width, v.height = w, h
        v.pix_fmt = "bgr0" if lossless else "yuv420p"
        v.time_base = time_base
        v.codec_context.time_base = time_base
        for key, value in (colour or {}).items():
            setattr(v.codec_context, key, value)
        if rotation:
            v.set_display_rotation(rotation)
        if chapters:
            c.set_chapters(chapters)
        a = None
        if audio:
            a = c.add_stream("aac", rate=8000)
            a.layout = "mono"
        for i, p in enumerate(pts):
            rgb = natural_image(h, w, seed=seed + i)
            rgb = np.roll(rgb, 2 * i, axis=1)
            out_frames.append(rgb)
            f = av.VideoFrame.from_ndarray(rgb, format="rgb24")
            f.pts = p
            f.time_base = time_base
            for pk in v.encode(f):
                c.mux(pk)
        for pk in v.encode(None):
            c.mux(pk)
        if a is not None:
            t = np.arange(8000 * len(pts) // 25) / 8000.0
            samples = (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)[None]
            for start in range(0, samples.shape[1], 1024):
                af = av.AudioFrame.from_ndarray(samples[:, start:start + 1024], format="fltp", layout="mono")
                af.sample_rate = 8000
                af.pts = start
                for pk in a.encode(af):
                    c.mux(pk)
            for pk in a.encode(None):
                c.mux(pk)
    return out_frames


def code_at_thread_counts(weights, img: np.ndarray, quality: float) -> list[tuple[bytes, np.ndarray]]:
    """(bytes of img, decode of the 1-thread bytes) with 1 thread and then with 2 threads, each
    from a freshly loaded codec."""
    out = []
    old = torch.get_num_threads()
    try:
        first = None
        for threads in (1, 2):
            torch.set_num_threads(threads)
            codec = ImageCodec(load_weights(weights))
            data = codec.compress(img, quality)
            first = first or data
            out.append((data, codec.decompress(first)))
    finally:
        torch.set_num_threads(old)
    return out


def motion_pframes(tiny_weights, *, mode_decision: bool):
    """The tiny image codec and a P-frame coder with a small untrained motion model whose flow
    network produces some motion."""
    from tngvideo.image.codec import ImageCodec
    from tngvideo.image.weights import load_weights
    from tngvideo.latent.codec import LatentCodec
    from tngvideo.latent.model import HyperpriorAutoencoder, ModelConfig
    from tngvideo.latent.weights import build_tables
    from tngvideo.video.codec import PFrameCoder
    from tngvideo.video.model import FlowNet, MotionCompensation

    torch.manual_seed(0)
    image = ImageCodec(load_weights(tiny_weights))
    motion = HyperpriorAutoencoder(ModelConfig(channels=8, latent_channels=12), in_channels=2, out_channels=2).eval()
    flow_net = FlowNet(levels=2, width=8).eval()
    torch.nn.init.normal_(flow_net.nets[0][-1].weight, std=0.05)  # make it produce some motion
    pframes = PFrameCoder(residual=image.latents, motion=LatentCodec(motion, build_tables(motion)),
                          flow_net=flow_net, mc=MotionCompensation(width=8).eval(), mode_decision=mode_decision)
    return image, pframes
