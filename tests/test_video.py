import struct
import zlib

import av
import numpy as np
import pytest
import torch

from conftest import make_clip, motion_pframes, natural_image
from tngvideo.bitstream import BitstreamError
from tngvideo.bitstream.container import SequenceHeader, TngvReader, write_tngv
from tngvideo.bitstream.packet import CodedUnit, FramePacket, FrameType, pack_packet, unpack_packet
from tngvideo.errors import DecodeError
from tngvideo.media import read_video
from tngvideo.video import DEFAULT_PRESET, PRESET_NAMES, EncoderOptions
from tngvideo.video.codec import (PRESETS, PFrameCoder, Preset, VideoDecoder, VideoEncoder, frame_tensor, is_coded,
                                  on_grid)
from tngvideo.video.model import FlowNet, MotionCompensation, PFrameModel, VideoModelConfig, local_correlation, with_loop_filter
from tngvideo.video.registry import VideoCodecs
from tngvideo.video.warp import backward_warp
from tngvideo.videofile import decode_frames, encode_file


@pytest.fixture(scope="module")
def tiny_video(tiny_codec):
    return VideoCodecs(name="tiny-video", image=tiny_codec, pframes=PFrameCoder(residual=tiny_codec.latents))


def test_packet_round_trip_and_rejection():
    p = FramePacket(FrameType.P, 3.25, 17, (CodedUnit(b"", b"", 0), CodedUnit(b"abc", b"defgh", 99)))
    data = pack_packet(p)
    assert unpack_packet(data) == p
    for n in range(len(data)):
        with pytest.raises(BitstreamError):
            unpack_packet(data[:n])
    for k in range(len(data)):
        bad = bytearray(data)
        bad[k] ^= 4
        with pytest.raises(BitstreamError):
            unpack_packet(bytes(bad))
    # varint header: this P-frame's header and checksum take 22 bytes (fixed-width version 1: 39)
    assert p.header_bytes == len(data) - 8 == 22


def test_motion_quality_travels_in_p_frame_packets_and_version_2_is_still_read():
    units = (CodedUnit(b"m", b"mm", 5), CodedUnit(b"abc", b"defgh", 99))
    p = FramePacket(FrameType.P, 3.25, 17, units, motion_quality=5.25)
    assert unpack_packet(pack_packet(p)) == p and unpack_packet(pack_packet(p)).motion_q == 5.25
    assert unpack_packet(pack_packet(FramePacket(FrameType.P, 3.25, 17, units))).motion_q == 3.25
    with pytest.raises(ValueError, match="motion quality"):
        pack_packet(FramePacket(FrameType.I, 3.25, 0, units[:1], motion_quality=5.0))
    # version 2: the same header without the motion quality; the motion is at the frame's quality
    head = bytes([2 << 4 | 1, 0xC5, 0x02, 17])  # P, quality 325, index 17
    head += b"".join(bytes([len(u.hyper), len(u.latent)]) + struct.pack("<I", u.symbols_crc) for u in units)
    body = head + b"".join(u.hyper + u.latent for u in units)
    v2 = unpack_packet(body + struct.pack("<I", zlib.crc32(body)))
    assert v2 == FramePacket(FrameType.P, 3.25, 17, units, version=2) and v2.motion_q == 3.25 and not v2.exact


def test_version_1_packets_are_still_read():
    units = (CodedUnit(b"", b"", 0), CodedUnit(b"abc", b"defgh", 99))
    head = struct.pack("<2sBBHIB", b"TV", 1, 1, 325, 70000, 2)
    head += b"".join(struct.pack("<III", len(u.hyper), len(u.latent), u.symbols_crc) for u in units)
    body = head + b"".join(u.hyper + u.latent for u in units)
    v1 = body + struct.pack("<I", zlib.crc32(body))
    assert unpack_packet(v1) == FramePacket(FrameType.P, 3.25, 70000, units, version=1)
    with pytest.raises(BitstreamError):
        unpack_packet(v1[:-1] + bytes([v1[-1] ^ 1]))


def test_container_keeps_packets_and_variable_timestamps(tmp_path):
    pts = [0, 3600, 7201, 30000, 30001]
    header = SequenceHeader(width=8, height=8, time_base=(1, 90000), frame_rate=(25, 1), gop=4,
                            frame_count=5, iframes=[0, 4], iframe_pts=[0, 30001], models={"video": "x"})
    packets = [(bytes([i]) * (i + 1), t, 1) for i, t in enumerate(pts)]
    write_tngv(tmp_path / "a.tngv", header, packets)
    with TngvReader(tmp_path / "a.tngv") as r:
        assert r.header == header
        got = list(r.packets())
    assert [g.pts for g in got] == pts and [g.data for g in got] == [p[0] for p in packets]


def test_container_rejects_foreign_files(tmp_path):
    (tmp_path / "x.tngv").write_bytes(b"not a container at all" * 10)
    with pytest.raises(BitstreamError):
        TngvReader(tmp_path / "x.tngv")
    make_clip(tmp_path / "plain.mp4", frames=2)
    with pytest.raises(BitstreamError):
        TngvReader(tmp_path / "plain.mp4")


def test_warp_with_zero_and_integer_flow():
    x = torch.rand(1, 3, 12, 16)
    assert torch.allclose(backward_warp(x, torch.zeros(1, 2, 12, 16)), x, atol=1e-5)
    flow = torch.zeros(1, 2, 12, 16)
    flow[:, 0] = 2.0  # sample two pixels to the right
    assert torch.allclose(backward_warp(x, flow)[..., :-2], x[..., 2:], atol=1e-5)


def test_local_correlation_peaks_at_the_true_shift():
    a = torch.randn(1, 8, 20, 20)
    b = torch.roll(a, shifts=(1, -2), dims=(2, 3))  # b(p + (dy=1, dx=-2)) = a(p)
    corr = local_correlation(a, b, 3)
    k = corr[0, :, 5:15, 5:15].mean((1, 2)).argmax().item()
    assert (k // 7 - 3, k % 7 - 3) == (1, -2)


def test_motion_path_shapes_and_zero_flow_compensation():
    x, ref = torch.rand(1, 3, 64, 64), torch.rand(1, 3, 64, 64)
    flow = FlowNet()(x, ref)
    assert flow.shape == (1, 2, 64, 64) and torch.isfinite(flow).all()
    zero = torch.zeros_like(flow)
    assert torch.allclose(MotionCompensation()(ref, zero), ref, atol=1e-5)
    res = PFrameModel()(x, ref, torch.tensor([3.0]))
    assert res.x_hat.shape == x.shape and res.bits_residual.item() > 0


def test_closed_loop_decoder_equals_encoder(tiny_video):
    frames = [np.roll(make_frame(i), 3 * i, axis=1) for i in range(5)]
    enc = VideoEncoder(tiny_video.image, tiny_video.pframes, width=50, height=30, quality=4.0, gop=3,
                       options=EncoderOptions(adaptive_intra=False))  # P-frame mechanics: no intra fallback
    dec = VideoDecoder(tiny_video.image, tiny_video.pframes, width=50, height=30)
    types = []
    for f in frames:
        out = enc.encode(f)
        p, rgb = dec.decode(out.packet)
        types.append(p.frame_type)
        assert np.array_equal(rgb, out.reconstruction)
        assert abs(out.stats.estimated_bits - sum(out.stats.bits.values())) <= 0.01 * sum(out.stats.bits.values()) + 256
    assert types == [FrameType.I, FrameType.P, FrameType.P, FrameType.I, FrameType.P]


def make_frame(seed: int) -> np.ndarray:
    from conftest import natural_image

    return natural_image(30, 50, seed=seed)


def decoded_packets(enc: VideoEncoder, dec: VideoDecoder, n: int) -> list[FramePacket]:
    """Encode make_frame(0..n-1), decode each packet, check the decoder's output equals the
    encoder's reconstruction, and return the decoded packet headers."""
    packets = []
    for i in range(n):
        out = enc.encode(make_frame(i))
        p, rgb = dec.decode(out.packet)
        assert np.array_equal(rgb, out.reconstruction)
        packets.append(p)
    return packets


def test_i_frames_follow_the_p_frame_coders_lambda_across_quality_scales(tiny_weights, tiny_video, tmp_path):
    """An image model with another lambda table (here twice the levels) codes the I-frames at the
    quality whose lambda is the P-frame coder's: same bytes' worth, and still bit-exact."""
    from tngvideo.image.codec import ImageCodec
    from tngvideo.image.weights import load_weights, save_weights
    from tngvideo.latent.model import with_lambdas
    from tngvideo.latent.weights import build_tables

    base = load_weights(tiny_weights).model
    lams = base.config.lambdas
    denser = tuple(sorted(lams + tuple((a * b) ** 0.5 for a, b in zip(lams, lams[1:]))))
    m = with_lambdas(base, denser)
    save_weights(m, tmp_path / "dense.safetensors", name="tiny", tables=build_tables(m))
    dense = ImageCodec(load_weights(tmp_path / "dense.safetensors"))
    frames = [make_frame(i) for i in range(3)]
    for q in (1.0, 2.5, 4.0):
        enc = VideoEncoder(dense, tiny_video.pframes, width=50, height=30, quality=q, gop=8)
        same = VideoEncoder(tiny_video.image, tiny_video.pframes, width=50, height=30, quality=q, gop=8)
        assert tiny_video.pframes.intra_quality(dense, enc.frame_quality(intra=True)) == pytest.approx(2 * q - 1, abs=1e-3)
        dec = VideoDecoder(dense, tiny_video.pframes, width=50, height=30)
        for i, f in enumerate(frames):
            out = enc.encode(f)
            assert np.array_equal(dec.decode(out.packet)[1], out.reconstruction)
            if i == 0:
                ref = same.encode(f)
                assert abs(out.stats.packet_bytes - ref.stats.packet_bytes) <= 0.02 * ref.stats.packet_bytes + 4


def test_p_frame_without_reference_is_rejected(tiny_video):
    enc = VideoEncoder(tiny_video.image, tiny_video.pframes, width=50, height=30, quality=4.0, gop=8,
                       options=EncoderOptions(adaptive_intra=False))
    enc.encode(make_frame(0))
    p_packet = enc.encode(make_frame(1)).packet
    dec = VideoDecoder(tiny_video.image, tiny_video.pframes, width=50, height=30)
    with pytest.raises(DecodeError, match="reference"):
        dec.decode(p_packet)


def test_file_round_trip_is_frame_accurate_with_timestamps_and_seeking(tmp_path, tiny_video):
    pts = [0, 1, 2, 4, 7, 8, 9]  # variable frame rate
    make_clip(tmp_path / "in.mkv", pts=pts, size=(30, 50))
    s = encode_file(tmp_path / "in.mkv", tmp_path / "o.tngv", quality=3.0, gop=3, codecs=tiny_video,
                    options=EncoderOptions(adaptive_intra=False))
    assert s.frames == len(pts)
    header, it = decode_frames(tmp_path / "o.tngv", codecs=tiny_video)
    full = list(it)
    src = list(read_video(tmp_path / "in.mkv"))
    assert [f.pts for f in full] == [f.pts for f in src]
    assert header.iframes == [0, 3, 6]
    _, it = decode_frames(tmp_path / "o.tngv", start=4, frames=2, codecs=tiny_video)
    part = list(it)
    assert [f.pts for f in part] == [f.pts for f in full[4:6]]
    assert all(np.array_equal(a.rgb, b.rgb) for a, b in zip(part, full[4:6]))


def test_audio_is_copied_packet_for_packet(tmp_path, tiny_video):
    make_clip(tmp_path / "in.mp4", frames=10, size=(32, 48), audio=True)
    encode_file(tmp_path / "in.mp4", tmp_path / "o.tngv", quality=2.0, gop=4, codecs=tiny_video)

    def audio_packets(path):
        with av.open(str(path)) as c:
            return [bytes(p) for p in c.demux(c.streams.audio[0]) if p.size]

    src = audio_packets(tmp_path / "in.mp4")
    assert src and audio_packets(tmp_path / "o.tngv") == src


def test_decoding_with_other_models_is_refused(tmp_path, tiny_video):
    make_clip(tmp_path / "in.mkv", frames=2, size=(16, 16))
    encode_file(tmp_path / "in.mkv", tmp_path / "o.tngv", quality=3.0, codecs=tiny_video)
    other = VideoCodecs(name="other", image=tiny_video.image, pframes=tiny_video.pframes)
    with pytest.raises(DecodeError, match="models"):
        decode_frames(tmp_path / "o.tngv", codecs=other)


def test_odd_sizes_and_image_sequences_round_trip(tmp_path, tiny_video):
    from PIL import Image

    from conftest import natural_image

    seq = tmp_path / "seq"
    seq.mkdir()
    frames = [natural_image(31, 47, seed=i) for i in range(4)]
    for i, f in enumerate(frames):
        Image.fromarray(f).save(seq / f"shot_{i + 10:03d}.png")
    s = encode_file(seq, tmp_path / "o.tngv", quality=5.0, gop=2, codecs=tiny_video)
    assert s.frames == 4
    _, it = decode_frames(tmp_path / "o.tngv", codecs=tiny_video)
    out = list(it)
    assert len(out) == 4 and all(f.rgb.shape == (31, 47, 3) for f in out)


def test_motion_path_closed_loop(tiny_weights):
    """P-frames with coded motion (an untrained motion model) still decode bit-exactly."""
    image, pframes = motion_pframes(tiny_weights, mode_decision=False)
    enc = VideoEncoder(image, pframes, width=50, height=30, quality=6.0, gop=4, options=EncoderOptions(adaptive_intra=False))
    dec = VideoDecoder(image, pframes, width=50, height=30)
    for i in range(3):
        out = enc.encode(make_frame(i))
        p, rgb = dec.decode(out.packet)
        assert np.array_equal(rgb, out.reconstruction)
        if i:
            assert not p.units[0].empty and out.stats.bits["motion"] > 0


def test_loop_filter_starts_as_identity_and_decodes_bit_exactly(tiny_codec, tmp_path):
    """A model given a loop filter codes exactly as before; once the filter is trained (here: made
    non-zero) it changes the frames, the encoder and the decoder both apply it (bit-exact round
    trip through saved weights), and a decoder without it does not reproduce them."""
    from tngvideo.latent.model import ModelConfig
    from tngvideo.video.weights import load_video_weights, save_video_weights

    torch.manual_seed(0)
    small = ModelConfig(channels=16, latent_channels=24)
    model = PFrameModel(VideoModelConfig(motion=small, residual=small)).eval()
    filtered = with_loop_filter(model).eval()
    x, ref = torch.rand(1, 3, 64, 64), torch.rand(1, 3, 64, 64)
    q = torch.tensor([4.0])
    with torch.no_grad():
        assert torch.equal(filtered(x, ref, q).x_hat, model(x, ref, q).x_hat)
        torch.nn.init.normal_(filtered.filter.tail[-1].weight, std=0.01)
    save_video_weights(filtered, tmp_path / "f.safetensors", name="filtered")
    loaded = load_video_weights(tmp_path / "f.safetensors")
    assert loaded.model.config.loop_filter
    pframes = PFrameCoder.for_model(loaded.model, loaded.tables)
    enc = VideoEncoder(tiny_codec, pframes, width=50, height=30, quality=4.0, gop=8, options=EncoderOptions(adaptive_intra=False))
    dec = VideoDecoder(tiny_codec, pframes, width=50, height=30)
    plain = VideoDecoder(tiny_codec, PFrameCoder(residual=pframes.residual, motion=pframes.motion,
                                                 flow_net=pframes.flow_net, mc=pframes.mc), width=50, height=30)
    differs = False
    for i in range(3):
        out = enc.encode(make_frame(i))
        assert np.array_equal(dec.decode(out.packet)[1], out.reconstruction)
        differs |= not np.array_equal(plain.decode(out.packet)[1], out.reconstruction)
    assert differs


@pytest.mark.parametrize("quality", [1.0, 8.0])
def test_mode_decision_keeps_the_cheaper_mode_and_decodes(tiny_weights, quality):
    """With mode decision the encoder codes each P-frame with and without motion and keeps the
    lower rate-distortion cost; the decoder follows whichever it chose."""
    image, pframes = motion_pframes(tiny_weights, mode_decision=True)
    forced = PFrameCoder(residual=pframes.residual, motion=pframes.motion, flow_net=pframes.flow_net,
                         mc=pframes.mc, mode_decision=False)
    plain = PFrameCoder(residual=pframes.residual)
    x = frame_tensor(make_frame(1), image.device)
    ref = frame_tensor(make_frame(0), image.device)

    def cost(coder, offsets=(0.0,)):
        f = coder.encode(x, ref, quality, motion_offsets=offsets)
        return pframes.rd_cost(x, f.x_hat, f.motion.payload_bits + f.residual.payload_bits, quality), f

    chosen, f = cost(pframes)
    assert chosen == min(cost(forced)[0], cost(plain)[0])
    assert torch.equal(on_grid(pframes.decode(f.motion, f.residual, ref, quality)), on_grid(f.x_hat))
    # several motion qualities: the cheapest of them is kept, and decodes at the quality it says
    offsets = (0.0, -3.0, 2.5)
    chosen, f = cost(forced, offsets)
    singles = [cost(forced, (d,))[0] for d in offsets]
    assert chosen == min(singles)
    assert f.motion_quality == forced.motion_qualities(quality, offsets)[singles.index(chosen)]
    decoded = pframes.decode(f.motion, f.residual, ref, quality, f.motion_quality)
    assert torch.equal(on_grid(decoded), on_grid(f.x_hat))


def test_motion_qualities_stay_in_range_on_the_packet_grid(tiny_weights):
    _, pframes = motion_pframes(tiny_weights, mode_decision=True)
    lo, hi = pframes.quality_range
    assert pframes.motion_qualities(hi - 0.5, (0.0, 2.0, 3.0)) == [hi - 0.5, hi]
    assert pframes.motion_qualities(lo, (0.0, -1.0, 0.123)) == [lo, round((lo + 0.123) * 100) / 100]


def test_sequences_with_other_motion_qualities_decode_and_bad_ones_are_refused(tiny_weights):
    """An encoder that tries several motion qualities writes the one it kept into each packet;
    the decoder follows it, and refuses a motion quality outside the model's range."""
    image, pframes = motion_pframes(tiny_weights, mode_decision=False)
    enc = VideoEncoder(image, pframes, width=50, height=30, quality=4.0, gop=8,
                       options=EncoderOptions(preset=Preset(motion_offsets=(3.0,)), adaptive_intra=False))
    dec = VideoDecoder(image, pframes, width=50, height=30)
    packets = decoded_packets(enc, dec, 3)
    assert [p.motion_q for p in packets[1:]] == [7.0, 7.0]
    bad = FramePacket(FrameType.P, 4.0, 3, packets[2].units, motion_quality=pframes.quality_range[1] + 1)
    with pytest.raises(DecodeError, match="motion quality"):
        dec.decode(pack_packet(bad))


def _record_modes(pframes, monkeypatch) -> list[dict]:
    """Each P-frame's encode call: the modes it was asked to try, and the mode it kept."""
    calls, encode = [], pframes.encode

    def spy(*args, **kw):
        f = encode(*args, **kw)
        calls.append({"offsets": tuple(kw.get("motion_offsets", ())), "zero": kw.get("zero_motion"),
                      "kept": f.motion_quality if is_coded(f.motion) else None})
        return f
    monkeypatch.setattr(pframes, "encode", spy)
    return calls


def test_preset_probes_every_mode_periodically_and_keeps_the_winner_between(tiny_weights, monkeypatch):
    """Every probe_period-th P-frame after an I-frame tries all the preset's modes; the frames
    between code only the mode the last probe kept (no motion included), and all decode exactly."""
    image, pframes = motion_pframes(tiny_weights, mode_decision=True)
    calls = _record_modes(pframes, monkeypatch)
    preset = Preset(motion_offsets=(0.0, 3.0), probe_period=3)
    enc = VideoEncoder(image, pframes, width=50, height=30, quality=4.0, gop=5,
                       options=EncoderOptions(preset=preset, adaptive_intra=False))
    dec = VideoDecoder(image, pframes, width=50, height=30)
    for i in range(9):
        out = enc.encode(make_frame(i))
        assert np.array_equal(dec.decode(out.packet)[1], out.reconstruction)
    # frames 1-4 and 6-8 are P-frames; the probes are the 1st and 4th after each I-frame
    probes = [0, 3, 4]
    assert len(calls) == 7
    for k, c in enumerate(calls):
        if k in probes:
            assert c["offsets"] == preset.motion_offsets and c["zero"] is None
            winner = c["kept"]
        elif winner is None:
            assert c["offsets"] == () and c["kept"] is None
        else:
            assert c["zero"] is False and pframes.motion_qualities(4.0, c["offsets"]) == [winner]
            assert c["kept"] == winner


def test_slow_preset_tries_every_mode_on_every_frame_and_presets_are_checked(tiny_weights, monkeypatch):
    image, pframes = motion_pframes(tiny_weights, mode_decision=True)
    calls = _record_modes(pframes, monkeypatch)
    enc = VideoEncoder(image, pframes, width=50, height=30, quality=2.0, gop=8,
                       options=EncoderOptions(preset="slow", adaptive_intra=False))
    for i in range(4):
        enc.encode(make_frame(i))
    assert [c["offsets"] for c in calls] == [PRESETS["slow"].motion_offsets] * 3
    assert tuple(PRESETS) == PRESET_NAMES and DEFAULT_PRESET in PRESETS
    with pytest.raises(ValueError, match="unknown preset"):
        EncoderOptions(preset="turbo")
    for bad in ({"probe_period": 0}, {"motion_offsets": ()}):
        with pytest.raises(ValueError):
            Preset(**bad)


def test_shipped_motion_model_codes_a_panning_shot_cheaper_than_intra():
    """The default (shipped) P-frame model: a camera pan costs fewer bits as P-frames than the
    intra frame, with motion actually coded, and decodes bit-exactly."""
    from conftest import natural_image
    from tngvideo.video.registry import default_video_model, load_video_codecs

    codecs = load_video_codecs()
    assert codecs.name == default_video_model() and codecs.pframes.motion is not None
    scene = natural_image(112, 200, seed=3)
    frames = [np.ascontiguousarray(scene[:, 3 * i : 3 * i + 160]) for i in range(4)]
    enc = VideoEncoder(codecs.image, codecs.pframes, width=160, height=112, quality=4.0, gop=16)
    dec = VideoDecoder(codecs.image, codecs.pframes, width=160, height=112)
    sizes, motion_bits = [], []
    for f in frames:
        out = enc.encode(f)
        _, rgb = dec.decode(out.packet)
        assert np.array_equal(rgb, out.reconstruction)
        sizes.append(out.stats.packet_bytes)
        motion_bits.append(out.stats.bits.get("motion", 0))
    assert max(sizes[1:]) < sizes[0]
    assert any(b > 0 for b in motion_bits[1:])


def test_the_newest_video_model_is_the_highest_version_number():
    from tngvideo.video.registry import _version_key

    names = ["tng-video-10", "tng-video-2", "tng-video-0", "tng-video-9"]
    assert sorted(names, key=_version_key) == ["tng-video-0", "tng-video-2", "tng-video-9", "tng-video-10"]


def test_latent_search_lowers_the_sequence_rd_cost_and_decodes_with_the_plain_decoder():
    """Encoder-side search of I-frame latents and P-frame motion: the same decoder reads the frames exactly,
    and the sequence costs less in the codec's own rate-distortion terms."""
    from conftest import natural_image
    from tngvideo.video.registry import load_video_codecs

    codecs = load_video_codecs()
    scene = natural_image(72, 130, seed=5)
    frames = [np.ascontiguousarray(scene[:, 2 * i : 2 * i + 98]) for i in range(3)]  # odd width
    quality = 3.0
    lmbda = codecs.pframes.residual.coder.lambda_at(quality)

    def sequence_cost(search_steps):
        enc = VideoEncoder(codecs.image, codecs.pframes, width=98, height=72, quality=quality, gop=16,
                           options=EncoderOptions(search_steps=search_steps))
        dec = VideoDecoder(codecs.image, codecs.pframes, width=98, height=72)
        cost = 0.0
        for f in frames:
            out = enc.encode(f)
            _, rgb = dec.decode(out.packet)
            assert np.array_equal(rgb, out.reconstruction)
            mse = np.mean((rgb.astype(np.float64) - f) ** 2)
            cost += lmbda * mse * f[..., 0].size + 8 * out.stats.packet_bytes
        return cost

    assert sequence_cost(16) < 0.995 * sequence_cost(0)  # measured: -1.4% (8 steps: -0.5%)
    for bad in (-2, 1.5, True):
        with pytest.raises(ValueError, match="search"):
            EncoderOptions(search_steps=bad)


def test_motion_search_finds_a_cheaper_p_frame_that_the_plain_decoder_reads():
    """The motion search recodes a P-frame's motion so that the frame costs less in the model's
    rate-distortion terms (and on real bytes); the decoder reads the result exactly."""
    from tngvideo.video.motion_search import search_motion
    from tngvideo.video.registry import load_video_codecs

    pf = load_video_codecs().pframes
    scene = natural_image(72, 140, seed=9)
    ref = frame_tensor(np.ascontiguousarray(scene[:, :130]), torch.device("cpu"))
    x = frame_tensor(np.ascontiguousarray(scene[:, 3:133]), torch.device("cpu"))  # a 3-pixel pan, odd width
    quality, hw, modes = 4.0, (72, 130), {"motion_offsets": (0.0,), "zero_motion": False}
    found = search_motion(pf.motion.coder, pf.residual.coder, pf.mc, x, ref, pf.coded_flow_input(x, ref), quality,
                          quality, steps=10, hw=hw)
    assert found.cost < found.start_cost

    def real_cost(f):
        return pf.rd_cost(x[..., :72, :130], f.x_hat[..., :72, :130],
                          f.motion.payload_bits + f.residual.payload_bits, quality)

    plain = pf.encode(x, ref, quality, hw=hw, **modes)
    searched = pf.encode(x, ref, quality, hw=hw, search_steps=10, **modes)
    assert searched.motion != plain.motion and real_cost(searched) < real_cost(plain)
    decoded = pf.decode(searched.motion, searched.residual, ref, quality, searched.motion_quality)
    assert torch.equal(on_grid(decoded), on_grid(searched.x_hat))
    assert pf.encode(x, ref, quality, hw=hw, search_steps=10, **modes).motion == searched.motion  # seeded


def test_a_scene_cut_inside_a_gop_becomes_an_i_frame_and_decodes():
    """Adaptive intra: the first frame of a new scene costs less coded intra, so it is sent as an
    I-frame mid-GOP (listed in the sequence header as a seek point); the decoder follows the frame
    type bit-exactly. With adaptive_intra=False it stays a P-frame and costs more."""
    from fractions import Fraction

    from conftest import natural_image
    from tngvideo.metrics import psnr
    from tngvideo.media import VideoFrame
    from tngvideo.video.registry import load_video_codecs
    from tngvideo.videofile import encode_sequence

    codecs = load_video_codecs()
    a = natural_image(72, 110, seed=1)
    b = natural_image(72, 110, seed=9)[::-1, :, ::-1]  # another scene: upside down, channels swapped
    frames = [np.ascontiguousarray(s[:, 2 * i : 2 * i + 98]) for s in (a, b) for i in range(2)]  # cut at 2
    quality = 3.0
    lmbda = codecs.pframes.residual.coder.lambda_at(quality)

    def run(adaptive):
        seq = encode_sequence([VideoFrame(f, i, 1) for i, f in enumerate(frames)], codecs, width=98, height=72,
                              time_base=Fraction(1, 25), frame_rate=Fraction(25), quality=quality, gop=16,
                              options=EncoderOptions(adaptive_intra=adaptive))
        dec = VideoDecoder(codecs.image, codecs.pframes, width=98, height=72)
        costs = []
        for (packet, _, _), f, encoder_psnr in zip(seq.packets, frames, seq.psnr):
            _, rgb = dec.decode(packet)
            assert psnr(f, rgb) == encoder_psnr  # the decoder follows the frame type exactly
            mse = np.mean((rgb.astype(np.float64) - f) ** 2)
            costs.append(lmbda * mse * f[..., 0].size + 8 * len(packet))
        return seq, costs

    seq, costs = run(True)
    fixed, fixed_costs = run(False)
    assert [int(s.frame_type) for s in seq.stats] == [FrameType.I, FrameType.P, FrameType.I, FrameType.P]
    assert seq.header.iframes == [0, 2]
    assert [int(s.frame_type) for s in fixed.stats] == [FrameType.I, FrameType.P, FrameType.P, FrameType.P]
    assert fixed.header.iframes == [0]
    assert costs[2] < fixed_costs[2]


def test_dis_flow_finds_a_known_shift_and_explains_the_frame():
    """DIS recovers an integer translation (backward flow: frame -> reference), and warping the
    reference with it gives back the frame away from the borders."""
    from tngvideo.video.flow_dis import dis_flow

    big = torch.from_numpy(natural_image(96, 140, seed=4)).permute(2, 0, 1)[None].float() / 255
    ref, x = big[..., :, 6:134], big[..., :, 3:131]  # x(p) = ref(p + (-3, 0))
    flow = dis_flow(x, ref)
    assert flow.shape == (1, 2, 96, 128)
    inner = (slice(None), slice(None), slice(16, -16), slice(16, -16))
    assert flow[inner][:, 0].median().item() == pytest.approx(-3.0, abs=0.25)
    assert flow[inner][:, 1].abs().median().item() < 0.25
    err = (backward_warp(ref, flow) - x)[inner].abs().mean().item()
    assert err < 0.5 * (ref - x)[inner].abs().mean().item()


def test_unknown_flow_estimator_is_refused():
    from tngvideo.video.model import VideoModelConfig

    with pytest.raises(ValueError, match="flow estimator"):
        VideoModelConfig(flow_estimator="magic")


@pytest.mark.parametrize("bad", ["nan", "huge", "diverging coder"])
def test_unusable_motion_falls_back_to_no_motion_and_decodes(tiny_weights, bad):
    """A flow estimate with NaNs or far too large, or a motion coder whose decoded flow diverges,
    never crashes the encoder nor reaches the stream: the P-frame is coded without motion (or
    with the clipped flow) and decodes bit-exactly."""
    image, pframes = motion_pframes(tiny_weights, mode_decision=False)
    if bad == "diverging coder":
        class Diverging(PFrameCoder):
            def _code(self, codec, x, quality, **kw):
                streams, out = super()._code(codec, x, quality, **kw)
                return streams, (out * 1e6 if codec is self.motion else out)
        pframes = Diverging(residual=pframes.residual, motion=pframes.motion, flow_net=pframes.flow_net,
                            mc=pframes.mc, mode_decision=False)
    else:
        value = float("nan") if bad == "nan" else 1e6
        pframes.flow_net = lambda x, ref: torch.full_like(x[:, :2], value)
    x = frame_tensor(make_frame(1), image.device)
    ref = frame_tensor(make_frame(0), image.device)
    f = pframes.encode(x, ref, 5.0)
    assert torch.isfinite(f.x_hat).all()
    if bad == "diverging coder":
        assert f.motion.latent == b"" and f.motion.hyper == b""
    assert torch.equal(on_grid(pframes.decode(f.motion, f.residual, ref, 5.0, f.motion_quality)), on_grid(f.x_hat))


def test_motion_is_estimated_against_the_previous_source_frame(tiny_weights):
    """The encoder estimates flow from the frame to the previous *source* frame (cleaner than the
    decoded reference), predicts from the decoded reference, and the stream still decodes."""
    image, pframes = motion_pframes(tiny_weights, mode_decision=False)
    seen = []
    net = pframes.flow_net

    def recording(x, ref):
        seen.append(ref.clone())
        return net(x, ref)

    pframes.flow_net = recording
    frames = [make_frame(i) for i in range(3)]
    enc = VideoEncoder(image, pframes, width=50, height=30, quality=3.0, gop=8, options=EncoderOptions(adaptive_intra=False))
    dec = VideoDecoder(image, pframes, width=50, height=30)
    for f in frames:
        out = enc.encode(f)
        assert np.array_equal(dec.decode(out.packet)[1], out.reconstruction)
    assert len(seen) == 2
    for i, ref in enumerate(seen):
        assert torch.equal(ref, frame_tensor(frames[i], image.device))


def test_quality_cascade_codes_each_gop_position_at_its_offset_and_decodes(tiny_weights):
    """I-frames at quality + intra_offset, the k-th P-frame after one at quality + p_offsets[(k-1) % n],
    held to the model's range; every packet carries its quality and the plain decoder follows."""
    image, pframes = motion_pframes(tiny_weights, mode_decision=True)
    lo, hi = pframes.quality_range
    options = EncoderOptions(intra_offset=1.5, p_offsets=(0.0, -0.5, -1.0), adaptive_intra=False)
    for base in (3.0, hi - 0.5, lo + 0.25):
        enc = VideoEncoder(image, pframes, width=50, height=30, quality=base, gop=5, options=options)
        dec = VideoDecoder(image, pframes, width=50, height=30)
        got = [p.quality for p in decoded_packets(enc, dec, 7)]
        want = [base + d for d in (1.5, 0.0, -0.5, -1.0, 0.0, 1.5, 0.0)]
        assert got == [round(min(hi, max(lo, q)) * 100) / 100 for q in want]
    plain = VideoEncoder(image, pframes, width=50, height=30, quality=3.0, gop=5)
    assert [p.quality for p in decoded_packets(plain, VideoDecoder(image, pframes, width=50, height=30), 6)] == [3.0] * 6
    for bad in ({"p_offsets": ()}, {"intra_offset": float("nan")}, {"p_offsets": (9.0,)}, {"intra_offset": True},
                {"motion_estimators": ("sift",)}, {"motion_estimators": ()}):
        with pytest.raises(ValueError):
            EncoderOptions(**bad)


def test_mode_decision_scores_the_visible_picture_not_the_padding(tiny_weights):
    """The rate-distortion cost ignores what lies beyond the frame (the 64-aligned padding), and the
    encoder passes the frame's size to it."""
    image, pframes = motion_pframes(tiny_weights, mode_decision=True)
    x = frame_tensor(make_frame(1), torch.device("cpu"))  # padded to 64x64
    x_hat = x.clone()
    x_hat[..., 30:, :] = 1 - x_hat[..., 30:, :]
    assert pframes.rd_cost(x, x_hat, 100, 3.0, (30, 50)) == 100
    assert pframes.rd_cost(x, x_hat, 100, 3.0) > 100
    seen = []
    real = pframes.rd_cost
    pframes.rd_cost = lambda *a, **k: seen.append(a[4] if len(a) > 4 else k.get("hw")) or real(*a, **k)
    enc = VideoEncoder(image, pframes, width=50, height=30, quality=3.0, gop=8)
    for i in range(3):
        enc.encode(make_frame(i))
    assert seen and all(hw == (30, 50) for hw in seen)


def test_motion_estimators_compete_on_real_cost_and_the_decoder_never_sees_which(tiny_weights):
    """With two estimators the encoder keeps the frame that costs least among all their modes; the
    choice is not in the bitstream (the same decoder reads it); unknown names are refused."""
    image, pframes = motion_pframes(tiny_weights, mode_decision=False)
    pframes.flow_net = lambda x, ref: torch.full_like(x[:, :2], -7.0)  # a poor "net" estimate
    ref_rgb, cur_rgb = natural_image(30, 50, seed=3), np.roll(natural_image(30, 50, seed=3), (2, 3), axis=(0, 1))
    ref = on_grid(frame_tensor(ref_rgb, torch.device("cpu")))
    x = frame_tensor(cur_rgb, torch.device("cpu"))

    def cost(f):
        return pframes.rd_cost(x, f.x_hat, f.motion.payload_bits + f.residual.payload_bits, 3.0, (30, 50))

    alone = {e: pframes.encode(x, ref, 3.0, hw=(30, 50), estimators=(e,)) for e in ("net", "dis")}
    both = pframes.encode(x, ref, 3.0, hw=(30, 50), estimators=("net", "dis"))
    assert both.estimator == "dis"  # DIS finds this integer shift
    assert cost(both) == pytest.approx(min(cost(f) for f in alone.values()))
    assert cost(alone["dis"]) != pytest.approx(cost(alone["net"]))  # the estimators give different motion
    dec = pframes.decode(both.motion, both.residual, ref, 3.0, both.motion_quality)
    assert torch.equal(on_grid(dec), on_grid(both.x_hat))
    with pytest.raises(ValueError, match="estimator"):
        pframes.encode(x, ref, 3.0, estimators=("sift",))


def test_a_bitrate_target_finds_the_quality_that_meets_it(tmp_path):
    """`bitrate_kbps` searches the quality by whole encodes (shipped models): the video stream lands
    within the tolerance of a reachable target and the file decodes."""
    from tngvideo.video.registry import load_video_codecs

    codecs = load_video_codecs()
    make_clip(tmp_path / "in.mkv", frames=4, size=(48, 64))
    ref = encode_file(tmp_path / "in.mkv", tmp_path / "ref.tngv", quality=2.5, gop=4, codecs=codecs)
    with TngvReader(tmp_path / "ref.tngv") as r:
        target = sum(len(p.data) for p in r.packets()) * 8 / 1000 / ref.duration_seconds
    s = encode_file(tmp_path / "in.mkv", tmp_path / "o.tngv", quality=6.0, gop=4, codecs=codecs,
                    bitrate_kbps=target, rate_tolerance=0.05)
    with TngvReader(tmp_path / "o.tngv") as r:
        got = sum(len(p.data) for p in r.packets()) * 8 / 1000 / s.duration_seconds
    assert abs(got / target - 1) <= 0.05 and s.quality < 6.0
    assert any("--bitrate" in w for w in s.warnings)
    _, it = decode_frames(tmp_path / "o.tngv", codecs=codecs)
    assert len(list(it)) == 4
    with pytest.raises(ValueError, match="one process"):
        encode_file(tmp_path / "in.mkv", tmp_path / "p.tngv", quality=3.0, codecs=codecs, bitrate_kbps=target,
                    workers=2)
