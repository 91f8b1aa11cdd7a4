"""The command line as a user meets it (issue 31, points 6-7): help, messages, pipes, inputs."""

from __future__ import annotations

import argparse
import subprocess
import sys

import pytest

from conftest import make_clip
from tngvideo.cli import build_parser, main


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    """A 6-frame .mp4 with an AAC track (about 0.24 s) and its .tngv (encoded once)."""
    d = tmp_path_factory.mktemp("clip")
    src = d / "clip.mp4"
    make_clip(src, frames=6, size=(24, 32), audio=True)
    tngv = d / "clip.tngv"
    assert main(["encode", str(src), "-o", str(tngv), "-q", "--gop", "4"]) == 0
    return src, tngv


def _subparsers(parser: argparse.ArgumentParser):
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield name, sub
                yield from ((f"{name} {n}", s) for n, s in _subparsers(sub))


def test_help_shows_every_default():
    """Every option whose default is a value (not 'unset', not a flag) names it in --help."""
    missing = []
    for name, sub in _subparsers(build_parser()):
        formatter = sub._get_formatter()
        for action in sub._actions:
            if not action.option_strings or action.default in (None, False, "", argparse.SUPPRESS):
                continue
            text = " ".join(formatter._format_action(action).split())
            if "default" not in text:
                missing.append(f"{name} {action.option_strings[-1]}")
    assert not missing, missing
    # and as printed: `encode --help` gives the quality and GOP defaults
    r = subprocess.run([sys.executable, "-m", "tngvideo", "encode", "--help"], capture_output=True, text=True,
                       timeout=120)
    text = " ".join(r.stdout.split())
    assert "(default: 4)" in text and "intra period in frames (default: 16)" in text


def test_info_into_a_closed_pipe_stops_quietly(clip):
    """`tngvideo info --json x.tngv | head -c 10`: the reader goes away; no 'Broken pipe'
    message, no traceback, the exit status of a process stopped by SIGPIPE (141)."""
    _, tngv = clip
    p = subprocess.Popen([sys.executable, "-m", "tngvideo", "info", "--json", str(tngv)], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE)
    p.stdout.close()  # before the child writes anything: its first write meets a closed pipe
    err = p.stderr.read().decode()
    assert p.wait(timeout=120) == 141
    assert err == "", err


def test_summaries_go_to_stderr_and_quiet_silences_them(clip, tmp_path, capsys):
    """segment and analyze print their summaries on stderr (stdout stays free for data), and -q
    leaves nothing at all."""
    src, _ = clip
    assert main(["segment", str(src), "-o", str(tmp_path / "hls"), "--ladder", "100k", "--frames", "4"]) == 0
    out, err = capsys.readouterr()
    assert out == "" and "rendition 0:" in err
    assert main(["segment", str(src), "-o", str(tmp_path / "hls2"), "--ladder", "100k", "--frames", "4", "-q"]) == 0
    assert capsys.readouterr() == ("", "")
    assert main(["analyze", str(src), "-o", str(tmp_path / "an"), "--frames", "3"]) == 0
    out, err = capsys.readouterr()
    assert out == "" and "PSNR-RGB" in err
    assert main(["analyze", str(src), "-o", str(tmp_path / "an2"), "--frames", "3", "-q"]) == 0
    assert capsys.readouterr() == ("", "")


def _audio_starts(path) -> list:
    import av

    with av.open(str(path)) as c:
        if not c.streams.audio:
            return []
        return sorted(p.pts * p.time_base for p in c.demux(c.streams.audio[0]) if p.pts is not None)


def _video_pts(path) -> list[int]:
    from tngvideo.media import read_video

    return [f.pts for f in read_video(path)]


@pytest.fixture(scope="module")
def long_clip(tmp_path_factory):
    """12 frames at 25 fps (0.48 s) with about 0.5 s of AAC in 0.128 s packets."""
    src = tmp_path_factory.mktemp("long") / "clip.mp4"
    make_clip(src, frames=12, size=(24, 32), audio=True)
    return src


def test_encode_start_skips_frames_and_audio_follows_the_frames(long_clip, tmp_path):
    """`encode --start 4 --frames 4` codes source frames 4-7 at their own timestamps, and the
    audio copied along is the packets that start within those frames' time span; `--frames`
    alone cuts the audio at the last frame's end too (it ran to the source's end)."""
    from fractions import Fraction

    from tngvideo.bitstream.container import TngvReader

    src_pts = _video_pts(long_clip)
    out = tmp_path / "mid.tngv"
    assert main(["encode", str(long_clip), "-o", str(out), "-q", "--start", "4", "--frames", "4"]) == 0
    with TngvReader(out) as r:
        pts = [p.pts for p in r.packets()]
        tb = r.header.tb
        assert r.header.frame_count == 4 and pts == src_pts[4:8]
    t0, t1 = pts[0] * tb, (pts[-1] + (pts[1] - pts[0])) * tb
    audio = _audio_starts(out)
    assert audio and all(t0 <= t < t1 for t in audio), (audio, t0, t1)
    assert len(_audio_starts(long_clip)) > len(audio)

    head = tmp_path / "head.tngv"
    assert main(["encode", str(long_clip), "-o", str(head), "-q", "--frames", "3"]) == 0
    end = Fraction(3, 25)
    assert max(_audio_starts(head)) < end < max(_audio_starts(long_clip))
    assert min(_audio_starts(head)) == min(_audio_starts(long_clip))  # the priming packet before frame 0 stays


def test_encode_start_past_the_end_is_a_usage_error(long_clip, tmp_path, capsys):
    out = tmp_path / "none.tngv"
    assert main(["encode", str(long_clip), "-o", str(out), "--start", "12"]) == 2
    assert "--start 12" in capsys.readouterr().err and not out.exists()


def test_an_leaves_the_audio_out_of_encode_and_decode(clip, tmp_path):
    """-an: no audio stream in the .tngv (encode) or in the decoded video (decode)."""
    src, tngv = clip
    assert _audio_starts(tngv)  # the fixture's .tngv carries the source's audio
    out = tmp_path / "silent.tngv"
    assert main(["encode", str(src), "-o", str(out), "-q", "-an"]) == 0
    assert _audio_starts(out) == [] and len(_video_pts(src)) == 6
    dec = tmp_path / "silent.mkv"
    assert main(["decode", str(tngv), "-o", str(dec), "-q", "-an"]) == 0
    assert _audio_starts(dec) == [] and len(_video_pts(dec)) == 6
    with_audio = tmp_path / "loud.mkv"
    assert main(["decode", str(tngv), "-o", str(with_audio), "-q"]) == 0
    assert _audio_starts(with_audio)


def _y4m(path, frames):
    import av

    with av.open(str(path), "w", format="yuv4mpegpipe") as o:
        s = o.add_stream("rawvideo", rate=25)
        s.width, s.height, s.pix_fmt = frames[0].shape[1], frames[0].shape[0], "yuv420p"
        for rgb in frames:
            for p in s.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(format="yuv420p")):
                o.mux(p)
        for p in s.encode(None):
            o.mux(p)


def test_progress_bars_have_a_total_for_inputs_that_keep_no_frame_count(tmp_path, monkeypatch):
    """.mkv, .y4m and a folder of numbered images keep no frame count in their headers: the
    frames are counted without decoding, so encode's bar (and analyze's: frames x encodes) has
    a total."""
    from PIL import Image

    import tngvideo.analysis.video_report as report
    import tngvideo.cli.output as output
    import tngvideo.videofile as videofile
    from conftest import natural_image

    frames = make_clip(tmp_path / "a.mkv", frames=7, size=(16, 24))
    _y4m(tmp_path / "a.y4m", [natural_image(16, 24, seed=i) for i in range(5)])
    (tmp_path / "imgs").mkdir()
    for i in range(4):
        Image.fromarray(natural_image(16, 24, seed=i)).save(tmp_path / "imgs" / f"im{i:03d}.png")
    totals = []
    real = output.bar

    def progress(args, total, desc):
        totals.append((desc, total))
        return real(args, total, desc)

    def fake_encode(src, dst, **kw):  # the bar is the property: no need to run the codec
        return videofile.EncodeSummary(frames=1, bytes=1, duration_seconds=1, kbps=1, mean_psnr=1, encode_fps=1,
                                       quality=4.0)

    monkeypatch.setattr(output, "bar", progress)
    monkeypatch.setattr(videofile, "encode_file", fake_encode)
    monkeypatch.setattr(report, "analyze", lambda *a, **k: report.Analysis("x", 1, 1))
    monkeypatch.setattr(report, "write_outputs", lambda *a, **k: None)
    for name in ("a.mkv", "a.y4m", "imgs"):
        assert main(["encode", str(tmp_path / name), "-o", str(tmp_path / f"{name}.tngv"), "-q"]) == 0
    assert main(["encode", str(tmp_path / "a.mkv"), "-o", str(tmp_path / "s.tngv"), "-q", "--start", "2"]) == 0
    assert main(["analyze", str(tmp_path / "a.mkv"), "-o", str(tmp_path / "an"), "-q", "--quality", "2", "4"]) == 0
    assert totals == [("encode", len(frames)), ("encode", 5), ("encode", 4), ("encode", len(frames) - 2),
                      ("analyze", 2 * len(frames))]


class _Pipe:
    """A stand-in for stdout: records each write with the number of frames decoded by then."""

    def __init__(self, decoded: list[int]):
        self.decoded, self.writes = decoded, []
        self.buffer = self

    def write(self, data):
        self.writes.append((bytes(data), self.decoded[0]))
        return len(data)

    def flush(self):
        pass


def test_decode_to_stdout_streams_y4m_as_the_frames_decode(clip, tmp_path, monkeypatch):
    """`decode x.tngv -o -` writes a y4m stream whose first frame leaves before the second
    frame is decoded (so `| ffplay -` starts at once), and the stream holds every frame, the
    pictures the .mkv decode holds."""
    import io

    import av
    import numpy as np

    from tngvideo.media import read_video
    from tngvideo.video.codec import VideoDecoder

    _, tngv = clip
    decoded = [0]
    real = VideoDecoder.decode

    def counting(self, data):
        out = real(self, data)
        decoded[0] += 1
        return out

    monkeypatch.setattr(VideoDecoder, "decode", counting)
    pipe = _Pipe(decoded)
    monkeypatch.setattr(sys, "stdout", pipe)
    assert main(["decode", str(tngv), "-o", "-", "-q"]) == 0
    monkeypatch.undo()
    data = b"".join(w for w, _ in pipe.writes)
    assert data.startswith(b"YUV4MPEG2 W32 H24 F25:1 ")
    first_frame = next(n for w, n in pipe.writes if w.startswith(b"FRAME"))
    assert first_frame == 1, "the first frame waited for later frames to decode"
    with av.open(io.BytesIO(data), format="yuv4mpegpipe") as c:
        streamed = [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]
    assert main(["decode", str(tngv), "-o", str(tmp_path / "ref.mkv"), "-q"]) == 0
    ref = [f.rgb for f in read_video(tmp_path / "ref.mkv")]
    assert len(streamed) == len(ref) == 6
    for a, b in zip(streamed, ref):  # the same pictures, through 4:2:0
        mse = np.mean((a.astype(np.float64) - b) ** 2)
        assert 10 * np.log10(255 ** 2 / mse) > 30


def test_a_remux_that_dropped_the_sequence_header_is_refused_with_the_reason(clip, tmp_path, capsys):
    """A .tngv remuxed without its container metadata (the frame packets intact, the sequence
    header gone) is refused in one line that says so and how to remux it, exit code 3."""
    import av

    from tngvideo.bitstream import BitstreamError
    from tngvideo.bitstream.container import TngvReader

    _, tngv = clip
    stripped = tmp_path / "stripped.mp4"
    with av.open(str(tngv)) as src, av.open(str(stripped), "w", format="mp4") as out:
        s = out.add_data_stream("bin_data")
        s.time_base = src.streams.data[0].time_base
        for p in src.demux(src.streams.data[0]):
            if p.size:
                p.stream = s
                out.mux(p)
    with av.open(str(stripped)) as c:
        assert "comment" not in c.metadata and c.streams.data  # what such a remux leaves
    with pytest.raises(BitstreamError, match="sequence header is gone"):
        TngvReader(stripped)
    capsys.readouterr()
    assert main(["info", str(stripped)]) == 3
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "-map_metadata 0" in err and "Traceback" not in err
    assert main(["decode", str(stripped), "-o", str(tmp_path / "x.mkv"), "-q"]) == 3
    assert not (tmp_path / "x.mkv").exists()


@pytest.mark.parametrize("error, message", [(RuntimeError("boom"), "internal error: RuntimeError: boom"),
                                            (MemoryError(), "out of memory")])
def test_an_unexpected_error_is_one_line_and_exit_1_not_a_traceback(clip, monkeypatch, capsys, error, message):
    import tngvideo.api.describe

    def broken(path):
        raise error

    monkeypatch.setattr(tngvideo.api.describe, "describe", broken)
    monkeypatch.delenv("TNGVIDEO_DEBUG", raising=False)
    assert main(["info", str(clip)]) == 1
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
    monkeypatch.setenv("TNGVIDEO_DEBUG", "1")  # the traceback, on request
    with pytest.raises(type(error)):
        main(["info", str(clip)])
