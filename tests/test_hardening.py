"""Damaged and hostile input: concealment, and a fixed-seed sample of the decoder fuzzer."""

from pathlib import Path

import numpy as np

from conftest import make_clip
from tngvideo.bitstream.container import TngvReader
from tngvideo.cli import main
from tngvideo.fuzzing import BAD, cases, make_seeds, run
from tngvideo.media import read_video
from tngvideo.video import EncoderOptions
from tngvideo.videofile import encode_file


def _damage_packet(path: Path, index: int) -> None:
    data = bytearray(path.read_bytes())
    with TngvReader(path) as r:
        pk = [p.data for p in r.packets()][index]
    at = data.find(pk)
    data[at + len(pk) // 2] ^= 0x40
    path.write_bytes(bytes(data))


def test_stop_names_the_frame_and_conceal_holds_the_last_good_frame_until_the_next_i_frame(tmp_path, capsys):
    make_clip(tmp_path / "in.mkv", frames=8, size=(32, 48))
    # Fixed GOP: frames 1-3 are P-frames whatever the adaptive-intra decision would pick.
    encode_file(tmp_path / "in.mkv", tmp_path / "a.tngv", quality=3.0, gop=4, options=EncoderOptions(adaptive_intra=False))
    assert main(["decode", str(tmp_path / "a.tngv"), "-o", str(tmp_path / "good.mkv"), "-q"]) == 0
    good = list(read_video(tmp_path / "good.mkv"))
    _damage_packet(tmp_path / "a.tngv", 1)
    capsys.readouterr()

    assert main(["decode", str(tmp_path / "a.tngv"), "-o", str(tmp_path / "stop.mkv"), "-q"]) == 3
    assert "frame 1" in capsys.readouterr().err
    assert not (tmp_path / "stop.mkv").exists()

    code = main(["decode", str(tmp_path / "a.tngv"), "-o", str(tmp_path / "c.mkv"), "--on-error", "conceal", "-q"])
    err = capsys.readouterr().err
    assert code == 3 and "concealed: 1-3" in err
    out = list(read_video(tmp_path / "c.mkv"))
    assert [f.pts for f in out] == [f.pts for f in good]
    assert np.array_equal(out[0].rgb, good[0].rgb)
    assert all(np.array_equal(out[i].rgb, good[0].rgb) for i in (1, 2, 3))  # held until the I-frame at 4
    assert all(np.array_equal(out[i].rgb, good[i].rgb) for i in range(4, 8))


def test_a_truncated_file_is_rejected_even_under_conceal(tmp_path, capsys):
    make_clip(tmp_path / "in.mkv", frames=6, size=(32, 48))
    encode_file(tmp_path / "in.mkv", tmp_path / "a.tngv", quality=3.0, gop=3)
    with TngvReader(tmp_path / "a.tngv") as r:
        last = [p.data for p in r.packets()][-1]
    data = (tmp_path / "a.tngv").read_bytes()
    (tmp_path / "a.tngv").write_bytes(data[: data.find(last) + 5])
    code = main(["decode", str(tmp_path / "a.tngv"), "-o", str(tmp_path / "c.mkv"), "--on-error", "conceal", "-q"])
    err = capsys.readouterr().err
    assert code == 3
    assert not (tmp_path / "c.mkv").exists()
    assert err.startswith("tngvideo: error:") and err.count("\n") == 1


def test_fuzz_sample_has_no_crash_hang_memory_blowup_or_half_written_output(tmp_path):
    seeds, donors = make_seeds(tmp_path)
    rep = run(cases(80, seeds, donors, seed=1), main=main, timeout=60.0)
    assert rep.cases == 80
    assert rep.bad == 0, rep.failures
    assert rep.outcomes["rejected"] > 40  # the mutations really damage the streams
    assert not any(rep.outcomes[o] for o in BAD)


def test_nothing_lost_rotation_colour_audio_chapters_and_timestamps(tmp_path):
    import av
    from fractions import Fraction

    from tngvideo.media import probe_video

    colour = {"color_primaries": 1, "color_trc": 1, "colorspace": 1, "color_range": 2}
    chapters = [{"id": 1, "start": 0, "end": 3, "time_base": Fraction(1, 10), "metadata": {"title": "One"}},
                {"id": 2, "start": 3, "end": 6, "time_base": Fraction(1, 10), "metadata": {"title": "Two"}}]
    pts = [0, 1, 3, 4, 6, 9, 10, 12]  # variable frame rate
    make_clip(tmp_path / "in.mkv", pts=pts, size=(32, 48), audio=True, rotation=90, colour=colour, chapters=chapters)
    src_info = probe_video(tmp_path / "in.mkv")
    assert src_info.rotation == 90 and src_info.colour == colour
    assert main(["encode", str(tmp_path / "in.mkv"), "-o", str(tmp_path / "a.tngv"), "-q", "--gop", "4"]) == 0
    assert main(["decode", str(tmp_path / "a.tngv"), "-o", str(tmp_path / "out.mkv"), "-q"]) == 0
    out_info = probe_video(tmp_path / "out.mkv")
    # the lossless output is RGB: the source's primaries and transfer, the RGB matrix, full range
    assert out_info.rotation == 90 and out_info.colour == {**colour, "colorspace": 0, "color_range": 2}
    src_frames, out_frames = list(read_video(tmp_path / "in.mkv")), list(read_video(tmp_path / "out.mkv"))
    assert len(out_frames) == len(pts)
    assert [float(f.pts * src_info.time_base) for f in src_frames] == [float(f.pts * out_info.time_base) for f in out_frames]

    def audio_packets(path):
        with av.open(str(path)) as c:
            return [bytes(p) for p in c.demux(c.streams.audio[0]) if p.size]

    def chapter_titles(path):
        with av.open(str(path)) as c:
            return [(float(ch["start"] * ch["time_base"]), ch["metadata"].get("title")) for ch in c.chapters()]

    assert audio_packets(tmp_path / "out.mkv") == audio_packets(tmp_path / "in.mkv")
    assert chapter_titles(tmp_path / "out.mkv") == chapter_titles(tmp_path / "in.mkv") == [(0.0, "One"), (0.3, "Two")]


def test_stdin_and_stdout_pipes_carry_only_the_stream(tmp_path):
    import subprocess
    import sys

    make_clip(tmp_path / "in.mkv", frames=3, size=(32, 48))
    cmd = [sys.executable, "-m", "tngvideo"]
    with open(tmp_path / "in.mkv", "rb") as f:
        enc = subprocess.run(cmd + ["encode", "-", "-o", "-", "--gop", "2"], stdin=f, capture_output=True, timeout=300)
    assert enc.returncode == 0, enc.stderr
    (tmp_path / "piped.tngv").write_bytes(enc.stdout)  # progress and the summary went to stderr
    with TngvReader(tmp_path / "piped.tngv") as r:
        assert r.header.frame_count == 3
    dec = subprocess.run(cmd + ["decode", "-", "-o", "-", "-q"], input=enc.stdout, capture_output=True, timeout=300)
    assert dec.returncode == 0 and dec.stderr == b""
    (tmp_path / "out.y4m").write_bytes(dec.stdout)  # decode -o - streams y4m as it decodes
    assert dec.stdout.startswith(b"YUV4MPEG2 ") and len(list(read_video(tmp_path / "out.y4m"))) == 3
    bad = subprocess.run(cmd + ["decode", "-", "-o", "-"], input=b"garbage" * 100, capture_output=True, timeout=300)
    assert bad.returncode == 3 and bad.stdout == b"" and bad.stderr.decode().startswith("tngvideo: error:")


def test_a_subtitle_stream_the_container_cannot_carry_is_named_in_a_warning(tmp_path, capsys):
    from fractions import Fraction

    import av

    with av.open(str(tmp_path / "in.mkv"), "w") as c:
        v = c.add_stream("ffv1", rate=25)
        v.width, v.height, v.pix_fmt = 48, 32, "bgr0"
        sub = c.add_stream("ass")  # Matroska carries ASS; MP4 (the .tngv container) does not
        for i in range(3):
            f = av.VideoFrame.from_ndarray(np.full((32, 48, 3), 60 * i, np.uint8), format="rgb24")
            f.pts = i
            for p in v.encode(f):
                c.mux(p)
        for p in v.encode(None):
            c.mux(p)
        pk = av.Packet(b"Hello")
        pk.pts = pk.dts = 0
        pk.duration, pk.time_base, pk.stream = 40, Fraction(1, 1000), sub
        c.mux(pk)
    capsys.readouterr()
    assert main(["encode", str(tmp_path / "in.mkv"), "-o", str(tmp_path / "a.tngv")]) == 0
    err = capsys.readouterr().err
    assert "warning: subtitle stream 1 (ssa) not copied" in err
    with TngvReader(tmp_path / "a.tngv") as r:
        assert r.header.frame_count == 3


def test_lossless_video_output_takes_any_size_down_to_one_pixel(tmp_path):
    from fractions import Fraction

    from tngvideo.media import VideoFrame, write_video

    rng = np.random.default_rng(0)
    for w, h in [(1, 40), (56, 1), (1, 1), (31, 7)]:
        rgb = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
        write_video(tmp_path / "o.mkv", [VideoFrame(rgb, 0, 1)], width=w, height=h, time_base=Fraction(1, 25),
                    frame_rate=Fraction(25))
        assert np.array_equal(next(read_video(tmp_path / "o.mkv")).rgb, rgb)
