"""What the commands print besides their results: log lines on stderr (silenced by -q) and
progress bars."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager


def log(args, msg: str) -> None:
    if not getattr(args, "quiet", False):
        print(msg, file=sys.stderr)


def bar(args, total: int | None, desc: str):
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit="frame", disable=args.quiet, file=sys.stderr, dynamic_ncols=True)


@contextmanager
def progress(args, desc: str) -> Iterator[Callable[[int, int | None], None]]:
    """A `progress(frames_done, total)` callback for the API: the bar appears at the first call
    (which gives the total) and is closed when the block ends."""
    shown = []

    def report(n: int, total: int | None) -> None:
        if not shown:
            shown.append(bar(args, total, desc))
        if n:
            shown[0].update(n)

    try:
        yield report
    finally:
        if shown:
            shown[0].close()


def ranges(idx: list[int]) -> str:
    """[3, 4, 5, 9] -> '3-5, 9'"""
    out, i = [], 0
    while i < len(idx):
        j = i
        while j + 1 < len(idx) and idx[j + 1] == idx[j] + 1:
            j += 1
        out.append(str(idx[i]) if i == j else f"{idx[i]}-{idx[j]}")
        i = j + 1
    return ", ".join(out)
