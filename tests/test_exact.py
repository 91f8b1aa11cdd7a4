"""Decoded pixels are a function of the bytes alone: the shipped models' files, encoded with one
thread in this process, decode to the encoder's reconstruction bit for bit in another process
running two threads (image and a 6-frame video); the fixed-point engine itself is exact and
bounded."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch

from conftest import natural_image
from tngvideo.nn.fixed import ACT_BITS, SLOPE_BITS, FixedNet, compile_fixed, fixed_warp
from tngvideo.video.warp import backward_warp

H, W = 112, 160


def _picture(t: int = 0) -> np.ndarray:
    """A natural-looking picture panning 3 pixels a frame."""
    return np.ascontiguousarray(natural_image(H, W + 40, seed=4)[:, 3 * t: 3 * t + W])


def _decode_elsewhere(tmp_path, code: str, threads: int = 2) -> np.ndarray:
    """Run `code` (which saves `out` to OUT) in a fresh interpreter with `threads` threads."""
    script = tmp_path / "decode.py"
    out = tmp_path / "out.npy"
    script.write_text("import numpy as np, torch\n" f"torch.set_num_threads({threads})\n"
                      + textwrap.dedent(code) + f"\nnp.save({str(out)!r}, out)\n")
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    subprocess.run([sys.executable, str(script)], check=True, env=env, cwd=tmp_path, timeout=600)
    return np.load(out)


@pytest.fixture
def one_thread():
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


def test_shipped_image_model_decodes_identically_with_other_threads_in_another_process(tmp_path, one_thread):
    from tngvideo.image.codec import ImageCodec

    codec = ImageCodec.from_name()
    results = [codec.compress_with_info(_picture(), q) for q in (2.0, 7.0)]
    for i, r in enumerate(results):
        (tmp_path / f"{i}.tng").write_bytes(r.data)
    out = _decode_elsewhere(tmp_path, """
        from tngvideo.image.codec import ImageCodec
        codec = ImageCodec.from_name()
        out = np.stack([codec.decompress(open(f"{i}.tng", "rb").read()) for i in range(2)])
    """)
    for got, r in zip(out, results):
        assert np.array_equal(got, r.reconstruction)


def test_shipped_video_model_decodes_identically_with_other_threads_in_another_process(tmp_path, one_thread):
    from tngvideo.bitstream.packet import FrameType
    from tngvideo.video.codec import VideoEncoder
    from tngvideo.video.registry import load_video_codecs

    codecs = load_video_codecs()
    enc = VideoEncoder(codecs.image, codecs.pframes, width=W, height=H, quality=2.5, gop=16)
    encoded = [enc.encode(_picture(t)) for t in range(6)]
    assert sum(e.stats.frame_type == FrameType.P and e.stats.motion_quality is not None for e in encoded) >= 3
    for i, e in enumerate(encoded):
        (tmp_path / f"{i}.pkt").write_bytes(e.packet)
    out = _decode_elsewhere(tmp_path, f"""
        from tngvideo.video.codec import VideoDecoder
        from tngvideo.video.registry import load_video_codecs
        codecs = load_video_codecs({codecs.name!r})
        dec = VideoDecoder(codecs.image, codecs.pframes, width={W}, height={H})
        out = np.stack([dec.decode(open(f"{{i}}.pkt", "rb").read())[1] for i in range(6)])
    """)
    for i, (got, e) in enumerate(zip(out, encoded)):
        assert np.array_equal(got, e.reconstruction), f"frame {i}: {(got != e.reconstruction).sum()} values differ"


def test_fixed_point_network_is_exact_and_close_to_float():
    """Its output is on the fixed grid, the same at any thread count and in any batch
    arrangement (each item alone or together), and within a few grid steps of float."""
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 16, 3, padding=1), torch.nn.LeakyReLU(),
                              torch.nn.ConvTranspose2d(16, 8, 4, stride=2, padding=1), torch.nn.ReLU(),
                              torch.nn.Conv2d(8, 2, 3, padding=1))
    fixed = FixedNet(net)
    x = torch.rand(2, 3, 24, 20)
    runs = []
    for threads in (1, 2):
        torch.set_num_threads(threads)
        runs.append(fixed(x))
        runs.append(torch.cat([fixed(x[:1]), fixed(x[1:])]))
    assert all(torch.equal(r, runs[0]) for r in runs)
    grid = runs[0] * 2 ** ACT_BITS
    assert torch.equal(grid, grid.round())
    assert (runs[0] - net(x).double()).abs().max() < 2 ** -(ACT_BITS - 6)


@pytest.mark.parametrize("slope", [0.0, 0.01, 0.1, 0.2, 0.37, 1.0])
def test_fixed_point_leaky_relu_is_the_floored_integer_product(slope):
    """x where x >= 0, else floor(x * s / 2**SLOPE_BITS) with s the slope in fixed point: checked
    against Python's integer arithmetic on integers of every magnitude the layers carry."""
    s = round(slope * (1 << SLOPE_BITS))
    g = torch.Generator().manual_seed(7)
    x = torch.cat([torch.arange(-300, 300), torch.randint(-2 ** 36, 2 ** 36, (2000,), generator=g)]).double()
    got = compile_fixed(torch.nn.LeakyReLU(slope))(x)
    want = [v if v >= 0 else (v * s) >> SLOPE_BITS for v in x.long().tolist()]  # >>: floor division
    assert got.long().tolist() == want


def test_fixed_point_leaky_relu_refuses_slopes_outside_0_1():
    for slope in (-0.1, 1.5):
        with pytest.raises(TypeError):
            compile_fixed(torch.nn.LeakyReLU(slope))


def test_fixed_point_network_stays_finite_and_exact_on_hostile_input():
    torch.manual_seed(1)
    net = torch.nn.Sequential(torch.nn.Conv2d(2, 8, 3, padding=1), torch.nn.ReLU(), torch.nn.Conv2d(8, 1, 1))
    x = torch.full((1, 2, 8, 8), 1e30)
    y = FixedNet(net)(x)
    assert torch.isfinite(y).all() and torch.equal(y, FixedNet(net)(x.clone()))


def test_fixed_warp_matches_bilinear_warping():
    """Bilinear with replicated borders, as backward_warp: the same up to the grid's rounding on
    whole-pixel flows, within a few grid steps on fractional ones."""
    torch.manual_seed(2)
    frame = torch.rand(1, 3, 20, 24).mul(255).round().div(255)
    whole = torch.randint(-30, 30, (1, 2, 20, 24)).double()
    assert (fixed_warp(frame, whole) - backward_warp(frame.double(), whole)).abs().max() <= 2 ** -(ACT_BITS + 1)
    frac = torch.randn(1, 2, 20, 24) * 5
    assert (fixed_warp(frame, frac) - backward_warp(frame.double(), frac.double())).abs().max() < 2 ** -(ACT_BITS - 2)


def test_files_of_the_float_formats_still_decode_as_their_encoder_reconstructed_them(tiny_weights):
    """Format 1 images and version 3 packets (float reconstruction) decode with the float path;
    new files are format 2 / version 4, and the two reconstructions differ (the decoder follows
    the file, it does not guess)."""
    from conftest import motion_pframes
    from tngvideo.image.codec import ImageCodec
    from tngvideo.image.weights import load_weights
    from tngvideo.video.codec import VideoDecoder, VideoEncoder
    from tngvideo.video import EncoderOptions

    codec = ImageCodec(load_weights(tiny_weights))
    img = natural_image(48, 72, seed=2)
    old, new = codec.compress_with_info(img, 4.0, exact=False), codec.compress_with_info(img, 4.0)
    assert (old.data[4], new.data[4]) == (1, 2)
    for r in (old, new):
        assert np.array_equal(codec.decompress(r.data), r.reconstruction)

    frames = [np.ascontiguousarray(natural_image(40, 80, seed=6)[:, 4 * i: 4 * i + 56]) for i in range(4)]
    recs = {}
    for exact in (False, True):
        image, pframes = motion_pframes(tiny_weights, mode_decision=False)
        pframes.exact = exact
        enc = VideoEncoder(image, pframes, width=56, height=40, quality=4.0, gop=8,
                           options=EncoderOptions(adaptive_intra=False))
        dec = VideoDecoder(image, pframes, width=56, height=40)
        recs[exact] = []
        for f in frames:
            out = enc.encode(f)
            assert out.packet[0] >> 4 == (4 if exact else 3)
            assert np.array_equal(dec.decode(out.packet)[1], out.reconstruction)
            recs[exact].append(out.reconstruction)
    assert any(not np.array_equal(a, b) for a, b in zip(recs[False], recs[True]))
