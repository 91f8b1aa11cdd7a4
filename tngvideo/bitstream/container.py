"""The `.tngv` container: ISO BMFF (MP4) written and read through PyAV.

One data stream (`bin_data`) carries one packet per frame, with pts/duration in the source's
time base. A JSON sequence header sits in the container's `comment` tag. Audio streams of the
source, its subtitle streams and chapters are copied into the same file packet for packet.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Iterator

import av

from tngvideo.bitstream.errors import BitstreamError
from tngvideo.bitstream.passthrough import TNGV_DEMUXER, TNGV_OPEN_OPTIONS
from tngvideo.bitstream.passthrough import TNGV_HANDLER as HANDLER
from tngvideo.bitstream.passthrough import add_passthrough, mux_passthrough
from tngvideo.bitstream.tng_file import check_size

FORMAT = "tngv"
FORMAT_VERSION = 1
MAX_FRAMES = 10_000_000
MAX_HEADER_BYTES = 1 << 20


@dataclass
class SequenceHeader:
    width: int
    height: int
    time_base: tuple[int, int]  # pts unit, as (numerator, denominator)
    frame_rate: tuple[int, int]  # nominal rate (average for variable-rate input)
    gop: int
    frame_count: int
    iframes: list[int]  # indices of the intra frames
    iframe_pts: list[int]  # their timestamps, for seeking
    models: dict[str, str]  # role -> "name:weights-hash"
    colour: dict[str, int] = field(default_factory=dict)  # FFmpeg colour enums: primaries, trc, space, range
    rotation: int = 0  # display rotation in degrees (counter-clockwise), restored on decode
    start_pts: int = 0
    format: str = FORMAT
    version: int = FORMAT_VERSION

    def to_json(self) -> str:
        return json.dumps(asdict(self), separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> "SequenceHeader":
        if len(text) > MAX_HEADER_BYTES:
            raise BitstreamError("sequence header too large")
        try:
            d = json.loads(text)
        except json.JSONDecodeError:
            raise BitstreamError("corrupt sequence header (not JSON)") from None
        if not isinstance(d, dict) or d.get("format") != FORMAT:
            raise BitstreamError("not a .tngv file (no tngvideo sequence header)")
        if d.get("version") != FORMAT_VERSION:
            raise BitstreamError(f"unsupported .tngv version {d.get('version')} (this build reads {FORMAT_VERSION})")
        try:
            h = cls(**{k: d[k] for k in cls.__dataclass_fields__ if k in d})
            h.time_base = tuple(int(v) for v in h.time_base)
            h.frame_rate = tuple(int(v) for v in h.frame_rate)
            h.iframes = [int(i) for i in h.iframes]
            h.iframe_pts = [int(i) for i in h.iframe_pts]
            if len(h.time_base) != 2 or len(h.frame_rate) != 2:
                raise ValueError("a rate is not a pair")
        except (TypeError, ValueError, KeyError):
            raise BitstreamError("corrupt sequence header (fields)") from None
        h.validate()
        return h

    def validate(self) -> None:
        check_size(self.width, self.height)
        if not 0 <= self.frame_count <= MAX_FRAMES:
            raise BitstreamError(f"frame count {self.frame_count} outside the supported range")
        if self.time_base[0] <= 0 or self.time_base[1] <= 0 or self.gop < 1:
            raise BitstreamError("corrupt sequence header (time base or GOP)")
        if any(not 0 <= i < max(self.frame_count, 1) for i in self.iframes) or len(self.iframe_pts) != len(self.iframes):
            raise BitstreamError("corrupt sequence header (I-frame index)")

    @property
    def tb(self) -> Fraction:
        return Fraction(*self.time_base)


@dataclass(frozen=True)
class DemuxedPacket:
    data: bytes
    pts: int  # in the header's time base
    duration: int


def write_tngv(target, header: SequenceHeader, packets: list[tuple[bytes, int, int]],
               *, passthrough_source: str | Path | None = None, fragmented: bool = False) -> list[str]:
    """Mux (packet bytes, pts, duration) triples, plus the audio and subtitle streams and chapters
    of `passthrough_source`. Returns warnings about what could not be carried."""
    header.validate()
    opts = {"movflags": "use_metadata_tags"}
    if fragmented:  # for non-seekable outputs
        opts = {"movflags": "empty_moov+delay_moov+default_base_moof+use_metadata_tags", "frag_duration": "1000000"}
    tb = header.tb
    with av.open(target, "w", format="mp4", options=opts) as out:
        out.metadata["comment"] = header.to_json()
        stream = out.add_data_stream("bin_data")
        stream.time_base = tb
        stream.metadata["handler_name"] = HANDLER
        pt = add_passthrough(str(passthrough_source), out) if passthrough_source is not None else None
        for data, pts, duration in packets:
            pk = av.Packet(data)
            pk.pts = pk.dts = pts
            pk.duration = max(1, duration)  # a zero duration makes MP4 drop the packet
            pk.time_base = tb
            pk.stream = stream
            out.mux(pk)
        if pt is not None:
            mux_passthrough(pt, out)
    return pt.warnings if pt is not None else []


class TngvReader:
    """Reads the sequence header and the frame packets of a .tngv file (a path or a binary file
    object), opened with the MP4 demuxer and the `file` protocol only."""

    def __init__(self, source):
        try:
            self._c = av.open(str(source) if isinstance(source, (str, Path)) else source, format=TNGV_DEMUXER,
                              options=dict(TNGV_OPEN_OPTIONS))
        except (av.FFmpegError, OSError, ValueError) as exc:
            raise BitstreamError(f"not a .tngv file, or a truncated or damaged one ({exc.__class__.__name__})") from None
        data = [s for s in self._c.streams.data]
        if not data or "comment" not in self._c.metadata:
            self._c.close()
            raise BitstreamError("not a .tngv file (no tngvideo data stream)")
        self.stream = data[0]
        self.header = SequenceHeader.from_json(self._c.metadata["comment"])

    def close(self) -> None:
        self._c.close()

    def __enter__(self) -> "TngvReader":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def packets(self, *, from_pts: int | None = None) -> Iterator[DemuxedPacket]:
        """Packets in order; with `from_pts`, starting at the packet with that timestamp
        (found by a container seek, so nothing before it is read)."""
        tb = self.header.tb
        try:
            if from_pts is not None and from_pts != self.header.start_pts:
                target = int(round(from_pts * tb / self.stream.time_base))
                self._c.seek(target, stream=self.stream, backward=True)
            for p in self._c.demux(self.stream):
                if p.size == 0 or p.pts is None:
                    continue
                pts = p.pts * p.time_base / tb
                dur = (p.duration or 0) * p.time_base / tb
                yield DemuxedPacket(bytes(p), int(round(pts)), int(round(dur)))
        except av.FFmpegError as exc:
            raise BitstreamError(f"damaged container ({exc.__class__.__name__})") from None

    def audio_streams(self) -> list:
        return list(self._c.streams.audio)
