"""One coded video frame: the packet carried by the container.

MP4 data tracks do not keep keyframe flags, so each packet carries its own header.
A frame is made of coded units, each one latent with its hyper-latent: an I-frame has one
(the image latent), a P-frame two (motion, then residual; an empty motion unit means the
frame is predicted from the reference without motion).

Version 4, a varint header: 22-27 bytes on a P-frame where version 1 took 39. Version 4 frames are
reconstructed in fixed point (identical on every machine); versions 1 to 3, with the same layout as
version 3 or older ones below, in float.
Varints are unsigned LEB128, fixed-size integers little-endian:

    size  field
    1     packet format version (4) in the high nibble, frame type in the low nibble:
          0 = I (intra), 1 = P (predicted from the previous decoded frame)
    var   quality * 100
    var   P-frames only: the quality the motion unit is coded at * 100 (the encoder may code
          the flow finer or coarser than the residual)
    var   frame index in the sequence
    per unit (1 for I, 2 for P):
      var   hyper-latent length
      var   latent length
      4     CRC-32 of its decoded symbols
    ...   per unit: hyper-latent bytes, latent bytes
    4     CRC-32 of everything before it

Version 2 packets (the same without the motion quality: motion at the frame's quality) and
version 1 packets (fixed-width header: magic b"TV", version 1, type, u16 quality * 100,
u32 index, u8 unit count, u32 lengths and CRCs) are still read.
"""

from __future__ import annotations

import enum
import struct
import zlib
from dataclasses import dataclass

from tngvideo.bitstream.errors import BitstreamError

VERSION = 4
READ_VERSIONS = (2, 3, 4)
EXACT_FROM = 4  # packets of this version on are reconstructed in fixed point
UNITS = {0: 1, 1: 2}  # frame type -> number of coded units
MAX_VARINT_BYTES = 5  # every field fits in 32 bits
_V1_HEAD = struct.Struct("<2sBBHIB")
_V1_UNIT = struct.Struct("<III")
_U32 = struct.Struct("<I")


class FrameType(enum.IntEnum):
    I = 0  # noqa: E741
    P = 1


@dataclass(frozen=True)
class CodedUnit:
    hyper: bytes
    latent: bytes
    symbols_crc: int

    @property
    def empty(self) -> bool:
        return not self.hyper and not self.latent


@dataclass(frozen=True)
class FramePacket:
    frame_type: FrameType
    quality: float
    index: int
    units: tuple[CodedUnit, ...]
    motion_quality: float | None = None  # P-frames: the motion unit's quality; None = `quality`
    version: int = VERSION

    @property
    def exact(self) -> bool:
        """Whether the frame is reconstructed in fixed point (version 4 on)."""
        return self.version >= EXACT_FROM

    @property
    def motion_q(self) -> float:
        """The quality the motion unit is decoded at."""
        return self.quality if self.motion_quality is None else self.motion_quality

    @property
    def header_bytes(self) -> int:
        return len(_header(self)) + 4


UNIT_NAMES = {FrameType.I: ("intra",), FrameType.P: ("motion", "residual")}  # a packet's coded units, in order


@dataclass(frozen=True)
class FrameRecord:
    """One coded frame as its packet describes it: the same record whether the encoder made the
    packet or a decoder read it (only the encoder knows the entropy model's estimate)."""
    index: int
    frame_type: FrameType
    quality: float
    motion_quality: float | None  # the quality its coded motion is at; None: no coded motion (I, or P without)
    packet_bytes: int
    header_bytes: int
    bits: dict[str, int]  # payload bits by unit ("intra", or "motion" and "residual")
    estimated_bits: float | None = None  # the encoder's estimate of the payload; None from a decoder


def frame_record(packet: FramePacket, packet_bytes: int, estimated_bits: float | None = None) -> FrameRecord:
    """The record of a frame packet `packet_bytes` long."""
    p = packet
    coded_motion = p.frame_type == FrameType.P and not p.units[0].empty
    return FrameRecord(p.index, p.frame_type, p.quality, p.motion_q if coded_motion else None, packet_bytes,
                       p.header_bytes, {k: 8 * (len(u.hyper) + len(u.latent))
                                        for k, u in zip(UNIT_NAMES[p.frame_type], p.units)}, estimated_bits)


def read_record(data: bytes) -> FrameRecord:
    """The record of a frame packet, read without decoding it (`BitstreamError` if it is not one)."""
    return frame_record(unpack_packet(data), len(data))


def _varint(v: int) -> bytes:
    if not 0 <= v < 1 << 32:
        raise ValueError(f"packet field {v} outside 0..2^32-1")
    out = bytearray()
    while True:
        byte, v = v & 0x7F, v >> 7
        out.append(byte | (0x80 if v else 0))
        if not v:
            return bytes(out)


def read_varint(data: bytes, pos: int, end: int) -> tuple[int, int]:
    """(value, position after it) of the LEB128 varint at `pos`; it must end before `end`."""
    value = 0
    for k in range(MAX_VARINT_BYTES):
        if pos + k >= end:
            raise BitstreamError("truncated frame packet")
        byte = data[pos + k]
        value |= (byte & 0x7F) << (7 * k)
        if not byte & 0x80:
            return value, pos + k + 1
    raise BitstreamError("corrupt frame packet (over-long number)")


def _header(p: FramePacket) -> bytes:
    if p.version not in (3, 4):
        raise ValueError(f"packets are written in version 3 or 4, not {p.version}")
    head = bytes([p.version << 4 | int(p.frame_type)]) + _varint(int(round(p.quality * 100)))
    if p.frame_type == FrameType.P:
        head += _varint(int(round(p.motion_q * 100)))
    head += _varint(p.index)
    for u in p.units:
        head += _varint(len(u.hyper)) + _varint(len(u.latent)) + _U32.pack(u.symbols_crc)
    return head


def pack_packet(p: FramePacket) -> bytes:
    if len(p.units) != UNITS[int(p.frame_type)]:
        raise ValueError("wrong number of coded units for the frame type")
    if p.motion_quality is not None and p.frame_type != FrameType.P:
        raise ValueError("only a P-frame has a motion quality")
    body = _header(p) + b"".join(u.hyper + u.latent for u in p.units)
    return body + _U32.pack(zlib.crc32(body))


def unpack_packet(data: bytes) -> FramePacket:
    if len(data) < 5:
        raise BitstreamError("truncated frame packet")
    if data[:3] == b"TV\x01":
        return _unpack_v1(data)
    version, ftype = data[0] >> 4, data[0] & 0x0F
    if version not in READ_VERSIONS:
        raise BitstreamError(f"not a tngvideo frame packet, or an unsupported version ({version}; this build reads 1 to {VERSION})")
    _check_crc(data)
    end = len(data) - 4
    if ftype not in UNITS:
        raise BitstreamError("corrupt frame packet (frame type)")
    q, pos = read_varint(data, 1, end)
    mq = q
    if version >= 3 and ftype == FrameType.P:
        mq, pos = read_varint(data, pos, end)
    index, pos = read_varint(data, pos, end)
    table = []
    for _ in range(UNITS[ftype]):
        n_hyper, pos = read_varint(data, pos, end)
        n_latent, pos = read_varint(data, pos, end)
        if pos + 4 > end:
            raise BitstreamError("truncated frame packet")
        table.append((n_hyper, n_latent, _U32.unpack_from(data, pos)[0]))
        pos += 4
    return _units(data, pos, table, ftype, q, index, mq, version)


def _check_crc(data: bytes) -> None:
    if zlib.crc32(data[:-4]) != _U32.unpack_from(data, len(data) - 4)[0]:
        raise BitstreamError("corrupt frame packet (checksum mismatch)")


def _units(data: bytes, pos: int, table: list[tuple[int, int, int]], ftype: int, q: int, index: int,
           mq: int | None = None, version: int = 1) -> FramePacket:
    if pos + sum(a + b for a, b, _ in table) + 4 != len(data):
        raise BitstreamError(f"corrupt frame packet {index} (sub-stream lengths do not match its size)")
    units = []
    for n_hyper, n_latent, sym_crc in table:
        hyper = bytes(data[pos : pos + n_hyper])
        latent = bytes(data[pos + n_hyper : pos + n_hyper + n_latent])
        pos += n_hyper + n_latent
        units.append(CodedUnit(hyper, latent, sym_crc))
    motion_quality = None if mq is None or mq == q else mq / 100.0
    return FramePacket(FrameType(ftype), q / 100.0, index, tuple(units), motion_quality, version)


def _unpack_v1(data: bytes) -> FramePacket:
    if len(data) < _V1_HEAD.size + 4:
        raise BitstreamError("truncated frame packet")
    _, _, ftype, q, index, n = _V1_HEAD.unpack_from(data, 0)
    _check_crc(data)
    if ftype not in UNITS or n != UNITS[ftype]:
        raise BitstreamError(f"corrupt frame packet {index} (header fields)")
    pos = _V1_HEAD.size
    if len(data) < pos + _V1_UNIT.size * n + 4:
        raise BitstreamError("truncated frame packet")
    table = [_V1_UNIT.unpack_from(data, pos + _V1_UNIT.size * i) for i in range(n)]
    return _units(data, pos + _V1_UNIT.size * n, table, ftype, q, index)
