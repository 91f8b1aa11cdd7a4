"""The sequence API (`tngvideo.video.sequence`): header plus packets out of the encoder, in to the
decoder, one record per frame, with model checks, seeking and concealment."""

from __future__ import annotations

from dataclasses import replace
from fractions import Fraction

import numpy as np
import pytest

from conftest import motion_pframes, natural_image
from tngvideo.bitstream import BitstreamError
from tngvideo.bitstream.packet import FrameType, read_record, unpack_packet
from tngvideo.errors import DecodeError
from tngvideo.video import EncoderOptions
from tngvideo.video.codec import PFrameCoder
from tngvideo.video.registry import VideoCodecs
from tngvideo.video.sequence import SequenceDecoder, SequenceEncoder, check_models, codecs_for, video_model_name

W, H = 50, 30


@pytest.fixture(scope="module")
def motion_video(tiny_weights):
    image, pframes = motion_pframes(tiny_weights, mode_decision=False)
    return VideoCodecs(name="tiny-motion", image=image, pframes=pframes)


def frames(n: int) -> list[np.ndarray]:
    return [np.roll(natural_image(H, W, seed=i % 3), 2 * i, axis=1) for i in range(n)]


def encoded(codecs: VideoCodecs, n: int = 7, gop: int = 3):
    enc = SequenceEncoder(codecs, width=W, height=H, quality=5.0, gop=gop, options=EncoderOptions(adaptive_intra=False))
    out = [enc.encode(f, pts=10 * i, duration=10) for i, f in enumerate(frames(n))]
    return enc.header(time_base=Fraction(1, 250), frame_rate=Fraction(25)), out


@pytest.fixture(scope="module")
def coded(motion_video):
    return encoded(motion_video)


def test_decoder_output_is_the_encoders_reconstruction_bit_for_bit(motion_video, coded):
    header, out = coded
    dec = SequenceDecoder(header, motion_video)
    for f in out:
        d = dec.decode(f.packet, pts=f.pts, duration=f.duration)
        assert (d.index, d.pts, d.duration) == (f.index, f.pts, f.duration)
        assert np.array_equal(d.rgb, f.rgb)
        # one record per frame: the decoder reads from the packet what the encoder wrote in it
        assert d.record == replace(f.record, estimated_bits=None)
    assert any(f.record.motion_quality is not None for f in out), "no P-frame coded motion"


def test_the_header_names_the_models_i_frames_and_timing(motion_video, coded):
    header, out = coded
    assert header.models == motion_video.model_ids()
    assert header.iframes == [0, 3, 6] == [f.index for f in out if f.record.frame_type == FrameType.I]
    assert header.iframe_pts == [0, 30, 60] and header.start_pts == 0 and header.frame_count == 7
    assert [f.record.packet_bytes for f in out] == [len(f.packet) for f in out]


def test_records_are_read_from_packets_without_decoding(coded):
    _, out = coded
    for f in out:
        r = read_record(f.packet)
        p = unpack_packet(f.packet)
        assert r == replace(f.record, estimated_bits=None)
        assert r.header_bytes + sum(r.bits.values()) // 8 == len(f.packet) and r.quality == p.quality


def test_seeking_to_a_later_i_frame_gives_the_frames_of_a_full_decode(motion_video, coded):
    header, out = coded
    full = SequenceDecoder(header, motion_video)
    whole = [full.decode(f.packet).rgb for f in out]
    for target, start in [(4, 3), (6, 6), (2, 0)]:
        dec = SequenceDecoder(header, motion_video)
        point = dec.seek(target)
        assert point.index == start and point.pts == (out[start].pts if start else 0)
        got = [dec.decode(f.packet) for f in out[point.index:]]
        assert [g.index for g in got] == list(range(start, len(out)))
        assert all(np.array_equal(g.rgb, whole[g.index]) for g in got)


def test_a_decoder_with_other_models_is_refused(motion_video, coded):
    header, _ = coded
    other = VideoCodecs(name="other", image=motion_video.image, pframes=motion_video.pframes)
    with pytest.raises(DecodeError, match="models"):
        SequenceDecoder(header, other)
    with pytest.raises(DecodeError, match="models"):
        check_models({**header.models, "image": "tng-image-11:00"}, motion_video)
    with pytest.raises(DecodeError, match="names no video model"):
        codecs_for(replace(header, models={"image": "x"}))
    assert video_model_name({"video": "tng-video-9:abc"}) == "tng-video-9"


def test_a_corrupt_packet_is_rejected_and_concealed_until_the_next_i_frame(motion_video, coded):
    header, out = coded
    bad = bytearray(out[1].packet)
    bad[len(bad) // 2] ^= 0x20
    packets = [f.packet for f in out]
    packets[1] = bytes(bad)
    with pytest.raises(BitstreamError, match="checksum"):
        read_record(packets[1])
    dec = SequenceDecoder(header, motion_video)
    dec.decode(packets[0])
    with pytest.raises(DecodeError, match="frame 1: .*checksum"):
        dec.decode(packets[1])
    conceal = SequenceDecoder(header, motion_video, on_error="conceal")
    got = [conceal.decode(p) for p in packets]
    assert [g.concealed for g in got] == [False, True, True, False, False, False, False]
    assert np.array_equal(got[1].rgb, out[0].rgb) and np.array_equal(got[2].rgb, out[0].rgb)
    assert all(np.array_equal(g.rgb, f.rgb) for g, f in zip(got[3:], out[3:]))  # the I-frame restarts the loop


def test_packets_out_of_order_are_refused(motion_video, coded):
    header, out = coded
    dec = SequenceDecoder(header, motion_video)
    dec.seek(0)
    with pytest.raises(DecodeError, match="frame 0: packet out of order"):
        dec.decode(out[3].packet)
    dec = SequenceDecoder(header, motion_video)
    dec.decode(out[0].packet)
    with pytest.raises(DecodeError, match="frame 1: packet out of order"):
        dec.decode(out[2].packet)


def test_without_a_seek_the_first_packet_says_where_a_part_of_a_sequence_starts(motion_video, coded):
    header, out = coded
    whole = [f.rgb for f in out]
    dec = SequenceDecoder(header, motion_video)
    got = [dec.decode(f.packet) for f in out[3:]]
    assert [g.index for g in got] == [3, 4, 5, 6]
    assert all(np.array_equal(g.rgb, whole[g.index]) for g in got)
    with pytest.raises(DecodeError, match="without a reference"):
        SequenceDecoder(header, motion_video).decode(out[4].packet)


def test_an_encoder_chunk_continues_the_sequence_at_a_gop_boundary(tiny_codec):
    codecs = VideoCodecs(name="tiny-video", image=tiny_codec, pframes=PFrameCoder(residual=tiny_codec.latents))
    _, whole = encoded(codecs, n=6, gop=3)
    chunk = SequenceEncoder(codecs, width=W, height=H, quality=5.0, gop=3, first_index=3,
                            options=EncoderOptions(adaptive_intra=False))
    tail = [chunk.encode(f, pts=10 * (i + 3), duration=10) for i, f in enumerate(frames(6)[3:])]
    assert [f.packet for f in tail] == [f.packet for f in whole[3:]]
    assert chunk.packets == [(f.packet, f.pts, f.duration) for f in whole[3:]]
    with pytest.raises(ValueError, match="GOP boundary"):
        SequenceEncoder(codecs, width=W, height=H, quality=5.0, gop=3, first_index=2)
