"""Whole-file video workflows on top of the library: media -> .tngv and .tngv -> media."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Callable, Iterator

import numpy as np

from tngvideo.analysis.metrics import psnr
from tngvideo.bitstream import BitstreamError
from tngvideo.bitstream.container import SequenceHeader, TngvReader, write_tngv
from tngvideo.fileio import atomic_output
from tngvideo.image.latent_codec import DecodeError
from tngvideo.media import VideoFrame, probe_video, read_video, write_video
from tngvideo.video.codec import FrameStats, VideoDecoder, VideoEncoder
from tngvideo.video.registry import VideoCodecs, load_video_codecs

DEFAULT_GOP = 16


@dataclass
class EncodeSummary:
    frames: int
    bytes: int
    duration_seconds: float
    kbps: float
    mean_psnr: float
    encode_fps: float
    frame_stats: list[FrameStats] = field(default_factory=list)
    frame_psnr: list[float] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def encode_file(src: str | Path, dst: str | Path, *, quality: float, gop: int = DEFAULT_GOP,
                model: str | None = None, max_frames: int | None = None, copy_audio: bool = True,
                progress: Callable[[int], None] | None = None, codecs: VideoCodecs | None = None) -> EncodeSummary:
    info = probe_video(src)
    codecs = codecs or load_video_codecs(model)
    enc = VideoEncoder(codecs.image, codecs.pframes, width=info.width, height=info.height, quality=quality, gop=gop)
    packets, stats, psnrs, pts_list = [], [], [], []
    t0 = time.perf_counter()
    for frame in read_video(src, max_frames=max_frames):
        out = enc.encode(frame.rgb)
        packets.append((out.packet, frame.pts, frame.duration))
        pts_list.append(frame.pts)
        stats.append(out.stats)
        psnrs.append(psnr(frame.rgb, out.reconstruction))
        if progress:
            progress(1)
    elapsed = time.perf_counter() - t0
    if not packets:
        raise DecodeError("the input has no video frames")
    header = SequenceHeader(
        width=info.width, height=info.height,
        time_base=(info.time_base.numerator, info.time_base.denominator),
        frame_rate=(info.frame_rate.numerator, info.frame_rate.denominator),
        gop=gop, frame_count=len(packets), iframes=[s.index for s in stats if s.frame_type == 0],
        iframe_pts=[pts_list[s.index] for s in stats if s.frame_type == 0],
        models=codecs.model_ids(), colour=info.colour, start_pts=pts_list[0],
    )
    with atomic_output(dst) as tmp:
        warnings = write_tngv(str(tmp), header, packets, audio_source=src if copy_audio and info.audio_streams else None)
    size = Path(dst).stat().st_size
    duration = float((pts_list[-1] - pts_list[0] + packets[-1][2]) * info.time_base)
    return EncodeSummary(
        frames=len(packets), bytes=size, duration_seconds=duration,
        kbps=size * 8 / 1000 / max(duration, 1e-9), mean_psnr=float(np.mean(psnrs)),
        encode_fps=len(packets) / max(elapsed, 1e-9), frame_stats=stats, frame_psnr=psnrs, warnings=warnings,
    )


def _check_models(header: SequenceHeader, codecs: VideoCodecs) -> None:
    if header.models != codecs.model_ids():
        raise DecodeError(f"file was made with models {header.models}, this decoder has {codecs.model_ids()}")


def decode_frames(src: str | Path, *, start: int = 0, frames: int | None = None,
                  codecs: VideoCodecs | None = None) -> tuple[SequenceHeader, Iterator[VideoFrame]]:
    """Decoded frames [start, start + frames): decoding begins at the I-frame at or before `start`."""
    reader = TngvReader(src)
    header = reader.header
    try:
        codecs = codecs or load_video_codecs(str(header.models.get("video", "")).split(":")[0])
    except FileNotFoundError as exc:
        reader.close()
        raise DecodeError(str(exc)) from None
    _check_models(header, codecs)
    k = max([j for j, i in enumerate(header.iframes) if i <= start], default=None)
    first_i, first_pts = (header.iframes[k], header.iframe_pts[k]) if k is not None else (0, None)
    end = header.frame_count if frames is None else min(header.frame_count, start + frames)

    def gen() -> Iterator[VideoFrame]:
        dec = VideoDecoder(codecs.image, codecs.pframes, width=header.width, height=header.height)
        try:
            n = first_i
            for pk in reader.packets(from_pts=first_pts):
                if first_pts is not None and pk.pts < first_pts:
                    continue  # the seek landed early
                if n >= end:
                    break
                try:
                    p, rgb = dec.decode(pk.data)
                except DecodeError as exc:
                    raise DecodeError(f"frame {n}: {exc}") from None
                if p.index != n:
                    raise DecodeError(f"frame {n}: packet out of order (carries index {p.index})")
                if n >= start:
                    yield VideoFrame(rgb, pk.pts, pk.duration)
                n += 1
            if n < end:
                raise DecodeError(f"stream ends after {n} of {header.frame_count} frames")
        finally:
            reader.close()

    return header, gen()


def decode_file(src: str | Path, dst: str | Path, *, start: int = 0, frames: int | None = None,
                progress: Callable[[int], None] | None = None) -> int:
    header, it = decode_frames(src, start=start, frames=frames)

    def counted():
        for f in it:
            if progress:
                progress(1)
            yield f

    return write_video(dst, counted(), width=header.width, height=header.height,
                       time_base=Fraction(*header.time_base), frame_rate=Fraction(*header.frame_rate))


__all__ = ["BitstreamError", "DecodeError", "EncodeSummary", "decode_file", "decode_frames", "encode_file"]
