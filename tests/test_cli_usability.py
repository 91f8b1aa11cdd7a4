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
