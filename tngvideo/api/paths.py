"""The checks on a workflow's input and output paths, done before any work: a missing input, an
output that cannot be written or would replace the input fail here with a message naming the file."""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path

from tngvideo.errors import InputNotFoundError, OutputError, UsageError


def shown(path: str | Path) -> str:
    """A file name as messages show it: never empty, and shortened when very long."""
    text = str(path)
    if not text:
        return "''"
    return text if len(text) <= 200 else text[:100] + "..." + text[-60:]


def check_input(path: str | Path, *, allow_dir: bool = False) -> Path:
    """`path` as a readable input: an existing regular file (or, with `allow_dir`, a folder)."""
    if not str(path):
        raise InputNotFoundError("the input file name is empty")
    p = Path(path)
    try:
        found, regular, folder = p.exists(), p.is_file(), p.is_dir()
    except OSError as exc:  # a name too long, or otherwise impossible
        raise InputNotFoundError(f"{shown(path)}: cannot be read ({exc.strerror or exc})") from None
    if not found:
        raise InputNotFoundError(f"{shown(path)}: no such file")
    if not regular and not (allow_dir and folder):
        raise InputNotFoundError(f"{shown(path)}: not a regular file")
    return p


def _same_file(a: Path, b: Path) -> bool:
    try:
        return a.exists() and b.exists() and os.path.samefile(a, b)
    except OSError:
        return False


def check_output(path: str | Path, overwrite: bool, *, src: Path | None = None) -> Path:
    """An output file that can be written. Never the input (not even with `overwrite`), never an
    existing non-regular file, and without `overwrite` never an existing file."""
    p = Path(path)
    try:
        exists, regular = os.path.lexists(p), p.is_file()
        parent_ok = p.parent.is_dir()
    except OSError as exc:
        raise OutputError(f"{shown(p)}: cannot be written ({exc.strerror or exc})") from None
    if src is not None and _same_file(p, src):
        raise OutputError(f"{shown(p)}: is the input file (refusing to overwrite it)")
    if exists and not overwrite:
        raise OutputError(f"{shown(p)}: already exists (use -y to overwrite)")
    if exists and not regular:
        raise OutputError(f"{shown(p)}: exists and is not a regular file")
    if not parent_ok:
        raise OutputError(f"{shown(p)}: directory {shown(p.parent)} does not exist")
    _check_writable(p.parent, p)
    return p


def _check_writable(folder: Path, name: Path) -> None:
    """Create and remove a file in `folder`: an unwritable output is found before any work."""
    try:
        with tempfile.TemporaryFile(dir=folder, prefix=".tngvideo-check-"):
            pass
    except OSError as exc:
        raise OutputError(f"{shown(name)}: cannot write in {shown(folder)} ({exc.strerror or exc})") from None


def check_frames_output(out: Path, overwrite: bool, count: int) -> None:
    """A numbered-image output (a folder, or a pattern with one %d): the pattern, the folder, and
    (without `overwrite`) that none of the `count` files it will write exists."""
    pattern = out / "frame_%06d.png" if out.is_dir() else out
    bare = pattern.name.replace("%%", "")
    if bare.count("%") != 1 or not re.search(r"%0?\d*d", bare):
        raise UsageError(f"{shown(out)}: a frame pattern needs exactly one %d (such as f_%05d.png)")
    if not pattern.parent.is_dir():
        raise OutputError(f"{shown(out)}: directory {shown(pattern.parent)} does not exist")
    _check_writable(pattern.parent, out)
    if not overwrite:
        taken = _taken_frame(pattern, count)
        if taken is not None:
            raise OutputError(f"{shown(pattern.parent / taken)}: already exists (use -y to overwrite)")


def _taken_frame(pattern: Path, count: int) -> str | None:
    """The first file in the pattern's folder that frames 0..count-1 would replace (one listing
    of the folder, however many frames)."""
    head, tail = re.split(r"%0?\d*d", pattern.name.replace("%%", "\0"), maxsplit=1)
    head, tail = head.replace("\0", "%"), tail.replace("\0", "%")
    for name in sorted(os.listdir(pattern.parent)):
        m = re.fullmatch(re.escape(head) + r"(\d+)" + re.escape(tail), name)
        if m and int(m.group(1)) < count and pattern.name % int(m.group(1)) == name:
            return name
    return None

