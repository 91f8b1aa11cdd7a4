"""`tngvideo.describe`: a .tng or .tngv file's header fields, sizes and rates, read from the file
without loading a model (nor torch)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from fractions import Fraction
from pathlib import Path

from tngvideo.api.paths import check_input


@dataclass(frozen=True)
class FrameInfo:
    """One packet of a .tngv: its index, frame type ("I" or "P"), pts and size in bytes."""

    index: int
    type: str
    pts: int
    bytes: int


@dataclass(frozen=True)
class VideoFileInfo:
    """A .tngv's sequence header, packet sizes and rates (`bytes`: the whole file, so `kbps` and
    `bpp` count the container too)."""

    file: str
    format: str
    version: int
    models: dict[str, str]  # role -> "name:weights-hash"
    width: int
    height: int
    frame_rate: str
    time_base: str
    frames: int
    packets: int
    gop: int
    rotation: int
    colour: dict[str, int]
    iframes: int
    audio_streams: int
    bytes: int
    i_frame_bytes: int
    p_frame_bytes: int
    kbps: float
    bpp: float
    frame_list: list[FrameInfo] = field(default_factory=list)

    def to_dict(self) -> dict:
        """The fields in order, as `tngvideo info --json` prints them."""
        return asdict(self)


@dataclass(frozen=True)
class ImageFileInfo:
    """A .tng's header fields and the sizes of its parts."""

    file: str
    format: str
    model: str
    weights_hash: str
    width: int
    height: int
    quality: float
    bytes: int
    header_bytes: int
    hyper_bytes: int
    latent_bytes: int
    bpp: float

    def to_dict(self) -> dict:
        """The fields in order, as `tngvideo info --json` prints them."""
        return asdict(self)


def describe(path: str | Path) -> VideoFileInfo | ImageFileInfo:
    """What a .tng (ImageFileInfo) or .tngv (VideoFileInfo) file holds. A file that is neither
    raises BitstreamError (a tngvideo.bitstream error, a ValueError)."""
    src = check_input(path)
    with src.open("rb") as f:
        magic = f.read(4)
    return _image_info(src) if magic == b"TNGI" else _video_info(src)


def _video_info(src: Path) -> VideoFileInfo:
    from tngvideo.bitstream.container import TngvReader
    from tngvideo.bitstream.packet import read_record

    with TngvReader(src) as r:
        h = r.header
        sizes = {"I": 0, "P": 0}
        frame_list = []
        for n, pk in enumerate(r.packets()):
            kind = "IP"[read_record(pk.data).frame_type]
            sizes[kind] += len(pk.data)
            frame_list.append(FrameInfo(n, kind, pk.pts, len(pk.data)))
        audio = len(r.audio_streams())
    rate = Fraction(*h.frame_rate)
    seconds = h.frame_count / rate if rate else 0
    size = src.stat().st_size
    return VideoFileInfo(
        file=str(src), format="tngv", version=h.version, models=h.models, width=h.width, height=h.height,
        frame_rate=f"{h.frame_rate[0]}/{h.frame_rate[1]}", time_base=f"{h.time_base[0]}/{h.time_base[1]}",
        frames=h.frame_count, packets=len(frame_list), gop=h.gop, rotation=h.rotation, colour=h.colour,
        iframes=len(h.iframes), audio_streams=audio, bytes=size, i_frame_bytes=sizes["I"], p_frame_bytes=sizes["P"],
        kbps=size * 8 / 1000 / float(seconds) if seconds else 0.0,
        bpp=size * 8 / (h.width * h.height * max(h.frame_count, 1)), frame_list=frame_list)


def _image_info(src: Path) -> ImageFileInfo:
    from tngvideo.bitstream import unpack_image

    data = src.read_bytes()
    f = unpack_image(data)
    return ImageFileInfo(
        file=str(src), format="tng-image", model=f.model, weights_hash=f.weights_hash.hex(), width=f.width,
        height=f.height, quality=f.quality, bytes=len(data), header_bytes=len(data) - len(f.hyper) - len(f.latent),
        hyper_bytes=len(f.hyper), latent_bytes=len(f.latent), bpp=len(data) * 8 / (f.width * f.height))
