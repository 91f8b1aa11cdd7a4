"""The .tngv data track's sample entry carries a tag of its own, `tngv` (issue 31, point 6):
FFmpeg's MP4 muxer writes `gpmd` (GoPro telemetry) there, patched after muxing. Files and init
segments are checked by parsing their box tree here; old `gpmd` files keep decoding."""

from __future__ import annotations

import re
import struct
from fractions import Fraction
from pathlib import Path

import av
import av.logging
import numpy as np
import pytest

from conftest import make_clip
from tngvideo.bitstream.container import (JoinedFiles, SequenceHeader, TngvReader, write_fmp4_segment,
                                          write_tngv)
from tngvideo.streaming.ladder import Rendition
from tngvideo.streaming.playback import segment_source
from tngvideo.streaming.playlist import segment_entries
from tngvideo.video.codec import PFrameCoder
from tngvideo.video.registry import VideoCodecs
from tngvideo.videofile import decode_frames, encode_file


@pytest.fixture(scope="module")
def tiny_video(tiny_codec):
    return VideoCodecs(name="tiny-video", image=tiny_codec, pframes=PFrameCoder(residual=tiny_codec.latents))


# -- an ISO BMFF reader of its own (not the one under test) ------------------------------------

def _boxes(data: bytes, start: int = 0, end: int | None = None):
    end = len(data) if end is None else end
    i = start
    while i + 8 <= end:
        size, kind = struct.unpack(">I4s", data[i:i + 8])
        head = 8
        if size == 1:
            size, head = struct.unpack(">Q", data[i + 8:i + 16])[0], 16
        elif size == 0:
            size = end - i
        assert size >= head and i + size <= end, "malformed box"
        yield kind, i + head, i + size, i  # type, body start, end, box start
        i += size


def _find(data: bytes, box, kind: bytes):
    return [b for b in _boxes(data, box[1], box[2]) if b[0] == kind]


def tracks(data: bytes) -> list[dict]:
    """Per trak of the moov: handler type and name, and the stsd sample entries' fourccs with
    the absolute offset of each fourcc."""
    (moov,) = [b for b in _boxes(data) if b[0] == b"moov"]
    out = []
    for trak in _find(data, moov, b"trak"):
        (mdia,) = _find(data, trak, b"mdia")
        (hdlr,) = _find(data, mdia, b"hdlr")
        body = data[hdlr[1]:hdlr[2]]
        (minf,) = _find(data, mdia, b"minf")
        (stbl,) = _find(data, minf, b"stbl")
        (stsd,) = _find(data, stbl, b"stsd")
        count = struct.unpack(">I", data[stsd[1] + 4:stsd[1] + 8])[0]
        entries = list(_boxes(data, stsd[1] + 8, stsd[2]))
        assert len(entries) == count
        out.append({"handler": body[8:12], "name": body[24:].split(b"\0")[0].decode(),
                    "entries": [e[0] for e in entries], "at": [e[3] + 4 for e in entries]})
    return out


def data_track(data: bytes) -> dict:
    (t,) = [t for t in tracks(data) if t["name"] == "tngvideo"]
    return t


def with_tag(path: Path, dst: Path, tag: bytes) -> Path:
    """A copy of `path` whose tngvideo track's sample entry says `tag` (an old-style file for `gpmd`)."""
    data = bytearray(path.read_bytes())
    (at,) = data_track(bytes(data))["at"]
    data[at:at + 4] = tag
    dst.write_bytes(bytes(data))
    return dst


def ffmpeg_tags(source) -> list[str]:
    """The data streams' codec tags as FFmpeg (through PyAV) reports them: 'Data: name (tag / 0x...)'."""
    old = av.logging.get_level()
    av.logging.set_level(av.logging.INFO)
    try:
        with av.open(source, format="mp4") as c:
            text = c.dumps_format()
    finally:
        av.logging.set_level(old)
    return re.findall(r"Data: \S+ \((\w{4}) / 0x", text)


# -- tests ---------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def encoded(tiny_video, tmp_path_factory):
    d = tmp_path_factory.mktemp("tag")
    make_clip(d / "in.mp4", frames=5, size=(32, 48), audio=True)  # an audio track beside ours
    encode_file(d / "in.mp4", d / "new.tngv", quality=3.0, gop=3, codecs=tiny_video)
    return d


def test_written_file_tags_its_data_track_tngv_and_ffmpeg_reads_it(encoded):
    data = (encoded / "new.tngv").read_bytes()
    ts = tracks(data)
    assert sorted(t["handler"] for t in ts) == [b"meta", b"soun"]
    assert data_track(data)["entries"] == [b"tngv"]
    assert b"gpmd" not in b"".join(e for t in ts for e in t["entries"])
    assert ffmpeg_tags(str(encoded / "new.tngv")) == ["tngv"]
    with TngvReader(encoded / "new.tngv") as r:  # FFmpeg keeps the track and its packets
        assert len(list(r.packets())) == r.header.frame_count == 5
        assert len(r.audio_streams()) == 1


def test_tagged_file_decodes_bit_exactly_as_an_old_gpmd_one(encoded, tiny_video):
    new = encoded / "new.tngv"
    assert data_track(new.read_bytes())["entries"] == [b"tngv"]
    old = with_tag(new, encoded / "old.tngv", b"gpmd")  # what the muxer alone writes
    assert data_track(old.read_bytes())["entries"] == [b"gpmd"]
    assert ffmpeg_tags(str(old)) == ["gpmd"]
    with TngvReader(new) as a, TngvReader(old) as b:
        assert a.header == b.header
        pa, pb = list(a.packets()), list(b.packets())
    assert pa == pb and len(pa) == 5
    _, fa = decode_frames(new, codecs=tiny_video)
    _, fb = decode_frames(old, codecs=tiny_video)
    fa, fb = list(fa), list(fb)
    assert len(fa) == len(fb) == 5
    assert all(x.pts == y.pts and np.array_equal(x.rgb, y.rgb) for x, y in zip(fa, fb))


def test_the_old_muxer_path_still_decodes(tmp_path, monkeypatch):
    """A file straight from the muxer (the retagging switched off) reads as before."""
    import tngvideo.bitstream.container as container

    header = SequenceHeader(width=8, height=8, time_base=(1, 90000), frame_rate=(25, 1), gop=4, frame_count=3,
                            iframes=[0], iframe_pts=[0], models={"video": "x"})
    packets = [(bytes([i]) * (i + 3), 3600 * i, 3600) for i in range(3)]
    monkeypatch.setattr(container, "retag_data_track", lambda f: None)
    write_tngv(str(tmp_path / "old.tngv"), header, packets)
    monkeypatch.undo()
    write_tngv(str(tmp_path / "new.tngv"), header, packets)
    assert data_track((tmp_path / "old.tngv").read_bytes())["entries"] == [b"gpmd"]
    assert data_track((tmp_path / "new.tngv").read_bytes())["entries"] == [b"tngv"]
    for name in ("old.tngv", "new.tngv"):
        with TngvReader(tmp_path / name) as r:
            assert r.header == header
            assert [(p.data, p.pts, p.duration) for p in r.packets()] == packets


def test_hls_init_segment_carries_the_tag(tmp_path):
    header = SequenceHeader(width=8, height=8, time_base=(1, 50), frame_rate=(25, 1), gop=4, frame_count=0,
                            iframes=[], iframe_pts=[], models={"video": "x"}, segmented=True)
    packets = [(bytes([i]) * (i + 3), 2 * i + 10, 2) for i in range(4)]
    init, media = write_fmp4_segment(header, packets)
    assert [b[0] for b in _boxes(init)] == [b"ftyp", b"moov"]
    assert data_track(init)["entries"] == [b"tngv"]
    (tmp_path / "init.mp4").write_bytes(init)
    (tmp_path / "seg.m4s").write_bytes(media)
    assert ffmpeg_tags(str(tmp_path / "init.mp4")) == ["tngv"]
    with_tag(tmp_path / "init.mp4", tmp_path / "old_init.mp4", b"gpmd")
    for name in ("init.mp4", "old_init.mp4"):
        with TngvReader(JoinedFiles(tmp_path / name, tmp_path / "seg.m4s")) as r:
            assert [(p.data, p.pts, p.duration) for p in r.packets()] == packets
            assert r.header.frame_count == 4 and r.header.start_pts == 10


def test_segmenter_writes_tagged_init_segments_that_decode(tmp_path, tiny_video, monkeypatch):
    import tngvideo.streaming.segmenter as segmenter

    monkeypatch.setattr(segmenter, "load_video_codecs", lambda model=None: tiny_video)
    make_clip(tmp_path / "clip.mkv", frames=6, size=(32, 48), time_base=Fraction(1, 25))
    segmenter.segment_video(tmp_path / "clip.mkv", tmp_path / "out", [Rendition(80.0)], segment_seconds=0.12, gop=3)
    init = tmp_path / "out" / "r0" / "init.mp4"
    assert data_track(init.read_bytes())["entries"] == [b"tngv"]
    assert ffmpeg_tags(str(init)) == ["tngv"]
    entries = list(segment_entries(tmp_path / "out" / "master.m3u8", 0))
    assert len(entries) == 2 and all(i == init for _, _, i in entries)
    old_init = with_tag(init, tmp_path / "old_init.mp4", b"gpmd")
    for path, _, _ in entries:
        _, new = decode_frames(segment_source(path, init), codecs=tiny_video)
        _, old = decode_frames(segment_source(path, old_init), codecs=tiny_video)
        new, old = list(new), list(old)
        assert len(new) == len(old) == 3
        assert all(a.pts == b.pts and np.array_equal(a.rgb, b.rgb) for a, b in zip(new, old))


def _stream_copy(src: Path, dst: Path, fmt: str) -> None:
    """What `ffmpeg -i src -map 0 -c copy -f fmt dst` does with the data track (PyAV, same muxers)."""
    with av.open(str(src), format="mp4") as i, av.open(str(dst), "w", format=fmt) as o:
        for k, v in i.metadata.items():
            o.metadata[k] = v
        s = i.streams.data[0]
        t = o.add_stream_from_template(s)
        for p in i.demux(s):
            if p.size:
                p.stream = t
                o.mux(p)


def test_ffmpeg_stream_copy_into_mp4_takes_old_files_only(encoded):
    """The documented cost of a tag FFmpeg does not know (README): its MP4 muxer refuses to
    stream-copy the `tngv` track, as it copies the `gpmd` one of a file from before."""
    old = with_tag(encoded / "new.tngv", encoded / "old2.tngv", b"gpmd")
    _stream_copy(old, encoded / "old_remux.tngv", "mp4")
    with TngvReader(encoded / "old_remux.tngv") as r:
        assert len(list(r.packets())) == 5
    with pytest.raises(av.FFmpegError):
        _stream_copy(encoded / "new.tngv", encoded / "new_remux.tngv", "mp4")
