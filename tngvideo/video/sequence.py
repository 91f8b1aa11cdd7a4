"""The sequence API: a sequence header plus one packet per frame, in and out.

`SequenceEncoder` codes frames in order (closed loop, GOP, reference buffer: `VideoEncoder`)
and makes the sequence header that names its models and I-frames. `SequenceDecoder` takes a
header, picks the codecs it names (or checks the ones it is given against it), seeks to the
I-frame at or before a frame, and decodes packets in order, concealing damaged frames when asked.
Every frame coded or decoded comes out as one `SequenceFrame`: its index, timing, pixels and
packet's record (`tngvideo.bitstream.packet.FrameRecord`, which `read_record` reads from a packet
without decoding it, for `tngvideo info`). Files, analysis, segments, training and tools code whole
sequences through these two classes; the container (`tngvideo.bitstream.container`) only moves
the header and the packets' bytes.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

import numpy as np

from tngvideo.bitstream.container import SequenceHeader
from tngvideo.bitstream.packet import FrameRecord, FrameType, frame_record
from tngvideo.errors import DecodeError
from tngvideo.video import DEFAULT_GOP, EncoderOptions
from tngvideo.video.codec import VideoDecoder, VideoEncoder
from tngvideo.video.registry import VideoCodecs, load_video_codecs

ON_ERROR = ("stop", "conceal")


def video_model_name(models: dict[str, str]) -> str:
    """The registered name of a header's video model (its entry is "name:weights-hash" or "name")."""
    name = models.get("video", "").split(":")[0]
    if not name:
        raise DecodeError("the sequence header names no video model")
    return name


def check_models(models: dict[str, str], codecs: VideoCodecs) -> None:
    """`DecodeError` unless `codecs` are the models (names and weights hashes) a header names."""
    if models != codecs.model_ids():
        raise DecodeError(f"file was made with models {models}, this decoder has {codecs.model_ids()}")


def codecs_for(header: SequenceHeader, codecs: VideoCodecs | None = None) -> VideoCodecs:
    """The codecs that decode `header`'s sequence: those it names (loaded by registered name), or
    `codecs` if they are the same models; `DecodeError` otherwise."""
    codecs = codecs or load_video_codecs(video_model_name(header.models))
    check_models(header.models, codecs)
    return codecs


@dataclass(frozen=True)
class SequenceFrame:
    """One frame of a coded sequence. From the encoder: its packet and reconstruction (exactly what
    a decoder outputs). From the decoder: the decoded frame, or with `record` None a concealed one
    (the last good frame repeated, mid-grey before the first)."""
    index: int
    pts: int
    duration: int
    rgb: np.ndarray  # (H, W, 3) uint8
    packet: bytes
    record: FrameRecord | None

    @property
    def concealed(self) -> bool:
        return self.record is None


def sequence_header(records: list[FrameRecord], pts: list[int], models: dict[str, str], *, width: int,
                    height: int, time_base: Fraction, frame_rate: Fraction, gop: int, colour: dict | None = None,
                    rotation: int = 0) -> SequenceHeader:
    """The header of a sequence of coded frames (their records and timestamps in order; those of
    several chunks may be joined)."""
    if not records:
        raise DecodeError("the input has no video frames")
    intra = [(r.index, t) for r, t in zip(records, pts) if r.frame_type == FrameType.I]
    return SequenceHeader(
        width=width, height=height,
        time_base=(time_base.numerator, time_base.denominator),
        frame_rate=(frame_rate.numerator, frame_rate.denominator),
        gop=gop, frame_count=len(records), iframes=[i for i, _ in intra], iframe_pts=[t for _, t in intra],
        models=dict(models), colour=dict(colour or {}), rotation=rotation, start_pts=pts[0],
    )


class SequenceEncoder:
    """Codes one sequence (or, with `first_index`, the chunk of one that starts at that frame, a
    GOP boundary) frame by frame, and keeps what its header is made from."""

    def __init__(self, codecs: VideoCodecs, *, width: int, height: int, quality: float, gop: int = DEFAULT_GOP,
                 first_index: int = 0, options: EncoderOptions = EncoderOptions()):
        self.codecs = codecs
        self.width, self.height, self.gop = width, height, gop
        self._encoder = VideoEncoder(codecs.image, codecs.pframes, width=width, height=height, quality=quality,
                                     gop=gop, first_index=first_index, options=options)
        self.packets: list[tuple[bytes, int, int]] = []  # (packet, pts, duration) of every frame coded
        self.records: list[FrameRecord] = []

    def encode(self, rgb: np.ndarray, *, pts: int | None = None, duration: int = 1) -> SequenceFrame:
        """Code the next frame (`pts` default: its index)."""
        index = self._encoder.index
        out = self._encoder.encode(rgb)
        pts = index if pts is None else pts
        self.packets.append((out.packet, pts, duration))
        self.records.append(out.stats)
        return SequenceFrame(index, pts, duration, out.reconstruction, out.packet, out.stats)

    def header(self, *, time_base: Fraction, frame_rate: Fraction, colour: dict | None = None,
               rotation: int = 0) -> SequenceHeader:
        """The header of the frames coded so far."""
        return sequence_header(self.records, [p[1] for p in self.packets], self.codecs.model_ids(), width=self.width,
                               height=self.height, time_base=time_base, frame_rate=frame_rate, gop=self.gop,
                               colour=colour, rotation=rotation)


@dataclass(frozen=True)
class SeekPoint:
    """Where decoding of frame `target` starts: the I-frame at or before it (frame 0 at the
    stream's first packet, `pts` None, when the header lists none)."""
    index: int
    pts: int | None


class SequenceDecoder:
    """Decodes the packets of the sequence `header` describes, in order from a seek point.

    on_error="stop": a damaged packet raises `DecodeError` naming its frame. on_error="conceal":
    from a damaged frame until the next I-frame that decodes, the last good frame is repeated
    (mid-grey before the first) and the frame comes out with `record` None."""

    def __init__(self, header: SequenceHeader, codecs: VideoCodecs | None = None, *, on_error: str = "stop"):
        if on_error not in ON_ERROR:
            raise ValueError("on_error must be 'stop' or 'conceal'")
        self.header = header
        self.codecs = codecs_for(header, codecs)
        self.on_error = on_error
        self._decoder = VideoDecoder(self.codecs.image, self.codecs.pframes, width=header.width, height=header.height)
        self._iframes = set(header.iframes)
        self.index: int | None = None  # the frame the next packet is; None: the first packet's (before a seek)
        self._last = np.full((header.height, header.width, 3), 128, np.uint8)
        self._broken = False

    def seek(self, frame: int) -> SeekPoint:
        """Restart at the I-frame at or before `frame`; the caller hands packets from its pts on."""
        h = self.header
        k = max([j for j, i in enumerate(h.iframes) if i <= frame], default=None)
        point = SeekPoint(h.iframes[k], h.iframe_pts[k]) if k is not None else SeekPoint(0, None)
        self._decoder.reset()
        self.index = point.index
        self._broken = False
        return point

    def decode(self, packet: bytes, *, pts: int | None = None, duration: int = 1) -> SequenceFrame:
        """The next frame from its packet (`pts` default: its index). Without a `seek` the first
        packet may be any I-frame of the sequence (a part of a file) and says which frame it is;
        every packet after it must be the next frame."""
        n = 0 if self.index is None else self.index
        record = None
        if not self._broken or n in self._iframes:
            try:
                record, self._last = self._decode(packet, self.index)
                n = record.index
                self._broken = False
            except DecodeError as exc:
                if self.on_error == "stop":
                    raise DecodeError(f"frame {n}: {exc}") from None
                self._broken = True
                self._decoder.reset()
        self.index = n + 1
        return SequenceFrame(n, n if pts is None else pts, duration, self._last, packet,
                             None if self._broken else record)

    def _decode(self, packet: bytes, n: int | None) -> tuple[FrameRecord, np.ndarray]:
        p, rgb = self._decoder.decode(packet)  # errors: DecodeError
        if n is not None and p.index != n:
            raise DecodeError(f"packet out of order (carries index {p.index})")
        return frame_record(p, len(packet)), rgb


__all__ = ["SeekPoint", "SequenceDecoder", "SequenceEncoder", "SequenceFrame", "check_models", "codecs_for",
           "sequence_header", "video_model_name"]
