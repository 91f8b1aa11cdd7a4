"""One coded video frame: the packet carried by the container.

MP4 data tracks do not keep keyframe flags, so each packet carries its own header.
A frame is made of coded units, each one latent with its hyper-latent: an I-frame has one
(the image latent), a P-frame two (motion, then residual; an empty motion unit means the
frame is predicted from the reference without motion). All integers little-endian.

    offset  size  field
    0       2     magic b"TV"
    2       1     packet format version (1)
    3       1     frame type: 0 = I (intra), 1 = P (predicted from the previous decoded frame)
    4       2     quality * 100
    6       4     frame index in the sequence
    10      1     n = number of coded units
    11      12n   per unit: hyper-latent length, latent length, CRC-32 of its decoded symbols
    11+12n  ...   per unit: hyper-latent bytes, latent bytes
    end-4   4     CRC-32 of everything before it
"""

from __future__ import annotations

import enum
import struct
import zlib
from dataclasses import dataclass

from tngvideo.bitstream.errors import BitstreamError

MAGIC = b"TV"
VERSION = 1
UNITS = {0: 1, 1: 2}  # frame type -> number of coded units
_HEAD = struct.Struct("<2sBBHIB")
_UNIT = struct.Struct("<III")


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

    @property
    def header_bytes(self) -> int:
        return _HEAD.size + _UNIT.size * len(self.units) + 4


def pack_packet(p: FramePacket) -> bytes:
    if len(p.units) != UNITS[int(p.frame_type)]:
        raise ValueError("wrong number of coded units for the frame type")
    q = int(round(p.quality * 100))
    head = _HEAD.pack(MAGIC, VERSION, int(p.frame_type), q, p.index, len(p.units))
    head += b"".join(_UNIT.pack(len(u.hyper), len(u.latent), u.symbols_crc) for u in p.units)
    body = head + b"".join(u.hyper + u.latent for u in p.units)
    return body + struct.pack("<I", zlib.crc32(body))


def unpack_packet(data: bytes) -> FramePacket:
    if len(data) < _HEAD.size + 4:
        raise BitstreamError("truncated frame packet")
    magic, version, ftype, q, index, n = _HEAD.unpack_from(data, 0)
    if magic != MAGIC:
        raise BitstreamError("not a tngvideo frame packet (bad magic)")
    if version != VERSION:
        raise BitstreamError(f"unsupported frame packet version {version} (this build reads {VERSION})")
    (crc,) = struct.unpack_from("<I", data, len(data) - 4)
    if zlib.crc32(data[:-4]) != crc:
        raise BitstreamError("corrupt frame packet (checksum mismatch)")
    if ftype not in UNITS or n != UNITS[ftype]:
        raise BitstreamError(f"corrupt frame packet {index} (header fields)")
    pos = _HEAD.size
    if len(data) < pos + _UNIT.size * n + 4:
        raise BitstreamError("truncated frame packet")
    table = [_UNIT.unpack_from(data, pos + _UNIT.size * i) for i in range(n)]
    pos += _UNIT.size * n
    if pos + sum(a + b for a, b, _ in table) + 4 != len(data):
        raise BitstreamError(f"corrupt frame packet {index} (sub-stream lengths do not match its size)")
    units = []
    for n_hyper, n_latent, sym_crc in table:
        hyper = bytes(data[pos : pos + n_hyper])
        latent = bytes(data[pos + n_hyper : pos + n_hyper + n_latent])
        pos += n_hyper + n_latent
        units.append(CodedUnit(hyper, latent, sym_crc))
    return FramePacket(FrameType(ftype), q / 100.0, index, tuple(units))
