"""Streams that tngvideo does not code, carried packet for packet between containers (media I/O,
through PyAV: kept out of `bitstream/`, which is byte layouts only).

Audio and subtitle streams are copied with their codec parameters; chapters are copied; data
and attachment streams (and any stream the output format refuses) are named in a warning.
The `.tngv` file's own frame-packet stream is recognised by its handler name and never copied.
`write_video` copies through it directly; `write_tngv` takes `copy_streams(...)` as its
`copy_streams` argument.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Callable

import av

from tngvideo.bitstream.container import TNGV_DEMUXER, TNGV_HANDLER, TNGV_OPEN_OPTIONS

COPIED_TYPES = ("audio", "subtitle")


@dataclass
class Passthrough:
    source: av.container.InputContainer
    mapping: dict[int, av.stream.Stream] = field(default_factory=dict)  # source index -> output stream
    warnings: list[str] = field(default_factory=list)


def _describe(s) -> str:
    name = getattr(getattr(s, "codec_context", None), "name", None) or s.type
    return f"{s.type} stream {s.index} ({name})"


def add_passthrough(source_path: str, out: av.container.OutputContainer, *, tngv: bool = False,
                    drop: tuple[str, ...] = ()) -> Passthrough:
    """Open `source_path` and add an output stream for each of its audio and subtitle streams
    (except the types in `drop`, such as ("audio",) for -an, left out without a warning).
    `tngv`: the source is a `.tngv` file, opened as one (`TNGV_DEMUXER`, `TNGV_OPEN_OPTIONS`)."""
    src = av.open(str(source_path), format=TNGV_DEMUXER, options=dict(TNGV_OPEN_OPTIONS)) if tngv else av.open(str(source_path), options={"protocol_whitelist": "file"})
    pt = Passthrough(src)
    for s in src.streams:
        if s.type == "video":
            continue
        if s.metadata.get("handler_name") == TNGV_HANDLER:
            continue
        if s.type in drop:
            continue
        if s.type not in COPIED_TYPES:
            pt.warnings.append(f"{_describe(s)} not copied: {out.format.name} output carries only audio and subtitles")
            continue
        try:
            pt.mapping[s.index] = out.add_stream_from_template(s)
        except (ValueError, av.FFmpegError) as exc:
            pt.warnings.append(f"{_describe(s)} not copied: {exc}")
    chapters = src.chapters()
    if chapters:
        try:
            out.set_chapters(chapters)
        except (ValueError, av.FFmpegError, AttributeError) as exc:
            pt.warnings.append(f"{len(chapters)} chapter(s) not copied: {exc}")
    return pt


def mux_passthrough(pt: Passthrough, out: av.container.OutputContainer,
                    time_range: tuple[Fraction | None, Fraction | None] | None = None) -> None:
    """Copy the mapped streams' packets (only those starting in [t0, t1) seconds, if given; a
    bound of None is open)."""
    if pt.mapping:
        for p in pt.source.demux([pt.source.streams[i] for i in pt.mapping]):
            if p.dts is None:
                continue
            if time_range is not None and p.pts is not None:
                t = p.pts * p.time_base
                if (time_range[0] is not None and t < time_range[0]) or (time_range[1] is not None and t >= time_range[1]):
                    continue
            p.stream = pt.mapping[p.stream.index]
            out.mux(p)
    pt.source.close()


def copy_streams(source: str | Path, *, drop: tuple[str, ...] = (),
                 time_range: tuple[Fraction | None, Fraction | None] | None = None
                 ) -> Callable[[av.container.OutputContainer], Callable[[], list[str]]]:
    """For `write_tngv(..., copy_streams=...)`: given the output container, adds the audio and
    subtitle streams and chapters of `source` (without the types in `drop`) and returns the step
    that, after the frame packets, muxes their packets (those starting in `time_range`, if given)
    and returns the warnings about what could not be carried."""
    def add(out: av.container.OutputContainer) -> Callable[[], list[str]]:
        pt = add_passthrough(str(source), out, drop=drop)

        def mux() -> list[str]:
            mux_passthrough(pt, out, time_range)
            return pt.warnings
        return mux
    return add
