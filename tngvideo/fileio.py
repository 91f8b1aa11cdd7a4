"""Atomic output: write to a temporary file (or folder) beside the target, then rename.

Without `overwrite`, the target is claimed by exclusive creation at the moment of the rename, so
of two writers of one new file only the first succeeds (the other gets FileExistsError)."""

from __future__ import annotations

import errno
import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator


def place(src: Path, dst: Path, *, overwrite: bool = True) -> None:
    """Rename `src` to `dst`; without `overwrite`, only if `dst` does not exist (exclusive creation)."""
    if not overwrite:
        try:
            os.link(src, dst)  # atomic, and refuses an existing dst: of two writers only the first succeeds
        except FileExistsError:
            raise FileExistsError(errno.EEXIST, "already exists (use -y to overwrite)", str(dst)) from None
        os.unlink(src)
        return
    os.replace(src, dst)


@contextmanager
def atomic_output(path: str | os.PathLike, *, overwrite: bool = True) -> Iterator[Path]:
    """Yield a temporary path; on success it replaces `path` (without `overwrite`: only if there is
    no `path`), on failure or interruption it is removed."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part" + path.suffix)
    os.close(fd)
    try:
        yield Path(tmp)
        os.chmod(tmp, 0o644)
        place(Path(tmp), path, overwrite=overwrite)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_bytes(path: str | os.PathLike, data: bytes, *, overwrite: bool = True) -> None:
    with atomic_output(path, overwrite=overwrite) as tmp:
        tmp.write_bytes(data)


@contextmanager
def atomic_files(folder: str | os.PathLike, *, overwrite: bool = True) -> Iterator[Path]:
    """Yield a hidden temporary folder inside `folder`; on success every file written there moves
    to `folder` under its name (without `overwrite`, none moves if any name is taken), on failure
    or interruption nothing moves. The temporary folder is always removed."""
    folder = Path(folder)
    tmp = Path(tempfile.mkdtemp(dir=folder, prefix=".tngvideo-", suffix=".partial"))
    try:
        yield tmp
        names = sorted(p.name for p in tmp.iterdir())
        taken = [n for n in names if os.path.lexists(folder / n)]
        if taken and not overwrite:
            raise FileExistsError(errno.EEXIST, "already exists (use -y to overwrite)", str(folder / taken[0]))
        moved: list[Path] = []
        try:
            for n in names:
                place(tmp / n, folder / n, overwrite=overwrite)
                moved.append(folder / n)
        except BaseException:
            if not overwrite:  # what this call created; with overwrite the old files are gone anyway
                for p in moved:
                    p.unlink(missing_ok=True)
            raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


@contextmanager
def atomic_folder(path: str | os.PathLike) -> Iterator[Path]:
    """Yield an empty folder `<path>.partial`; on success it is renamed to `path` (which must not
    exist), on failure it is removed, so the folder appears complete or not at all."""
    path = Path(path)
    tmp = path.with_name(path.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        yield tmp
        tmp.rename(path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
