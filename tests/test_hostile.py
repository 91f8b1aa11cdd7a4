"""Hostile input (issue 34): crafted playlists, size claims, model names, header types, outputs
and exit codes. Each test states a property a hostile user must not be able to break."""

from __future__ import annotations

import json
import os
import shutil
import socket
import threading
import time
from pathlib import Path

import pytest

from conftest import make_clip
from tngvideo.cli import main


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


class _Listener:
    """A TCP socket on 127.0.0.1 that records (and drops) every connection made to it."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.connections = 0
        self._stop = False
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self):
        while not self._stop:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            self.connections += 1
            conn.close()

    def close(self):
        self._stop = True
        self._thread.join()
        self.sock.close()


# ---------------------------------------------------------------- 1. playlists stay in their folder

def test_a_playlist_never_reaches_the_network_or_a_file_outside_its_folder(clip, tmp_path, monkeypatch, capsys):
    outside = tmp_path / "outside"
    outside.mkdir()
    shutil.copy(clip, outside / "secret.tngv")
    hls = tmp_path / "hls"
    hls.mkdir()
    listener = _Listener()
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
