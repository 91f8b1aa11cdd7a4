"""Streaming segments: GOP-aligned, independently decodable, rate-controlled, HLS playlists."""

from fractions import Fraction

import m3u8
import numpy as np
import pytest

from conftest import make_clip
from tngvideo.bitstream.container import TngvReader
from tngvideo.bitstream.packet import FrameType, unpack_packet
from tngvideo.cli import main
from tngvideo.media import probe_video, read_video
from tngvideo.streaming.ladder import Rendition, default_ladder, parse_ladder
from tngvideo.streaming.playback import playlist_frames, segment_source
from tngvideo.streaming.playlist import segment_entries
from tngvideo.streaming.segmenter import segment_video, split_segments
from tngvideo.videofile import decode_frames

# Variable frame rate (time base 1/50): gaps of 2 and 3 ticks, 0.84 s in all.
PTS = [0, 2, 4, 6, 8, 10, 13, 16, 18, 20, 22, 24, 26, 28, 30, 32, 34, 36, 38, 40]
LADDER = [Rendition(160.0), Rendition(80.0, 40, 30)]


@pytest.fixture(scope="module")
def ladder_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("seg")
    make_clip(d / "clip.mkv", pts=PTS, size=(48, 64), time_base=Fraction(1, 50))
    res = segment_video(d / "clip.mkv", d / "out", LADDER, segment_seconds=0.3, gop=4)
    return d, res


def test_segments_follow_source_timestamps_and_playlists_parse(ladder_dir):
    d, res = ladder_dir
    src = list(read_video(d / "clip.mkv"))
    tb = probe_video(d / "clip.mkv").time_base
    total = float((src[-1].pts - src[0].pts + src[-1].duration) * tb)
    master = m3u8.load(str(d / "out" / "master.m3u8"))
    assert master.is_variant and len(master.playlists) == len(LADDER)
    for i, (p, rend) in enumerate(zip(master.playlists, res.renditions)):
        assert p.stream_info.resolution == (rend.width, rend.height)
        assert p.stream_info.codecs == "tngv.1"
        media = m3u8.load(str(d / "out" / p.uri))
        durations = [s.duration for s in media.segments]
        assert sum(durations) == pytest.approx(total, abs=1e-5)
        # segment k starts at the first frame at or after k * 0.3 s: frames at 0, 0.32, 0.6 s
        starts = [float((s.start_pts - src[0].pts) * tb) for s in rend.segments]
        assert starts == pytest.approx([0, 0.32, 0.6])
        assert [s.frames for s in rend.segments] == [7, 7, 6]
        assert durations == pytest.approx([0.32, 0.28, 0.24], abs=1e-5)
        bits = [(d / "out" / f"r{i}" / s.uri).stat().st_size * 8 for s in media.segments]
        rates = [b / s.duration for b, s in zip(bits, media.segments)]
        assert p.stream_info.bandwidth == pytest.approx(max(rates), abs=1)
        assert p.stream_info.average_bandwidth == pytest.approx(sum(bits) / total, abs=1)


def test_every_segment_starts_with_an_i_frame_decodes_with_its_init_alone_and_matches_the_rendition(ladder_dir):
    d, res = ladder_dir
    for i in range(len(LADDER)):
        _, total, it = playlist_frames(d / "out" / "master.m3u8", rendition=i)
        whole = list(it)
        assert total == len(PTS) == len(whole)
        assert [f.pts for f in whole] == [f.pts for f in read_video(d / "clip.mkv")]
        alone = []
        for path, _, init in segment_entries(d / "out" / "master.m3u8", i):
            with TngvReader(segment_source(path, init)) as r:  # the init segment and this one, nothing else
                first = next(r.packets())
                assert r.header.iframes[0] == 0
            assert unpack_packet(first.data).frame_type == FrameType.I
            _, frames = decode_frames(segment_source(path, init))
            alone += list(frames)
        assert len(alone) == len(whole)
        assert all(a.pts == b.pts and np.array_equal(a.rgb, b.rgb) for a, b in zip(alone, whole))
        assert whole[0].rgb.shape == (res.renditions[i].height, res.renditions[i].width, 3)


def test_rate_control_holds_each_segment_within_ten_percent(ladder_dir):
    d, res = ladder_dir
    for rend in res.renditions:
        for s in rend.segments:
            measured = (d / "out" / f"r{rend.index}" / s.uri).stat().st_size * 8 / 1000 / s.duration
            assert measured == pytest.approx(s.kbps)
            assert abs(measured / rend.target_kbps - 1) <= 0.10, (rend.index, s)
    assert not res.warnings


def test_cli_decodes_a_rendition_and_refuses_a_missing_one(ladder_dir, tmp_path):
    d, res = ladder_dir
    out = tmp_path / "r1.mkv"
    assert main(["decode", str(d / "out" / "master.m3u8"), "--rendition", "1", "-o", str(out), "-q"]) == 0
    frames = list(read_video(out))
    assert [f.pts for f in frames] == [f.pts for f in read_video(d / "clip.mkv")]
    assert frames[0].rgb.shape == (30, 40, 3)
    assert main(["decode", str(d / "out" / "master.m3u8"), "--rendition", "5", "-o", str(tmp_path / "x.mkv"), "-q"]) == 3
    assert not (tmp_path / "x.mkv").exists()


def test_split_segments_and_ladder_parsing():
    from tngvideo.media import VideoFrame

    frames = [VideoFrame(np.zeros((2, 2, 3), np.uint8), p, 1) for p in [0, 1, 2, 9, 10, 30]]
    groups = list(split_segments(frames, Fraction(1, 10), 0.5))  # boundaries at 0, 5, 10, 15, ... ticks
    assert [[f.pts for f in g] for g in groups] == [[0, 1, 2], [9], [10], [30]]
    assert parse_ladder("800k, 1.5M@1280x720,300@50%") == [
        Rendition(800.0), Rendition(1500.0, 1280, 720), Rendition(300.0, scale=0.5)]
    assert Rendition(300.0, scale=0.5).size_for(101, 51) == (50, 26)
    for bad in ["", "fast", "0k", "100k@0x10", "100k@150%"]:
        with pytest.raises(ValueError):
            parse_ladder(bad)
    rungs = default_ladder(1920, 1080, 30.0)
    assert [(r.width, r.height) for r in rungs] == [(1920, 1080), (1920, 1080), (960, 540)]
    assert rungs[0].kbps > rungs[1].kbps


def _boxes(data: bytes) -> list[bytes]:
    import struct

    out, i = [], 0
    while i < len(data):
        size, kind = struct.unpack(">I4s", data[i:i + 8])
        out.append(kind)
        i += size
    return out


def test_segments_are_fragmented_mp4_named_by_ext_x_map(ladder_dir):
    """What HLS allows beside MPEG-TS: each media playlist names one init segment (ftyp + moov)
    with EXT-X-MAP, and every segment is moof + mdat (a fragment, not a whole MP4 file)."""
    d, res = ladder_dir
    for i, rend in enumerate(res.renditions):
        media = m3u8.load(str(d / "out" / rend.uri))
        assert media.version >= 6  # EXT-X-MAP in a playlist that is not I-frames only
        assert [s.init_section.uri for s in media.segments] == ["init.mp4"] * len(media.segments)
        assert _boxes((d / "out" / f"r{i}" / "init.mp4").read_bytes()) == [b"ftyp", b"moov"]
        for s in media.segments:
            assert s.uri.endswith(".m4s")
            assert set(_boxes((d / "out" / f"r{i}" / s.uri).read_bytes())) == {b"moof", b"mdat"}


def test_complete_tngv_segments_from_before_still_decode(ladder_dir, tmp_path):
    """A playlist of whole .tngv segments (no EXT-X-MAP), as `segment` wrote them before, plays."""
    from tngvideo.bitstream.container import write_tngv
    from tngvideo.streaming.playlist import PlaylistSegment, write_media_playlist

    d, _ = ladder_dir
    entries = segment_entries(d / "out" / "master.m3u8", 0)
    listed = []
    for k, (path, duration, init) in enumerate(entries):
        with TngvReader(segment_source(path, init)) as r:
            write_tngv(str(tmp_path / f"s{k}.tngv"), r.header, [(p.data, p.pts, p.duration) for p in r.packets()])
        listed.append(PlaylistSegment(f"s{k}.tngv", duration))
    write_media_playlist(tmp_path / "old.m3u8", listed)
    _, _, old = playlist_frames(tmp_path / "old.m3u8")
    _, _, new = playlist_frames(d / "out" / "master.m3u8", rendition=0)
    assert all(a.pts == b.pts and np.array_equal(a.rgb, b.rgb) for a, b in zip(old, new, strict=True))


def test_an_init_segment_outside_the_playlist_folder_is_refused(ladder_dir, tmp_path, capsys):
    import shutil

    d, _ = ladder_dir
    hls = tmp_path / "hls"
    shutil.copytree(d / "out" / "r0", hls)
    shutil.copy(hls / "init.mp4", tmp_path / "init.mp4")
    text = (hls / "index.m3u8").read_text().replace('URI="init.mp4"', 'URI="../init.mp4"')
    (hls / "index.m3u8").write_text(text)
    assert main(["decode", str(hls / "index.m3u8"), "-o", str(tmp_path / "x.mkv"), "-q"]) == 3
    err = capsys.readouterr().err
    assert "outside the playlist's folder" in err and not (tmp_path / "x.mkv").exists()
