"""Hostile input (issue 34): crafted playlists, size claims, model names, header types, outputs
and exit codes. Each test states a property a hostile user must not be able to break."""

from __future__ import annotations

import functools
import json
import os
import shutil
import threading
import time
from pathlib import Path

import pytest

from conftest import make_clip
from tngvideo.cli import main
from tngvideo.fuzzing import LocalListener


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    """A small 6-frame .tngv (GOP 3) made with the shipped models."""
    from tngvideo.videofile import encode_file

    d = tmp_path_factory.mktemp("clip")
    make_clip(d / "in.mkv", frames=6, size=(32, 48))
    encode_file(d / "in.mkv", d / "clip.tngv", quality=3.0, gop=3)
    return d / "clip.tngv"


def _one_line_error(err: str) -> None:
    assert err.startswith("tngvideo: error:") and err.count("\n") == 1 and "Traceback" not in err, err
    assert not err.startswith("tngvideo: error: :"), err  # a message never names an empty file


def _playlist(folder: Path, *uris: str) -> Path:
    lines = ["#EXTM3U", "#EXT-X-VERSION:7", "#EXT-X-TARGETDURATION:1"]
    for u in uris:
        lines += ["#EXTINF:0.240000,", u]
    (folder / "index.m3u8").write_text("\n".join(lines + ["#EXT-X-ENDLIST"]) + "\n")
    return folder / "index.m3u8"


# ---------------------------------------------------------------- 1. playlists stay in their folder

def test_a_playlist_never_reaches_the_network_or_a_file_outside_its_folder(clip, tmp_path, monkeypatch, capsys):
    outside = tmp_path / "outside"
    outside.mkdir()
    shutil.copy(clip, outside / "secret.tngv")
    hls = tmp_path / "hls"
    hls.mkdir()
    listener = LocalListener()
    try:
        attacks = {
            "http": f"http:127.0.0.1:{listener.port}/x.tngv",  # FFmpeg reads `http:host/path` as a URL
            "file-uri": f"file:{outside / 'secret.tngv'}",
            "link": "link.tngv",  # a symbolic link to a file outside
            "dir-link": "sub/secret.tngv",  # a symbolic link to a folder outside
            "nested": "seg.m3u8",  # an HLS list where a segment should be, naming a file outside
            "dotdot": "../outside/secret.tngv",
        }
        for uri in attacks.values():  # decoys at the literal paths, so only the check can stop them
            decoy = hls / uri
            if not decoy.parent.exists() and "sub" not in uri and ".." not in uri:
                decoy.parent.mkdir(parents=True)
            if uri.startswith(("http:", "file:")):
                shutil.copy(clip, decoy)
        (hls / "link.tngv").symlink_to(outside / "secret.tngv")
        (hls / "sub").symlink_to(outside)
        (hls / "seg.m3u8").write_text(f"#EXTM3U\n#EXT-X-TARGETDURATION:1\n#EXTINF:1,\n{outside / 'secret.tngv'}\n"
                                      "#EXT-X-ENDLIST\n")
        monkeypatch.chdir(hls)  # `decode index.m3u8` from inside the folder, as the attack needs
        for name, uri in attacks.items():
            _playlist(hls, uri)
            capsys.readouterr()
            code = main(["decode", "index.m3u8", "-o", str(tmp_path / f"{name}.mkv"), "-q"])
            err = capsys.readouterr().err
            assert code == 3, (name, err)
            _one_line_error(err)
            assert not (tmp_path / f"{name}.mkv").exists()
            time.sleep(0.3)
            assert listener.connections == 0, name
    finally:
        listener.close()


def test_a_tngv_reader_opens_mp4_only_never_a_list_naming_other_files(tmp_path):
    """A segment holding an HLS list must not make FFmpeg open what the list names: here a named
    pipe, whose writer unblocks only if something opens it for reading."""
    from tngvideo.bitstream import BitstreamError
    from tngvideo.bitstream.container import TngvReader

    elsewhere = tmp_path / "elsewhere.mp4"
    os.mkfifo(elsewhere)
    opened = []

    def writer():
        fd = os.open(elsewhere, os.O_WRONLY)  # blocks until a reader opens the pipe
        opened.append(True)
        os.close(fd)

    threading.Thread(target=writer, daemon=True).start()
    seg = tmp_path / "seg.m3u8"  # what a playlist may name as a segment
    seg.write_text(f"#EXTM3U\n#EXT-X-TARGETDURATION:1\n#EXTINF:1,\n{elsewhere}\n#EXT-X-ENDLIST\n")
    with pytest.raises(BitstreamError):
        TngvReader(seg)
    time.sleep(0.3)
    was_opened = bool(opened)
    if not was_opened:  # release the writer
        os.close(os.open(elsewhere, os.O_RDONLY | os.O_NONBLOCK))
    assert not was_opened


def test_a_segment_inside_the_folder_still_decodes(clip, tmp_path, capsys):
    (tmp_path / "r0").mkdir()
    shutil.copy(clip, tmp_path / "r0" / "s 1.tngv")
    pl = _playlist(tmp_path, "r0/../r0/s 1.tngv")
    assert main(["decode", str(pl), "-o", str(tmp_path / "out.mkv"), "-q"]) == 0


def test_a_huge_playlist_is_refused_quickly(tmp_path, capsys):
    pl = tmp_path / "big.m3u8"
    with pl.open("w") as f:
        f.write("#EXTM3U\n#EXT-X-TARGETDURATION:1\n")
        f.write("#EXTINF:1,\na.tngv\n" * 1_000_000)
    t = time.perf_counter()
    assert main(["decode", str(pl), "-o", str(tmp_path / "out.mkv"), "-q"]) == 3
    assert time.perf_counter() - t < 2.0
    _one_line_error(capsys.readouterr().err)
    short = tmp_path / "many.m3u8"  # small in bytes but with too many entries
    short.write_text("#EXTM3U\n" + "a\n" * 30_000)
    assert main(["decode", str(short), "-o", str(tmp_path / "out.mkv"), "-q"]) == 3
    assert "entries" in capsys.readouterr().err


# ---------------------------------------------------------------- 2. bombs refused before allocation

def _no_network(monkeypatch):
    """Make any run of the entropy model's networks (the first thing a decode runs) fail the test."""
    from tngvideo.latent.codec import LatentCodec

    def boom(*a, **k):
        raise AssertionError("a network ran")

    monkeypatch.setattr(LatentCodec, "_side", boom)


@functools.cache
def _real_streams() -> tuple[bytes, bytes, int]:
    """The coded streams of a real 64x64 picture: what a crafted header can claim more of."""
    from conftest import natural_image
    from tngvideo.bitstream import unpack_image
    from tngvideo.image.codec import ImageCodec

    f = unpack_image(ImageCodec.from_name().compress(natural_image(64, 64), 4.0))
    return f.hyper, f.latent, f.symbols_crc


def _claiming_tng(width: int, height: int, *, model: str | None = None) -> bytes:
    """A .tng of a real 64x64 picture's streams whose header claims width x height."""
    from tngvideo.bitstream.tng_file import MAGIC, VERSION, _FIXED
    import struct
    import zlib

    import hashlib

    from tngvideo.image.registry import DEFAULT_MODEL, weights_path

    weights_hash = hashlib.sha256(weights_path().read_bytes()).digest()[:8]
    name = (model if model is not None else DEFAULT_MODEL).encode()
    hyper, latent, crc = _real_streams()
    head = MAGIC + bytes([VERSION, len(name)]) + name + _FIXED.pack(weights_hash, width, height, 400,
                                                                      len(hyper), len(latent), crc)
    body = head + hyper + latent
    return body + struct.pack("<I", zlib.crc32(body))


@pytest.mark.parametrize("size", [(4096, 2304), (2304, 4096), (8192, 4352), (16384, 64)])
def test_a_tiny_tng_claiming_a_huge_picture_is_refused_before_any_network(size, tmp_path, monkeypatch, capsys):
    data = _claiming_tng(*size)
    assert len(data) < 320
    (tmp_path / "bomb.tng").write_bytes(data)
    _no_network(monkeypatch)
    t = time.perf_counter()
    assert main(["image", "decode", str(tmp_path / "bomb.tng"), "-o", str(tmp_path / "out.png"), "-q"]) == 3
    assert time.perf_counter() - t < 10
    _one_line_error(capsys.readouterr().err)
    assert not (tmp_path / "out.png").exists()


def test_a_tngv_claiming_a_huge_picture_is_refused_before_any_network(clip, tmp_path, monkeypatch, capsys):
    from tngvideo.bitstream.container import TngvReader, write_tngv

    with TngvReader(clip) as r:
        header, packets = r.header, [(p.data, p.pts, p.duration) for p in r.packets()]
    header.width, header.height = 4096, 2304
    write_tngv(str(tmp_path / "bomb.tngv"), header, packets)
    assert (tmp_path / "bomb.tngv").stat().st_size < 8000
    _no_network(monkeypatch)
    assert main(["decode", str(tmp_path / "bomb.tngv"), "-o", str(tmp_path / "out.mkv"), "-q"]) == 3
    _one_line_error(capsys.readouterr().err)
    assert not (tmp_path / "out.mkv").exists()


def test_a_decode_needing_more_memory_than_available_is_refused_before_it_starts(tmp_path, monkeypatch, capsys):
    from conftest import natural_image
    from tngvideo.image.codec import ImageCodec

    (tmp_path / "a.tng").write_bytes(ImageCodec.from_name().compress(natural_image(512, 512), 2.0))
    monkeypatch.setenv("TNGVIDEO_MEMORY_LIMIT", "0.2G")
    _no_network(monkeypatch)
    assert main(["image", "decode", str(tmp_path / "a.tng"), "-o", str(tmp_path / "a.png"), "-q"]) == 3
    err = capsys.readouterr().err
    _one_line_error(err)
    assert "GB of memory" in err


@pytest.mark.parametrize("size", [(20000, 64), (5000, 5000)])
def test_image_encode_checks_the_size_before_reading_or_encoding(size, tmp_path, monkeypatch, capsys):
    from PIL import Image

    import tngvideo.media

    Image.new("RGB", size).save(tmp_path / "big.png")

    def boom(*a, **k):
        raise AssertionError("pixels were read")

    monkeypatch.setattr(tngvideo.media, "read_image", boom)
    assert main(["image", "encode", str(tmp_path / "big.png"), "-o", str(tmp_path / "big.tng"), "-q"]) == 3
    _one_line_error(capsys.readouterr().err)
    assert not (tmp_path / "big.tng").exists()


# ---------------------------------------------------------------- 3. model names are names, never paths

def test_a_model_name_in_a_tng_header_is_never_used_as_a_path(tiny_weights, tmp_path, monkeypatch, capsys):
    import tngvideo.image.codec
    from tngvideo.image.registry import WEIGHTS_DIR

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    shutil.copy(tiny_weights, elsewhere / "x.safetensors")
    escape = os.path.relpath(elsewhere / "x", WEIGHTS_DIR)
    assert escape.startswith("..")

    def boom(*a, **k):
        raise AssertionError("weights were opened")

    names = (escape, str(elsewhere / "x"), "", "no-such-model", "tng-image-12/../tng-image-12", "a\nb")
    files = [_claiming_tng(64, 64, model=name) for name in names]
    monkeypatch.setattr(tngvideo.image.codec, "load_weights", boom)
    for name, data in zip(names, files):
        (tmp_path / "a.tng").write_bytes(data)
        assert main(["image", "decode", str(tmp_path / "a.tng"), "-o", str(tmp_path / "a.png"), "-q"]) == 3, name
        err = capsys.readouterr().err
        _one_line_error(err)
        assert "unknown model" in err


def test_a_video_model_name_in_a_tngv_header_is_never_used_as_a_path(clip, tiny_weights, tmp_path, monkeypatch,
                                                                    capsys):
    import tngvideo.video.registry
    from tngvideo.bitstream.container import TngvReader, write_tngv

    shutil.copy(tiny_weights, tmp_path / "x.safetensors")
    escape = os.path.relpath(tmp_path / "x", tngvideo.video.registry.WEIGHTS_DIR)

    def boom(*a, **k):
        raise AssertionError("weights were opened")

    monkeypatch.setattr(tngvideo.video.registry, "load_video_weights", boom)
    with TngvReader(clip) as r:
        header, packets = r.header, [(p.data, p.pts, p.duration) for p in r.packets()]
    for i, name in enumerate([f"{escape}:abc", "nope", ""]):
        header.models = {**header.models, "video": name}
        write_tngv(str(tmp_path / f"{i}.tngv"), header, packets)
        assert main(["decode", str(tmp_path / f"{i}.tngv"), "-o", str(tmp_path / f"{i}.mkv"), "-q"]) == 3
        err = capsys.readouterr().err
        _one_line_error(err)
        assert "model" in err


def test_an_unknown_model_option_is_a_usage_error(tmp_path, capsys):
    from PIL import Image

    Image.new("RGB", (16, 16)).save(tmp_path / "a.png")
    assert main(["image", "encode", str(tmp_path / "a.png"), "--model", "../x", "-q"]) == 2
    _one_line_error(capsys.readouterr().err)


# ---------------------------------------------------------------- 4. sequence headers validated by type

BAD_FIELDS = {
    "frame_rate zero denominator": {"frame_rate": [1, 0]},
    "width string": {"width": "176"},
    "width null": {"width": None},
    "width float": {"width": 176.5},
    "width bool": {"width": True},
    "frame_count string": {"frame_count": "6"},
    "gop string": {"gop": "4"},
    "huge frame_rate": {"frame_rate": [10**40, 1]},
    "huge iframe_pts": {"iframe_pts": [10**40, 3]},
    "huge colour": {"colour": {"color_primaries": 10**40}},
    "colour string": {"colour": "bt709"},
    "models list": {"models": ["x"]},
    "models values": {"models": {"video": 7}},
    "iframes strings": {"iframes": ["0", "3"]},
    "time_base one number": {"time_base": [25]},
    "rotation string": {"rotation": "90"},
    "width missing": {"width": KeyError},
    "version string": {"version": "1"},
}


def _header_files(clip, tmp_path) -> dict[str, Path]:
    from tngvideo.bitstream.container import TngvReader
    from tngvideo.fuzzing import mux_raw

    with TngvReader(clip) as r:
        good = json.loads(r.header.to_json())
        packets = [(p.data, p.pts, p.duration) for p in r.packets()]
    out = {}
    for name, change in BAD_FIELDS.items():
        d = {k: v for k, v in {**good, **change}.items() if v is not KeyError}
        out[name] = json.dumps(d)
    out["nested 100,000 deep"] = "[" * 100_000 + "]" * 100_000
    out["number of 5,000 digits"] = json.dumps(good)[:-1] + ',"x":' + "9" * 5000 + "}"
    paths = {}
    for i, (name, text) in enumerate(out.items()):
        paths[name] = tmp_path / f"h{i}.tngv"
        mux_raw(paths[name], text, packets)
    return paths


def test_sequence_header_fields_of_the_wrong_type_give_a_clear_error_in_decode_and_info(clip, tmp_path, capsys):
    for name, path in _header_files(clip, tmp_path).items():
        out = tmp_path / f"{path.stem}.mkv"
        assert main(["decode", str(path), "-o", str(out), "-q"]) == 3, name
        _one_line_error(capsys.readouterr().err)
        assert not out.exists()
        assert main(["info", str(path)]) == 3, name
        _one_line_error(capsys.readouterr().err)


# ---------------------------------------------------------------- 5. outputs

def _files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


@pytest.mark.parametrize("pattern", [None, "p_%05d.png"])
def test_numbered_frames_never_overwrite_without_y(pattern, clip, tmp_path, capsys):
    folder = tmp_path / "frames"
    folder.mkdir()
    out = folder if pattern is None else folder / pattern
    existing = folder / ("frame_000002.png" if pattern is None else "p_00002.png")
    existing.write_bytes(b"keep")
    assert main(["decode", str(clip), "-o", str(out), "-q"]) == 5
    _one_line_error(capsys.readouterr().err)
    assert existing.read_bytes() == b"keep" and _files(folder) == [existing.name]
    assert main(["decode", str(clip), "-o", str(out), "-q", "-y"]) == 0
    assert len(_files(folder)) == 6 and existing.read_bytes() != b"keep"


def _damaged(clip: Path, tmp_path: Path, index: int) -> Path:
    from tngvideo.bitstream.container import TngvReader

    data = bytearray(clip.read_bytes())
    with TngvReader(clip) as r:
        pk = [p.data for p in r.packets()][index]
    at = bytes(data).find(pk)
    data[at + len(pk) // 2] ^= 0x40
    (tmp_path / "bad.tngv").write_bytes(bytes(data))
    return tmp_path / "bad.tngv"


@pytest.mark.parametrize("pattern", [None, "p_%05d.png"])
def test_a_decode_that_fails_at_the_last_frame_leaves_no_frames_behind(pattern, clip, tmp_path, capsys):
    bad = _damaged(clip, tmp_path, 5)
    folder = tmp_path / "frames"
    folder.mkdir()
    assert main(["decode", str(bad), "-o", str(folder if pattern is None else folder / pattern), "-q"]) == 3
    assert "frame 5" in capsys.readouterr().err
    assert _files(folder) == []


@pytest.mark.parametrize("how", ["SIGTERM", "SIGHUP", "KeyboardInterrupt"])
@pytest.mark.parametrize("target", ["out.mkv", "frames"])
def test_an_interrupted_decode_leaves_nothing_behind(how, target, clip, tmp_path, monkeypatch):
    import signal

    import tngvideo.video.sequence

    real = tngvideo.video.sequence.VideoDecoder

    class Interrupted(real):
        calls = 0

        def decode(self, data):
            Interrupted.calls += 1
            if Interrupted.calls == 3:
                if how == "KeyboardInterrupt":
                    raise KeyboardInterrupt
                os.kill(os.getpid(), getattr(signal, how))
            return super().decode(data)

    monkeypatch.setattr(tngvideo.video.sequence, "VideoDecoder", Interrupted)
    handlers = signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGHUP)
    work = tmp_path / "work"
    work.mkdir()
    out = work / target
    if target == "frames":
        out.mkdir()
    code = main(["decode", str(clip), "-o", str(out), "-q"])
    assert code == {"SIGTERM": 143, "SIGHUP": 129, "KeyboardInterrupt": 130}[how]
    assert _files(work) == (["frames"] if target == "frames" else [])
    if target == "frames":
        assert _files(out) == []
    assert (signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGHUP)) == handlers  # restored


@pytest.mark.parametrize("pattern", ["f_%(x)s.png", "f_%d_%d.png", "f_%s.png", "f_%.png", "f_%5.2f.png"])
def test_a_bad_frame_pattern_is_a_usage_error(pattern, clip, tmp_path, capsys):
    assert main(["decode", str(clip), "-o", str(tmp_path / pattern), "-q"]) == 2
    _one_line_error(capsys.readouterr().err)
    assert _files(tmp_path) == []


def test_the_output_is_never_the_input_even_with_y(tmp_path, capsys, monkeypatch):
    from PIL import Image

    import tngvideo.videofile

    Image.new("RGB", (16, 16), (200, 10, 10)).save(tmp_path / "a.png")
    before = (tmp_path / "a.png").read_bytes()
    assert main(["image", "encode", str(tmp_path / "a.png"), "-o", str(tmp_path / "a.png"), "-y", "-q"]) == 5
    _one_line_error(capsys.readouterr().err)
    assert (tmp_path / "a.png").read_bytes() == before
    make_clip(tmp_path / "in.mkv", frames=2, size=(16, 16))
    monkeypatch.setattr(tngvideo.videofile, "encode_file", None)
    assert main(["encode", str(tmp_path / "in.mkv"), "-o", str(tmp_path / "in.mkv"), "-y", "-q"]) == 5
    _one_line_error(capsys.readouterr().err)


def test_of_two_writers_of_one_new_output_only_the_first_succeeds(tmp_path, capsys, monkeypatch):
    """Without -y the output is claimed by exclusive creation: if another process creates it
    while this one encodes, this one fails and leaves the other's file alone."""
    from PIL import Image

    from tngvideo.image.codec import ImageCodec

    Image.new("RGB", (16, 16), (10, 200, 10)).save(tmp_path / "a.png")
    out = tmp_path / "a.tng"
    real = ImageCodec.compress_with_info

    def racing(self, *a, **k):
        res = real(self, *a, **k)
        out.write_bytes(b"the other encode")
        return res

    monkeypatch.setattr(ImageCodec, "compress_with_info", racing)
    assert main(["image", "encode", str(tmp_path / "a.png"), "-o", str(out), "-q"]) == 5
    err = capsys.readouterr().err
    _one_line_error(err)
    assert "already exists" in err and str(out) in err
    assert out.read_bytes() == b"the other encode"
    assert _files(tmp_path) == ["a.png", "a.tng"]


def test_an_unwritable_output_folder_is_found_before_encoding(tmp_path, capsys, monkeypatch):
    import tngvideo.videofile

    make_clip(tmp_path / "in.mkv", frames=2, size=(16, 16))

    def boom(*a, **k):
        raise AssertionError("encoding started")

    monkeypatch.setattr(tngvideo.videofile, "encode_file", boom)
    assert main(["encode", str(tmp_path / "in.mkv"), "-o", "/proc/tngvideo-out.tngv", "-q"]) == 5
    _one_line_error(capsys.readouterr().err)


def test_start_beyond_the_last_frame_is_an_error(clip, tmp_path, capsys):
    assert main(["decode", str(clip), "--start", "100", "-o", str(tmp_path / "x.mkv"), "-q"]) == 2
    err = capsys.readouterr().err
    _one_line_error(err)
    assert "6 frames" in err
    assert not (tmp_path / "x.mkv").exists()


def test_batch_never_maps_two_inputs_onto_one_output():
    from tngvideo.parallel import _output_names

    inputs = [Path("d1/a.mkv"), Path("d2/a.mkv"), Path("a-1.mkv"), Path("A.mp4"), Path("a-1-1.mkv")]
    names = [p.name for p in _output_names(inputs, Path("out"))]
    assert len({n.casefold() for n in names}) == len(inputs), names


# ---------------------------------------------------------------- 6. exit codes and messages

def test_exit_codes_follow_the_readme_table(clip, tmp_path, capsys):
    long_name = str(tmp_path / ("x" * 5000 + ".tngv"))
    cases = [
        (["decode", long_name, "-o", str(tmp_path / "a.mkv")], 4),
        (["decode", "http://127.0.0.1:9/x.tngv", "-o", str(tmp_path / "a.mkv")], 4),
        (["decode", "", "-o", str(tmp_path / "a.mkv")], 4),
        (["decode", str(clip), "-o", long_name[:-5] + ".mkv"], 5),
        (["decode", str(clip), "-o", "http://127.0.0.1:9/out.mkv"], 5),
        (["decode", str(clip), "-o", str(tmp_path / "out.avi")], 2),
        (["decode", str(clip), "-o", "/dev/null"], 5),
        (["decode", str(clip), "-o", "/dev/null", "-y"], 5),
        (["decode", str(clip), "-o", str(tmp_path / "missing" / "a.mkv")], 5),
    ]
    for argv, code in cases:
        assert main(argv + ["-q"]) == code, argv[:4]
        _one_line_error(capsys.readouterr().err)
    assert _files(tmp_path) == []


def test_an_io_error_without_a_file_name_names_the_output(clip, tmp_path, capsys, monkeypatch):
    import errno

    import tngvideo.videofile

    def full(*a, **k):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(tngvideo.videofile, "write_video", full)
    out = tmp_path / "a.mkv"
    assert main(["decode", str(clip), "-o", str(out), "-q"]) == 5
    err = capsys.readouterr().err
    _one_line_error(err)
    assert str(out) in err


# ---------------------------------------------------------------- the fuzzer's structured attacks

def test_fuzz_attack_sample_has_no_crash_escape_or_connection(tmp_path):
    from tngvideo.fuzzing import ATTACKS, BAD, cases, make_seeds, run

    seeds, donors = make_seeds(tmp_path)
    kinds = {a for k in ATTACKS.values() for a in k}
    sample = [c for c in cases(400, seeds, donors, seed=5) if c.mutation in kinds][:70]
    covered = {f"{c.kind}:{c.mutation}" for c in sample}
    assert all(len(c.data) > 500 for c in sample if c.kind == "tngv")  # real containers, crafted headers
    assert {"tng:bigclaim", "tng:names", "tngv:bigclaim", "tngv:types", "tngv:names", "m3u8:protocol",
            "m3u8:links"} <= covered
    rep = run(iter(sample), main=main, timeout=60.0)
    assert rep.cases == len(sample)
    assert not any(rep.outcomes[o] for o in BAD), rep.failures
