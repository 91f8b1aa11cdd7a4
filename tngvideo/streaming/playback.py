"""Decode a rendition of an HLS ladder (or a media playlist) segment by segment."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path
from typing import Callable, Iterator

from tngvideo.bitstream.container import JoinedFiles, SequenceHeader, TngvReader
from tngvideo.errors import DecodeError
from tngvideo.media import VideoFrame, write_video
from tngvideo.streaming.playlist import segment_entries
from tngvideo.videofile import DecodeReport, DecodeResult, decode_frames


def playlist_frames(path: str | Path, *, rendition: int = 0, start: int = 0, frames: int | None = None,
                    on_error: str = "stop", report: DecodeReport | None = None,
                    ) -> tuple[SequenceHeader, int, Iterator[VideoFrame]]:
    """(first segment's header, total frame count, frames [start, start + frames)) of a rendition.
    `on_error` and `report` work as in `decode_frames`, with indices counted over the rendition."""
    report = report if report is not None else DecodeReport()
    entries = [(p, init) for p, _, init in segment_entries(path, rendition)]
    segs = [p for p, _ in entries]
    headers = []
    for p, init in entries:
        for f in (init, p):
            if f is not None and not f.is_file():
                raise DecodeError(f"segment {f} is missing")
        with TngvReader(segment_source(p, init)) as r:
            headers.append(r.header)
    first = headers[0]
    for p, h in zip(segs, headers):
        if (h.width, h.height, h.time_base) != (first.width, first.height, first.time_base):
            raise DecodeError(f"segment {p.name}: size or time base differs from the first segment")
    total = sum(h.frame_count for h in headers)
    end = total if frames is None else min(total, start + frames)

    def gen() -> Iterator[VideoFrame]:
        offset = 0
        for (p, init), h in zip(entries, headers):
            lo, hi = max(start - offset, 0), min(end - offset, h.frame_count)
            if lo < hi:
                local = DecodeReport()
                _, it = decode_frames(segment_source(p, init), start=lo, frames=hi - lo, on_error=on_error,
                                      report=local)
                try:
                    yield from it
                except DecodeError as exc:
                    raise DecodeError(f"segment {p.name}: {exc}") from None
                report.concealed.extend(offset + i for i in local.concealed)
                report.missing += local.missing
            offset += h.frame_count
            if offset >= end:
                break

    return first, max(0, end - start), gen()


def segment_source(segment: Path, init: Path | None):
    """What TngvReader opens for a segment: the file itself, or its init segment followed by it."""
    return segment if init is None else JoinedFiles(init, segment)


def decode_playlist(path: str | Path, dst: str | Path, *, rendition: int = 0, start: int = 0,
                    frames: int | None = None, on_error: str = "stop",
                    progress: Callable[[int], None] | None = None, overwrite: bool = True) -> DecodeResult:
    report = DecodeReport()
    header, _, it = playlist_frames(path, rendition=rendition, start=start, frames=frames, on_error=on_error,
                                    report=report)

    def counted():
        for f in it:
            if progress:
                progress(1)
            yield f

    n, warnings = write_video(dst, counted(), width=header.width, height=header.height,
                              time_base=Fraction(*header.time_base), frame_rate=Fraction(*header.frame_rate),
                              colour=header.colour, rotation=header.rotation, overwrite=overwrite)
    return DecodeResult(n, report, warnings, Path(dst))
