import json
import sys

import numpy as np
import pytest
from PIL import Image

from conftest import natural_image
from tngvideo.cli import EXIT_BAD_DATA, EXIT_CANNOT_WRITE, EXIT_NO_INPUT, EXIT_USAGE, main


@pytest.fixture()
def photo(tmp_path):
    p = tmp_path / "in.png"
    Image.fromarray(natural_image(70, 90)).save(p)
    return p


def test_encode_decode_info(photo, tmp_path, capsys):
    tng, png = tmp_path / "a.tng", tmp_path / "a.png"
    assert main(["image", "encode", str(photo), "-o", str(tng), "--quality", "3.5"]) == 0
    assert main(["image", "decode", str(tng), "-o", str(png)]) == 0
    out = np.array(Image.open(png))
    assert out.shape == (70, 90, 3)
    capsys.readouterr()
    assert main(["info", str(tng), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["width"] == 90 and info["height"] == 70 and info["quality"] == 3.5
    assert info["bytes"] == tng.stat().st_size
    assert info["bpp"] == pytest.approx(tng.stat().st_size * 8 / (70 * 90))


def test_refuses_to_overwrite_without_y(photo, tmp_path):
    tng = tmp_path / "a.tng"
    assert main(["image", "encode", str(photo), "-o", str(tng)]) == 0
    before = tng.read_bytes()
    assert main(["image", "encode", str(photo), "-o", str(tng), "--quality", "8"]) == EXIT_CANNOT_WRITE
    assert tng.read_bytes() == before
    assert main(["image", "encode", str(photo), "-o", str(tng), "--quality", "8", "-y"]) == 0
    assert tng.read_bytes() != before


@pytest.mark.parametrize(
    "make, code",
    [
        (lambda d: d / "missing.png", EXIT_NO_INPUT),
        (lambda d: (d / "text.png").write_text("not an image") and d / "text.png", EXIT_BAD_DATA),
    ],
)
def test_bad_image_input(tmp_path, capsys, make, code):
    src = make(tmp_path)
    out = tmp_path / "o.tng"
    assert main(["image", "encode", str(src), "-o", str(out)]) == code
    err = capsys.readouterr().err
    assert err.startswith("tngvideo: error:") and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert not out.exists() and not list(tmp_path.glob(".o.tng*"))


def test_corrupt_tng_leaves_no_output(photo, tmp_path, capsys):
    tng = tmp_path / "a.tng"
    main(["image", "encode", str(photo), "-o", str(tng)])
    data = bytearray(tng.read_bytes())
    data[len(data) // 2] ^= 0x10
    bad = tmp_path / "bad.tng"
    bad.write_bytes(bytes(data))
    out = tmp_path / "bad.png"
    assert main(["image", "decode", str(bad), "-o", str(out)]) == EXIT_BAD_DATA
    assert not out.exists() and not list(tmp_path.glob(".bad.png*"))
    assert "checksum" in capsys.readouterr().err


def test_bad_quality_and_unwritable_output(photo, tmp_path):
    assert main(["image", "encode", str(photo), "-o", str(tmp_path / "q.tng"), "--quality", "0"]) == EXIT_USAGE
    assert main(["image", "encode", str(photo), "-o", str(tmp_path / "no" / "dir.tng")]) == EXIT_CANNOT_WRITE
    assert main(["image", "encode", str(photo), "-o", str(tmp_path / "s.tng"), "--search", "-1"]) == EXIT_USAGE
    assert not (tmp_path / "s.tng").exists()


def test_searched_encode_decodes_with_the_plain_decoder(photo, tmp_path):
    tng, png = tmp_path / "s.tng", tmp_path / "s.png"
    assert main(["image", "encode", str(photo), "-o", str(tng), "--search", "3"]) == 0
    assert main(["image", "decode", str(tng), "-o", str(png)]) == 0
    assert np.array(Image.open(png)).shape == (70, 90, 3)


def test_demo_runs_on_the_embedded_sample(capsys):
    assert main(["demo", "--quality", "2"]) == 0
    out = capsys.readouterr().out
    assert "bit-exact" in out and "MISMATCH" not in out


def test_video_encode_info_decode(tmp_path, capsys):
    from conftest import make_clip
    from tngvideo.media import read_video

    make_clip(tmp_path / "clip.mkv", frames=5, size=(36, 52))
    tngv = tmp_path / "clip.tngv"
    assert main(["encode", str(tmp_path / "clip.mkv"), "-o", str(tngv), "--quality", "3", "--gop", "2", "--fixed-gop", "-q"]) == 0
    capsys.readouterr()
    assert main(["info", str(tngv), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["frames"] == 5 and info["iframes"] == 3 and info["bytes"] == tngv.stat().st_size
    out = tmp_path / "back.mkv"
    assert main(["decode", str(tngv), "-o", str(out), "-q"]) == 0
    assert len(list(read_video(out))) == 5
    pngs = tmp_path / "pngs"
    pngs.mkdir()
    assert main(["decode", str(tngv), "-o", str(pngs), "--start", "3", "--frames", "2", "-q"]) == 0
    assert sorted(p.name for p in pngs.iterdir()) == ["frame_000000.png", "frame_000001.png"]
    # info, --help and errors found before any model is needed load neither torch nor a model
    import subprocess

    probe = ("import sys; from tngvideo.cli import main; codes = [main(a) for a in "
             "[['info', sys.argv[1]], ['encode', sys.argv[2], '-o', sys.argv[3], '--gop', '0']]]; "
             "print(codes, 'torch' in sys.modules)")
    run = subprocess.run([sys.executable, "-c", probe, str(tngv), str(tmp_path / "clip.mkv"), str(tmp_path / "new.tngv")],
                         capture_output=True, text=True, timeout=120)
    assert run.stdout.strip().splitlines()[-1] == "[0, 2] False", run.stderr


def test_corrupt_video_stream_fails_cleanly(tmp_path, capsys):
    from conftest import make_clip
    from tngvideo.bitstream.container import TngvReader

    make_clip(tmp_path / "clip.mkv", frames=3, size=(20, 20))
    tngv = tmp_path / "clip.tngv"
    assert main(["encode", str(tmp_path / "clip.mkv"), "-o", str(tngv), "-q"]) == 0
    data = bytearray(tngv.read_bytes())
    with TngvReader(tngv) as r:
        pos = data.find(next(r.packets()).data)  # the first frame's packet
    data[pos + 30] ^= 0xFF
    bad = tmp_path / "bad.tngv"
    bad.write_bytes(bytes(data))
    out = tmp_path / "bad.mkv"
    assert main(["decode", str(bad), "-o", str(out), "-q"]) == EXIT_BAD_DATA
    assert not out.exists() and not list(tmp_path.glob(".bad.mkv*"))
    err = capsys.readouterr().err
    assert "frame 0" in err and "checksum" in err


def test_help_answers_without_loading_torch():
    """`tngvideo --help` and every sub-command's help come back without importing torch."""
    import subprocess
    import sys

    code = ("import sys\nfrom tngvideo.cli import main\n"
            "for argv in (['--help'], ['encode', '--help'], ['image', 'encode', '--help']):\n"
            "    try:\n        main(argv)\n    except SystemExit:\n        pass\n"
            "sys.exit(1 if 'torch' in sys.modules else 0)")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "--gop" in r.stdout and "--quality" in r.stdout


@pytest.mark.parametrize("preset", ["fast", "slow"])
def test_encode_presets_write_files_that_decode(tmp_path, preset):
    """--preset changes what the encoder searches, not the format: the file decodes to every frame."""
    from conftest import make_clip
    from tngvideo.bitstream.container import TngvReader
    from tngvideo.media import read_video

    make_clip(tmp_path / "in.mkv", pts=list(range(5)), size=(32, 48))
    out = tmp_path / "a.tngv"
    assert main(["encode", str(tmp_path / "in.mkv"), "-o", str(out), "-q", "--gop", "4", "--preset", preset]) == 0
    assert main(["decode", str(out), "-o", str(tmp_path / "out.mkv"), "-q"]) == 0
    with TngvReader(out) as r:
        assert r.header.frame_count == 5
    assert len(list(read_video(tmp_path / "out.mkv"))) == 5
    with pytest.raises(SystemExit) as exc:
        main(["encode", str(tmp_path / "in.mkv"), "-o", str(tmp_path / "b.tngv"), "--preset", "turbo"])
    assert exc.value.code == 2 and not (tmp_path / "b.tngv").exists()


def test_an_unknown_model_named_by_the_user_is_a_usage_error(tmp_path, capsys):
    """--model that is not a shipped model exits 2 with a message, before anything is encoded
    (UnknownModelError is a FileNotFoundError, which the output-error handler would take as exit 5)."""
    from conftest import make_clip

    make_clip(tmp_path / "clip.mkv", frames=2, size=(20, 20))
    assert main(["encode", str(tmp_path / "clip.mkv"), "-o", str(tmp_path / "o.tngv"), "--model", "bogus", "-q"]) == EXIT_USAGE
    assert "unknown video model" in capsys.readouterr().err and not (tmp_path / "o.tngv").exists()
