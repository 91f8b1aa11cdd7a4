"""The `.tng` still-image file.

All integers are little-endian.

    offset  size  field
    0       4     magic b"TNGI"
    4       1     format version: 2 (pixels reconstructed in fixed point, identical on every
                  machine), 1 (float reconstruction; still read)
    5       1     n = length of the model name
    6       n     model name (ASCII)
    6+n     8     weights hash (first 8 bytes of the SHA-256 of the weights file)
    14+n    4     width
    18+n    4     height
    22+n    2     quality * 100
    24+n    4     length of the hyper-latent stream
    28+n    4     length of the latent stream
    32+n    4     CRC-32 of the decoded symbols (catches a decoder that disagrees with the encoder)
    36+n    ...   hyper-latent stream, latent stream
    end-4   4     CRC-32 of everything before it
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass

from tngvideo.bitstream.errors import BitstreamError

MAGIC = b"TNGI"
VERSION = 2
READ_VERSIONS = (1, 2)
MAX_SIDE = 16384
# 9.4 Mpixel: 4K UHD and DCI 4K. A decode needs about 1.3 GB per megapixel (tngvideo.limits), so
# this is what a machine with 16 GB can meet; a decoder never allocates for more, and refuses
# less where the machine's memory would not do.
MAX_PIXELS = 4096 * 2304
_FIXED = struct.Struct("<8sIIHIII")


@dataclass(frozen=True)
class TngImageFile:
    model: str
    weights_hash: bytes
    width: int
    height: int
    quality: float
    hyper: bytes
    latent: bytes
    symbols_crc: int
    version: int = VERSION  # 2: fixed-point reconstruction (`exact`)

    @property
    def exact(self) -> bool:
        """Whether the picture is reconstructed in fixed point (format 2 on)."""
        return self.version >= 2

    @property
    def header_bytes(self) -> int:
        return 4 + 1 + 1 + len(self.model.encode("ascii")) + _FIXED.size + 4


def check_size(width: int, height: int) -> None:
    """BitstreamError unless width x height is within MAX_SIDE and MAX_PIXELS."""
    if not (1 <= width <= MAX_SIDE and 1 <= height <= MAX_SIDE) or width * height > MAX_PIXELS:
        raise BitstreamError(f"picture size {width}x{height} is outside the supported range "
                             f"(up to {MAX_SIDE} on a side and {MAX_PIXELS / 1e6:.1f} Mpixel)")


def pack_image(f: TngImageFile) -> bytes:
    name = f.model.encode("ascii")
    if len(name) > 255 or len(f.weights_hash) != 8:
        raise ValueError("model name too long or bad weights hash")
    check_size(f.width, f.height)
    q = int(round(f.quality * 100))
    if not 0 <= q <= 0xFFFF:
        raise ValueError("quality out of range")
    if f.version not in READ_VERSIONS:
        raise ValueError(f"unknown .tng format version {f.version}")
    head = MAGIC + bytes([f.version, len(name)]) + name + _FIXED.pack(
        f.weights_hash, f.width, f.height, q, len(f.hyper), len(f.latent), f.symbols_crc
    )
    body = head + f.hyper + f.latent
    return body + struct.pack("<I", zlib.crc32(body))


def unpack_image(data: bytes) -> TngImageFile:
    if len(data) < 6 or data[:4] != MAGIC:
        raise BitstreamError("not a .tng image (bad magic)")
    if data[4] not in READ_VERSIONS:
        raise BitstreamError(f"unsupported .tng format version {data[4]} (this build reads 1 to {VERSION})")
    n = data[5]
    start = 6 + n
    if len(data) < start + _FIXED.size + 4:
        raise BitstreamError("truncated .tng file (header)")
    (crc,) = struct.unpack_from("<I", data, len(data) - 4)
    if zlib.crc32(data[:-4]) != crc:
        raise BitstreamError("corrupt .tng file (checksum mismatch)")
    try:
        model = data[6:start].decode("ascii")
    except UnicodeDecodeError:
        raise BitstreamError("corrupt .tng file (model name)") from None
    whash, width, height, q, n_hyper, n_latent, sym_crc = _FIXED.unpack_from(data, start)
    check_size(width, height)
    pos = start + _FIXED.size
    if pos + n_hyper + n_latent + 4 != len(data):
        raise BitstreamError("corrupt .tng file (stream lengths do not match the file size)")
    hyper = data[pos : pos + n_hyper]
    latent = data[pos + n_hyper : pos + n_hyper + n_latent]
    return TngImageFile(
        model=model, weights_hash=whash, width=width, height=height, quality=q / 100.0,
        hyper=bytes(hyper), latent=bytes(latent), symbols_crc=sym_crc, version=data[4],
    )
