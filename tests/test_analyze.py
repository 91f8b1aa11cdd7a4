import csv
import json

import numpy as np
import pytest

from conftest import make_clip
from tngvideo.metrics import psnr_y
from tngvideo.analysis.video_report import analyze, gop_profile, write_outputs
from tngvideo.bitstream.container import TngvReader
from tngvideo.cli import EXIT_BAD_DATA, EXIT_USAGE, main
from tngvideo.errors import DecodeError
from tngvideo.media import read_video
from tngvideo.video import EncoderOptions
from tngvideo.videofile import decode_frames, encode_file


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    d = tmp_path_factory.mktemp("an")
    make_clip(d / "clip.mkv", frames=4, size=(36, 52))
    encode_file(d / "clip.mkv", d / "clip.tngv", quality=3.0, gop=2, options=EncoderOptions(adaptive_intra=False))
    return d


def test_per_frame_bytes_add_up_to_the_file_payloads(clip):
    a = analyze(clip / "clip.mkv", qualities=[], gop=2, tngv=clip / "clip.tngv")
    with TngvReader(clip / "clip.tngv") as r:
        packets = [len(p.data) for p in r.packets()]
    assert [row.bytes for row in a.rows] == packets
    assert all(r.bits_intra + r.bits_motion + r.bits_residual + r.bits_header == 8 * r.bytes for r in a.rows)
    assert [r.type for r in a.rows] == ["I", "P", "I", "P"]
    # the motion quality is reported where motion is coded: the frame's quality or the +2 the encoder tries
    assert all((r.motion_quality is None) == (r.bits_motion == 0) for r in a.rows)
    assert {r.motion_quality for r in a.rows} <= {None, 3.0, 5.0}


def test_metrics_agree_with_an_independent_computation(clip):
    a = analyze(clip / "clip.mkv", qualities=[], gop=2, tngv=clip / "clip.tngv")
    _, it = decode_frames(clip / "clip.tngv")
    src = list(read_video(clip / "clip.mkv"))
    for row, dec, ref in zip(a.rows, it, src):
        mse = np.mean((dec.rgb.astype(float) - ref.rgb.astype(float)) ** 2)
        assert row.psnr_rgb == pytest.approx(10 * np.log10(255**2 / mse))
        assert row.psnr_y == pytest.approx(psnr_y(ref.rgb, dec.rgb))


def test_encode_analysis_with_peer_writes_consistent_csv_and_json(clip, tmp_path):
    a = analyze(clip / "clip.mkv", qualities=[2.0, 6.0], gop=2, compare=["x264"], with_msssim=False)
    tng = [s for s in a.summaries if s.codec == "tngvideo"]
    assert len(tng) == 2 and tng[0].kbps < tng[1].kbps
    assert "x264" in a.bd_rate_psnr
    assert all(r.estimated_bits is not None and abs(r.estimated_bits - r.actual_bits) <= 0.01 * r.actual_bits + 256
               for r in a.rows if r.codec == "tngvideo")
    write_outputs(a, tmp_path)
    with (tmp_path / "frames.csv").open() as f:
        csv_rows = list(csv.DictReader(f))
    js = json.loads((tmp_path / "analysis.json").read_text())["frames"]
    assert len(csv_rows) == len(js) == len(a.rows)
    for c, j in zip(csv_rows, js):
        assert int(c["bytes"]) == j["bytes"] and c["codec"] == j["codec"] and int(c["index"]) == j["index"]
        assert float(c["psnr_rgb"]) == pytest.approx(j["psnr_rgb"])
    html = (tmp_path / "report.html").read_text()
    assert "data:image/png;base64" in html and "BD-rate" in html and "gop_profile.png" in html


def test_gop_profile_averages_each_position_after_the_i_frames(clip):
    """Position 0 is the I-frames, position k the k-th frame after one; bytes by component and PSNR
    are the means over the frames at that position (here GOP 2: I P I P)."""
    a = analyze(clip / "clip.mkv", qualities=[], gop=2, tngv=clip / "clip.tngv")
    prof = gop_profile(a.rows)
    assert [(p["position"], p["frames"]) for p in prof] == [(0, 2), (1, 2)]
    for p, rows in zip(prof, (a.rows[0::2], a.rows[1::2])):
        assert p["psnr_rgb"] == pytest.approx(sum(r.psnr_rgb for r in rows) / 2)
        assert sum(p[f"bytes_{c}"] for c in ("intra", "motion", "residual", "header")) == pytest.approx(
            sum(r.bytes for r in rows) / 2)
    assert prof[0]["bytes_motion"] == 0 and prof[1]["bytes_intra"] == 0


def test_corrupt_file_fails_clearly(clip, tmp_path, capsys):
    data = bytearray((clip / "clip.tngv").read_bytes())
    with TngvReader(clip / "clip.tngv") as r:
        pos = data.find(next(r.packets()).data)  # the first frame's packet
    data[pos + 25] ^= 0xFF
    bad = tmp_path / "bad.tngv"
    bad.write_bytes(bytes(data))
    with pytest.raises(DecodeError, match="frame 0"):
        analyze(clip / "clip.mkv", qualities=[], gop=2, tngv=bad)
    assert main(["analyze", str(bad), "--reference", str(clip / "clip.mkv"), "-o", str(tmp_path / "o"), "-q"]) == EXIT_BAD_DATA
    assert main(["analyze", str(bad), "-o", str(tmp_path / "o2"), "-q"]) == EXIT_USAGE
    assert "reference" in capsys.readouterr().err


def test_a_part_of_a_file_is_scored_against_the_source_frames_at_its_times(clip, tmp_path):
    """Frames pair by timestamp, not position, and the rate comes from the coded file's own time
    span: the second GOP alone (frames 2-3) scores what the same frames score in the whole file,
    at the whole file's rate for those packets; the setting is the packets' quality."""
    from tngvideo.bitstream.container import write_tngv

    whole = analyze(clip / "clip.mkv", qualities=[], gop=2, tngv=clip / "clip.tngv")
    with TngvReader(clip / "clip.tngv") as r:
        header, packets = r.header, list(r.packets())
    tail = tmp_path / "tail.tngv"
    write_tngv(tail, header, [(p.data, p.pts, p.duration) for p in packets[2:]])
    part = analyze(clip / "clip.mkv", qualities=[], gop=2, tngv=tail)
    assert [r.psnr_rgb for r in part.rows] == pytest.approx([r.psnr_rgb for r in whole.rows[2:]])
    assert [r.pts for r in part.rows] == [p.pts for p in packets[2:]]
    (s,) = part.summaries
    span = (packets[-1].pts + packets[-1].duration - packets[2].pts) * header.tb
    assert s.setting == 3.0 and s.kbps == pytest.approx(tail.stat().st_size * 8 / 1000 / float(span))
