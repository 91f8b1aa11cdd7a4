"""The public Python API (`tngvideo.encode_file`, `decode_file`, `describe`, ...): the same files
as the command line, typed results, and clear error types for bad input."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

import tngvideo
from conftest import make_clip
from tngvideo.cli import main


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    d = tmp_path_factory.mktemp("api")
    make_clip(d / "clip.mkv", frames=4, size=(16, 24))
    return d / "clip.mkv"


def test_encode_then_decode_gives_the_command_lines_bytes_and_pixels(clip, tmp_path, capsys):
    options = {"preset": "fast", "p_offsets": (-1.0, 0.0)}
    s = tngvideo.encode_file(clip, tmp_path / "api.tngv", quality=3, gop=3, options=options)
    assert isinstance(s, tngvideo.EncodeSummary) and s.path == tmp_path / "api.tngv" and s.frames == 4
    assert main(["encode", str(clip), "-o", str(tmp_path / "cli.tngv"), "-q", "--quality", "3", "--gop", "3",
                 "--preset", "fast", "--p-offsets=-1,0"]) == 0
    assert (tmp_path / "api.tngv").read_bytes() == (tmp_path / "cli.tngv").read_bytes()
    assert s.bytes == (tmp_path / "api.tngv").stat().st_size

    (tmp_path / "api").mkdir()
    (tmp_path / "cli").mkdir()
    r = tngvideo.decode_file(tmp_path / "api.tngv", tmp_path / "api", start=1)
    assert isinstance(r, tngvideo.DecodeResult) and r.frames == 3 and not r.report.damaged
    assert main(["decode", str(tmp_path / "cli.tngv"), "-o", str(tmp_path / "cli"), "--start", "1", "-q"]) == 0
    api = sorted(p.name for p in (tmp_path / "api").iterdir())
    assert api == sorted(p.name for p in (tmp_path / "cli").iterdir()) and len(api) == 3
    assert all((tmp_path / "api" / n).read_bytes() == (tmp_path / "cli" / n).read_bytes() for n in api)


def test_decode_to_a_stream_writes_y4m_of_every_frame(clip, tmp_path):
    import io

    tngvideo.encode_file(clip, tmp_path / "a.tngv", gop=2)
    buf = io.BytesIO()
    r = tngvideo.decode_file(tmp_path / "a.tngv", buf)
    data = buf.getvalue()
    assert r.path is None and r.frames == 4
    assert data.startswith(b"YUV4MPEG2 W24 H16") and data.count(b"FRAME\n") == 4


def test_describe_gives_the_facts_of_info_json(clip, tmp_path, capsys):
    tngvideo.encode_file(clip, tmp_path / "a.tngv", gop=2)
    info = tngvideo.describe(tmp_path / "a.tngv")
    assert isinstance(info, tngvideo.VideoFileInfo)
    assert main(["info", str(tmp_path / "a.tngv"), "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == info.to_dict()
    types = [f.type for f in info.frame_list]
    assert info.frames == info.packets == 4 and types[0] == types[2] == "I" and info.iframes == types.count("I")
    assert info.i_frame_bytes + info.p_frame_bytes == sum(f.bytes for f in info.frame_list) < info.bytes


def test_image_round_trip_and_describe(tmp_path, capsys):
    from PIL import Image

    from conftest import natural_image

    Image.fromarray(natural_image(32, 40)).save(tmp_path / "p.png")
    e = tngvideo.encode_image(tmp_path / "p.png", quality=3)
    assert e.path == tmp_path / "p.tng" and e.bytes == e.path.stat().st_size and (e.width, e.height) == (40, 32)
    d = tngvideo.decode_image(e.path, tmp_path / "back.png")
    assert np.asarray(Image.open(d.path)).shape == (32, 40, 3)
    info = tngvideo.describe(e.path)
    assert isinstance(info, tngvideo.ImageFileInfo) and info.bytes == e.bytes and info.quality == 3
    assert main(["info", str(e.path), "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == info.to_dict()


def test_bad_input_raises_a_clear_error_type(clip, tmp_path):
    (tmp_path / "junk.tngv").write_bytes(b"\0junk" * 10)
    (tmp_path / "junk.tng").write_bytes(b"TNGI" + b"\1" * 40)
    (tmp_path / "taken.tngv").write_bytes(b"")
    with pytest.raises(tngvideo.InputNotFoundError, match="no such file"):
        tngvideo.encode_file(tmp_path / "missing.mkv")
    with pytest.raises(tngvideo.OutputError, match="already exists"):
        tngvideo.encode_file(clip, tmp_path / "taken.tngv")
    with pytest.raises(tngvideo.OutputError, match="is the input"):
        tngvideo.encode_file(clip, clip, overwrite=True)
    with pytest.raises(tngvideo.UsageError, match="--gop"):
        tngvideo.encode_file(clip, tmp_path / "x.tngv", gop=0)
    with pytest.raises(ValueError, match="motion estimators"):
        tngvideo.encode_file(clip, tmp_path / "x.tngv", options={"motion_estimators": ("nope",)})
    with pytest.raises(tngvideo.UsageError, match="has 4 frames"):
        tngvideo.encode_file(clip, tmp_path / "x.tngv", start=9)
    with pytest.raises(ValueError, match="not a .tngv file"):  # a BitstreamError
        tngvideo.describe(tmp_path / "junk.tngv")
    with pytest.raises(ValueError):
        tngvideo.decode_file(tmp_path / "junk.tngv", tmp_path / "x.mkv")
    with pytest.raises(tngvideo.BadInputError, match="junk.tng: corrupt"):
        tngvideo.decode_image(tmp_path / "junk.tng", tmp_path / "x.png")
    with pytest.raises(tngvideo.UsageError, match="unknown codec"):
        tngvideo.analyze(clip, tmp_path / "an", compare=["nope"])
    assert not (tmp_path / "x.tngv").exists() and not (tmp_path / "x.mkv").exists()


def test_import_tngvideo_stays_light_and_names_its_api():
    code = ("import sys, tngvideo; assert callable(tngvideo.describe) and callable(tngvideo.encode_file); "
            "print('torch' in sys.modules, 'av' in sys.modules)")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.stdout.strip() == "False False", r.stderr
    assert {"encode_file", "decode_file", "segment", "analyze", "describe"} <= set(tngvideo.__all__) <= set(dir(tngvideo))
    with pytest.raises(AttributeError):
        tngvideo.no_such_name
