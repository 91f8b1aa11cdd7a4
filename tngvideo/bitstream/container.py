"""The `.tngv` container: ISO BMFF (MP4) written and read through PyAV.

One data stream (`bin_data`) carries one packet per frame, with pts/duration in the source's
time base. A JSON sequence header sits in the container's `comment` tag. Audio streams of the
source, its subtitle streams and chapters are copied into the same file packet for packet (by
`tngvideo.media_passthrough`, handed to `write_tngv`: this module only lays out the container).

The data track's sample entry is tagged `tngv` (`DATA_TAG`). FFmpeg's MP4 muxer can only write
`gpmd` (GoPro telemetry) for a generic data track and PyAV cannot set another tag, so the tag is
patched in the muxed file's `stsd` box (`retag_data_track`). Files written before carry `gpmd`
and still read: the reader takes the data track whatever its tag (FFmpeg keeps a track with an
unknown sample entry as a data stream and reads its packets).
"""

from __future__ import annotations

import io
import json
import os
import struct
from dataclasses import asdict, dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Callable, Iterator

import av

from tngvideo.bitstream.errors import BitstreamError
from tngvideo.bitstream.tng_file import MAX_SIDE, check_size

FORMAT = "tngv"
FORMAT_VERSION = 1
MAX_FRAMES = 10_000_000
MAX_HEADER_BYTES = 1 << 20
MAX_RATIONAL = 2**31 - 1  # FFmpeg's rationals are 32-bit
MAX_TICKS = 2**62  # timestamps: FFmpeg's are 64-bit, with room for sums
MAX_MODELS, MAX_NAME = 8, 256  # role -> "name:weights-hash" entries in `models`
COLOUR_KEYS = ("color_primaries", "color_trc", "colorspace", "color_range")  # FFmpeg's enums, 0-255
DATA_TAG = b"tngv"  # the data track's sample-entry fourcc
MUXER_DATA_TAG = b"gpmd"  # what FFmpeg's MP4 muxer writes there (and files before DATA_TAG carry)
TNGV_HANDLER = "tngvideo"  # the data track's handler name
# How a `.tngv` file (or segment) is opened: the MP4 demuxer only (never a probed format such as an
# HLS list that names other files) and FFmpeg's `file` protocol only (never the network), without
# following the MP4 data references that may point at other files.
TNGV_DEMUXER = "mp4"
TNGV_OPEN_OPTIONS = {"protocol_whitelist": "file", "enable_drefs": "0"}


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
    # the init segment of fragmented-MP4 HLS segments: frame_count, iframes, iframe_pts and
    # start_pts are 0/empty here and are read from each media segment's packets
    segmented: bool = False

    def to_json(self) -> str:
        d = asdict(self)
        if not self.segmented:  # absent from whole files, as before the field existed
            del d["segmented"]
        return json.dumps(d, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> "SequenceHeader":
        """Parse and validate by type and range (`HeaderFields`): any other JSON is BitstreamError."""
        d = _parse_json(text)
        if not isinstance(d, dict) or d.get("format") != FORMAT:
            raise BitstreamError("not a .tngv file (no tngvideo sequence header)")
        if d.get("version") != FORMAT_VERSION or type(d.get("version")) is not int:
            shown = str(d.get("version"))[:20]
            raise BitstreamError(f"unsupported .tngv version {shown} (this build reads {FORMAT_VERSION})")
        f = HeaderFields(d)
        h = cls(width=f.integer("width", 1, MAX_SIDE), height=f.integer("height", 1, MAX_SIDE),
                time_base=f.rational("time_base"), frame_rate=f.rational("frame_rate"),
                gop=f.integer("gop", 1, MAX_FRAMES), frame_count=f.integer("frame_count", 0, MAX_FRAMES),
                iframes=f.integers("iframes", 0, MAX_FRAMES), iframe_pts=f.integers("iframe_pts", -MAX_TICKS, MAX_TICKS),
                models=f.names("models"), colour=f.colour("colour"), rotation=f.integer("rotation", 0, 359, default=0),
                start_pts=f.integer("start_pts", -MAX_TICKS, MAX_TICKS, default=0),
                segmented=f.flag("segmented"))
        h.validate()
        return h

    def validate(self) -> None:
        """Relations between the fields (each field's own type and range: `from_json`)."""
        check_size(self.width, self.height)
        if not 0 <= self.frame_count <= MAX_FRAMES:
            raise BitstreamError(f"frame count {self.frame_count} outside the supported range")
        if min(*self.time_base, *self.frame_rate) <= 0 or self.gop < 1:
            raise BitstreamError("corrupt sequence header (time base, frame rate or GOP)")
        if any(not 0 <= i < max(self.frame_count, 1) for i in self.iframes) or len(self.iframe_pts) != len(self.iframes):
            raise BitstreamError("corrupt sequence header (I-frame index)")
        if self.segmented and (self.frame_count or self.iframes):
            raise BitstreamError("corrupt sequence header (an init segment names frames)")

    @property
    def tb(self) -> Fraction:
        return Fraction(*self.time_base)


def _parse_json(text: str):
    if not isinstance(text, str) or len(text) > MAX_HEADER_BYTES:
        raise BitstreamError("sequence header too large")
    try:
        return json.loads(text)
    except (ValueError, RecursionError):  # not JSON, numbers of thousands of digits, deep nesting
        raise BitstreamError("corrupt sequence header (not JSON, or nested too deeply)") from None


class HeaderFields:
    """Typed reads of the sequence header's JSON object: each returns the field or raises
    BitstreamError naming it. JSON booleans are not integers, and integers are not floats."""

    def __init__(self, d: dict):
        self.d = d

    def _get(self, key: str, default):
        if key not in self.d:
            if default is None:
                raise BitstreamError(f"corrupt sequence header ({key} missing)")
            return default
        return self.d[key]

    @staticmethod
    def _bad(key: str) -> BitstreamError:
        return BitstreamError(f"corrupt sequence header ({key}: wrong type or out of range)")

    def flag(self, key: str) -> bool:
        v = self.d.get(key, False)
        if type(v) is not bool:
            raise self._bad(key)
        return v

    def integer(self, key: str, lo: int, hi: int, default: int | None = None) -> int:
        v = self._get(key, default)
        if type(v) is not int or not lo <= v <= hi:
            raise self._bad(key)
        return v

    def rational(self, key: str) -> tuple[int, int]:
        """A positive fraction [numerator, denominator], each within FFmpeg's 32-bit rationals."""
        v = self._get(key, None)
        if not (isinstance(v, list) and len(v) == 2 and all(type(x) is int and 0 < x <= MAX_RATIONAL for x in v)):
            raise self._bad(key)
        return v[0], v[1]

    def integers(self, key: str, lo: int, hi: int) -> list[int]:
        v = self._get(key, None)
        if not isinstance(v, list) or len(v) > MAX_FRAMES or any(type(x) is not int or not lo <= x <= hi for x in v):
            raise self._bad(key)
        return list(v)

    def names(self, key: str) -> dict[str, str]:
        v = self._get(key, None)
        if not (isinstance(v, dict) and 0 < len(v) <= MAX_MODELS
                and all(isinstance(x, str) and 0 < len(x) <= MAX_NAME for kv in v.items() for x in kv)):
            raise self._bad(key)
        return dict(v)

    def colour(self, key: str) -> dict[str, int]:
        v = self._get(key, {})
        if not (isinstance(v, dict) and all(k in COLOUR_KEYS and type(x) is int and 0 <= x <= 255 for k, x in v.items())):
            raise self._bad(key)
        return dict(v)


STRIPPED_HEADER = ("its frames are tngvideo packets but the sequence header is gone: the container metadata "
                   "that carries it was dropped, as a remux such as 'ffmpeg -map_metadata -1' does; remux the "
                   "original keeping the metadata ('-map 0 -c copy -map_metadata 0') or encode the video again")


@dataclass(frozen=True)
class DemuxedPacket:
    data: bytes
    pts: int  # in the header's time base
    duration: int


def add_frame_stream(out, comment: str, time_base: Fraction):
    """The tngvideo data track of an MP4 being written, with `comment` (the sequence header) as
    the file's comment tag."""
    out.metadata["comment"] = comment
    stream = out.add_data_stream("bin_data")
    stream.time_base = time_base
    stream.metadata["handler_name"] = TNGV_HANDLER
    return stream


def mux_frame_packets(out, stream, packets: list[tuple[bytes, int, int]], time_base: Fraction) -> None:
    """(packet bytes, pts, duration) triples in `time_base` into the data track `stream` (the
    muxer may change the stream's own time base once it starts)."""
    for data, pts, duration in packets:
        pk = av.Packet(data)
        pk.pts = pk.dts = pts
        pk.duration = max(1, duration)  # a zero duration makes MP4 drop the packet
        pk.time_base = time_base
        pk.stream = stream
        out.mux(pk)


def write_tngv(target, header: SequenceHeader, packets: list[tuple[bytes, int, int]],
               *, fragmented: bool = False,
               copy_streams: Callable[[av.container.OutputContainer], Callable[[], list[str]]] | None = None
               ) -> list[str]:
    """Mux (packet bytes, pts, duration) triples, plus the streams that `copy_streams` carries
    (`tngvideo.media_passthrough.copy_streams`: the audio, subtitles and chapters of another
    file): called with the output once the data track is added, it adds its streams and returns
    the step that muxes their packets after the frames and returns warnings about what could not
    be carried. Returns those warnings."""
    header.validate()
    opts = {"movflags": "use_metadata_tags"}
    if fragmented:  # for non-seekable outputs
        opts = {"movflags": "empty_moov+delay_moov+default_base_moof+use_metadata_tags", "frag_duration": "1000000"}
    tb = header.tb
    with av.open(target, "w", format="mp4", options=opts) as out:
        stream = add_frame_stream(out, header.to_json(), tb)
        mux_copied = copy_streams(out) if copy_streams is not None else None
        mux_frame_packets(out, stream, packets, tb)
        warnings = mux_copied() if mux_copied is not None else []
    if isinstance(target, (str, os.PathLike)):
        with open(target, "r+b") as f:
            retag_data_track(f)
    elif _seekable(target):
        target.seek(0)
        retag_data_track(target)
        target.seek(0, os.SEEK_END)
    # a pipe cannot be rewritten: the track keeps the muxer's tag, which reads the same
    return warnings


def _seekable(f) -> bool:
    try:
        return f.seekable() and f.readable() and f.writable()
    except (AttributeError, OSError, ValueError):
        return False


FMP4_OPTIONS = {
    # one fragment per media segment, its tfdt at the segment's real decode time (frag_discont with
    # an edit list), no trailer: the moov is the same for every segment of a rendition
    "movflags": "empty_moov+default_base_moof+use_metadata_tags+skip_trailer+frag_discont",
    "frag_duration": str(2**31 - 1), "use_editlist": "1",
}


def _boxes(data: bytes) -> Iterator[tuple[bytes, int, int]]:
    """Top-level ISO BMFF boxes: (type, offset, size)."""
    i = 0
    while i + 8 <= len(data):
        size, kind = struct.unpack(">I4s", data[i:i + 8])
        if size < 8:
            raise BitstreamError("malformed MP4 box")
        yield kind, i, size
        i += size


def _children(data, start: int, end: int) -> Iterator[tuple[bytes, int, int, int]]:
    """The ISO BMFF boxes in data[start:end]: (type, offset, header size, size), with 64-bit
    sizes (size 1) and a last box that runs to the end (size 0)."""
    i = start
    while i + 8 <= end:
        size, kind = struct.unpack(">I4s", data[i:i + 8])
        head = 8
        if size == 1:
            if i + 16 > end:
                raise BitstreamError("malformed MP4 box")
            size, head = struct.unpack(">Q", data[i + 8:i + 16])[0], 16
        elif size == 0:
            size = end - i
        if size < head or i + size > end:
            raise BitstreamError("malformed MP4 box")
        yield kind, i, head, size
        i += size


def _child(data, box: tuple[bytes, int, int, int], kind: bytes) -> tuple[bytes, int, int, int] | None:
    _, off, head, size = box
    return next((b for b in _children(data, off + head, off + size) if b[0] == kind), None)


def _data_track_entry(moov, moov_box: tuple[bytes, int, int, int]) -> int:
    """Offset in `moov` of the sample-entry type of the tngvideo data track: the one track whose
    handler is a timed-metadata one ('meta') named `TNGV_HANDLER` and whose `stsd` holds one entry
    (moov > trak > mdia > hdlr, and mdia > minf > stbl > stsd)."""
    found = []
    for trak in _children(moov, moov_box[1] + moov_box[2], moov_box[1] + moov_box[3]):
        if trak[0] != b"trak" or (mdia := _child(moov, trak, b"mdia")) is None:
            continue
        hdlr = _child(moov, mdia, b"hdlr")
        if hdlr is None:
            continue
        body = bytes(moov[hdlr[1] + hdlr[2]:hdlr[1] + hdlr[3]])  # version+flags, pre_defined, type, reserved, name
        if body[8:12] != b"meta" or body[24:].split(b"\0", 1)[0] != TNGV_HANDLER.encode():
            continue
        box = mdia
        for kind in (b"minf", b"stbl", b"stsd"):
            box = box and _child(moov, box, kind)
        if box is None:
            raise BitstreamError("malformed MP4 (the tngvideo track has no sample description)")
        _, off, head, size = box
        start = off + head + 8  # after version+flags and the entry count
        if size < head + 16 or struct.unpack(">I", moov[off + head + 4:start])[0] != 1:
            raise BitstreamError("malformed MP4 (the tngvideo track needs one sample entry)")
        found.append(start + 4)
    if len(found) != 1:
        raise BitstreamError(f"expected one tngvideo data track in the MP4, found {len(found)}")
    return found[0]


def _retag_at(moov) -> int | None:
    """Where `DATA_TAG` goes in `moov` (bytes starting with the moov box), or None if it is there."""
    at = _data_track_entry(moov, next(_children(moov, 0, len(moov))))
    tag = bytes(moov[at:at + 4])
    if tag not in (MUXER_DATA_TAG, DATA_TAG):
        raise BitstreamError(f"unexpected sample entry {tag!r} on the tngvideo track")
    return None if tag == DATA_TAG else at


def retag_moov(data: bytearray) -> None:
    """Set the tngvideo data track's sample-entry tag to `DATA_TAG` in an MP4 held in memory
    (an init segment: ftyp + moov); one that carries it already is left as it is."""
    moov = next((b for b in _children(data, 0, len(data)) if b[0] == b"moov"), None)
    if moov is None:
        raise BitstreamError("malformed MP4 (no moov box)")
    at = _retag_at(memoryview(data)[moov[1]:moov[1] + moov[3]])
    if at is not None:
        data[moov[1] + at:moov[1] + at + 4] = DATA_TAG


def retag_data_track(f) -> None:
    """`retag_moov` on an MP4 file open for reading and writing: the top-level boxes are walked by
    their headers (the media data is not read), the moov box is read and its 4 bytes rewritten."""
    f.seek(0, os.SEEK_END)
    end = f.tell()
    pos = 0
    while pos + 8 <= end:
        f.seek(pos)
        head = f.read(16)
        size, kind = struct.unpack(">I4s", head[:8])
        if size == 1 and len(head) == 16:
            size = struct.unpack(">Q", head[8:16])[0]
        elif size == 0:
            size = end - pos
        if size < 8 or pos + size > end:
            raise BitstreamError("malformed MP4 box")
        if kind == b"moov":
            f.seek(pos)
            at = _retag_at(f.read(size))
            if at is not None:
                f.seek(pos + at)
                f.write(DATA_TAG)
                f.flush()
            return
        pos += size
    raise BitstreamError("malformed MP4 (no moov box)")


def write_fmp4_segment(header: SequenceHeader, packets: list[tuple[bytes, int, int]]) -> tuple[bytes, bytes]:
    """A fragmented-MP4 HLS segment: (init segment: ftyp + moov, media segment: moof + mdat).
    `header` is the rendition's (`segmented`, no frames): every segment of a rendition gets the
    same init segment, which the playlist names once with EXT-X-MAP."""
    if not header.segmented:
        raise ValueError("an fMP4 segment needs a segmented (rendition) header")
    buf = io.BytesIO()
    tb = header.tb
    with av.open(buf, "w", format="mp4", options=dict(FMP4_OPTIONS)) as out:
        mux_frame_packets(out, add_frame_stream(out, header.to_json(), tb), packets, tb)
    data = bytearray(buf.getvalue())
    retag_moov(data)
    data = bytes(data)
    boxes = list(_boxes(data))
    first = next(o for k, o, _ in boxes if k == b"moof")
    media = b"".join(data[o:o + n] for k, o, n in boxes if k in (b"moof", b"mdat"))
    return data[:first], media


class JoinedFiles(io.RawIOBase):
    """Files read one after the other as one (an init segment, then a media segment)."""

    def __init__(self, *paths: str | Path):
        self._files = [open(p, "rb") for p in paths]
        self._sizes = [os.fstat(f.fileno()).st_size for f in self._files]
        self._pos = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = 0) -> int:
        base = {0: 0, 1: self._pos, 2: sum(self._sizes)}[whence]
        self._pos = max(0, base + offset)
        return self._pos

    def readinto(self, b) -> int:
        start = 0
        for f, size in zip(self._files, self._sizes):
            if self._pos < start + size:
                f.seek(self._pos - start)
                n = f.readinto(memoryview(b)[: min(len(b), start + size - self._pos)])
                self._pos += n
                return n
            start += size
        return 0

    def close(self) -> None:
        for f in self._files:
            f.close()
        super().close()


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
            stripped = bool(data) and self._carries_frame_packets(data[0])
            self._c.close()
            if stripped:
                raise BitstreamError(STRIPPED_HEADER)
            raise BitstreamError("not a .tngv file (no tngvideo data stream)")
        self.stream = data[0]
        try:
            self.header = SequenceHeader.from_json(self._c.metadata["comment"])
        except BitstreamError:
            self._c.close()
            raise
        if self.header.segmented:  # an init segment with a media segment: the frames are in the packets
            try:
                self.header = self._segment_header(source)
            except BaseException:
                self._c.close()
                raise

    def _segment_header(self, source) -> SequenceHeader:
        """The rendition's header completed from the media segment's packets (frame count, I-frame
        index and timestamps, first timestamp); the container is opened again at its start."""
        from dataclasses import replace

        from tngvideo.bitstream.packet import unpack_packet

        n, iframes, iframe_pts, start = 0, [], [], None
        for pk in self.packets():
            try:
                intra = unpack_packet(pk.data).frame_type == 0
            except BitstreamError:
                intra = False  # a damaged packet: the decoder reports it in its place
            if intra:
                iframes.append(n)
                iframe_pts.append(pk.pts)
            start = pk.pts if start is None else start
            n += 1
            if n > MAX_FRAMES:
                break
        self._c.close()
        if not isinstance(source, (str, Path)):
            source.seek(0)
        self._c = av.open(str(source) if isinstance(source, (str, Path)) else source, format=TNGV_DEMUXER,
                          options=dict(TNGV_OPEN_OPTIONS))
        self.stream = self._c.streams.data[0]
        h = replace(self.header, frame_count=n, iframes=iframes, iframe_pts=iframe_pts, start_pts=start or 0,
                    segmented=False)
        h.validate()
        return h

    def _carries_frame_packets(self, stream) -> bool:
        """Whether the first packet of `stream` is a tngvideo frame packet (a .tngv whose container
        metadata, and so its sequence header, a remux has dropped)."""
        from tngvideo.bitstream.packet import unpack_packet

        try:
            for p in self._c.demux(stream):
                if p.size:
                    unpack_packet(bytes(p))
                    return True
        except (av.FFmpegError, BitstreamError, ValueError):
            pass
        return False

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
