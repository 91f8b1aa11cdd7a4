"""Whole-file video workflows on top of the library: media -> .tngv and .tngv -> media.

The parallel engine is handed in (`encode_file(..., parallel=tngvideo.parallel.encode_parallel)`),
never imported: `tngvideo.parallel` builds on this module, not the other way round."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Callable, Iterable, Iterator, Protocol

import numpy as np

from tngvideo.bitstream import BitstreamError
from tngvideo.bitstream.container import SequenceHeader, TngvReader, write_tngv
from tngvideo.fileio import atomic_output
from tngvideo.bitstream.tng_file import check_size
from tngvideo.errors import DecodeError
from tngvideo.limits import VIDEO_DECODE, VIDEO_ENCODE, MemoryLimitError, check_memory
from tngvideo.media import VideoFrame, probe_video, read_video, write_video
from tngvideo.media_passthrough import copy_streams
from tngvideo.metrics import psnr
from tngvideo.ratecontrol import RateState, search_quality
from tngvideo.video import DEFAULT_GOP, EncoderOptions
from tngvideo.video.codec import FrameRecord
from tngvideo.video.registry import VideoCodecs, load_video_codecs
from tngvideo.video.sequence import SequenceDecoder, SequenceEncoder


@dataclass
class EncodedSequence:
    """A coded frame sequence in memory: what one `.tngv` file holds, before it is written."""

    header: SequenceHeader
    packets: list[tuple[bytes, int, int]]  # (packet, pts, duration)
    stats: list[FrameRecord]
    psnr: list[float]
    encode_ms: list[float]

    @property
    def duration_ticks(self) -> int:
        return self.packets[-1][1] - self.packets[0][1] + self.packets[-1][2]

    def write(self, dst: str | Path, *, passthrough_source: str | Path | None = None,
              overwrite: bool = True, passthrough_drop: tuple[str, ...] = (),
              passthrough_range: tuple[Fraction | None, Fraction | None] | None = None) -> list[str]:
        """Write atomically as a `.tngv` file, with the audio, subtitles and chapters of
        `passthrough_source` (without `overwrite`, only where no `dst` exists by then; without the
        stream types in `passthrough_drop`; with `passthrough_range`, only the packets that start
        in that span of seconds); returns warnings about what could not be carried."""
        copied = (copy_streams(passthrough_source, drop=passthrough_drop, time_range=passthrough_range)
                  if passthrough_source is not None else None)
        with atomic_output(dst, overwrite=overwrite) as tmp:
            return write_tngv(str(tmp), self.header, self.packets, copy_streams=copied)

    def span(self, time_base: Fraction) -> tuple[Fraction, Fraction]:
        """[first frame's time, last frame's end) in seconds."""
        return self.packets[0][1] * time_base, (self.packets[-1][1] + max(1, self.packets[-1][2])) * time_base


def encode_sequence(frames: Iterable[VideoFrame], codecs: VideoCodecs, *, width: int, height: int,
                    time_base: Fraction, frame_rate: Fraction, quality: float, gop: int = DEFAULT_GOP,
                    colour: dict | None = None, rotation: int = 0, first_index: int = 0,
                    progress: Callable[[int], None] | None = None,
                    options: EncoderOptions = EncoderOptions()) -> EncodedSequence:
    """Encode frames in memory as one closed-loop sequence (or, with `first_index`, as the chunk
    of a longer one that starts at that frame, which must be a GOP boundary)."""
    enc = SequenceEncoder(codecs, width=width, height=height, quality=quality, gop=gop, first_index=first_index,
                          options=options)
    psnrs, enc_ms = [], []
    for frame in frames:
        t0 = time.perf_counter()
        out = enc.encode(frame.rgb, pts=frame.pts, duration=frame.duration)
        enc_ms.append((time.perf_counter() - t0) * 1000)
        psnrs.append(psnr(frame.rgb, out.rgb))
        if progress:
            progress(1)
    header = enc.header(time_base=time_base, frame_rate=frame_rate, colour=colour, rotation=rotation)
    return EncodedSequence(header, enc.packets, enc.records, psnrs, enc_ms)


class ParallelEncode(Protocol):
    """The parallel engine `encode_file` is handed for workers > 1, chunks or a Ray address
    (`tngvideo.parallel.encode_parallel`): encodes `src` (from frame `start`) in GOP-aligned
    chunks and returns (the sequence, notes for the user, the number of chunks)."""

    def __call__(self, src: str | Path, *, quality: float, gop: int, model: str | None, max_frames: int | None,
                 workers: int, chunks: int | None, ray_address: str | None,
                 progress: Callable[[int], None] | None, options: EncoderOptions,
                 start: int) -> tuple[EncodedSequence, list[str], int]: ...


@dataclass
class EncodeSummary:
    frames: int
    bytes: int
    duration_seconds: float
    kbps: float
    mean_psnr: float
    encode_fps: float
    frame_stats: list[FrameRecord] = field(default_factory=list)
    frame_psnr: list[float] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    chunks: int = 1
    quality: float | None = None  # the quality coded at (the one found for a bitrate target)
    path: Path | None = None  # the file written


def encode_file(src: str | Path, dst: str | Path, *, quality: float, gop: int = DEFAULT_GOP,
                model: str | None = None, max_frames: int | None = None, start: int = 0,
                copy_streams: bool = True, drop_audio: bool = False,
                progress: Callable[[int], None] | None = None, codecs: VideoCodecs | None = None,
                workers: int = 1, chunks: int | None = None, ray_address: str | None = None,
                options: EncoderOptions = EncoderOptions(), overwrite: bool = True,
                bitrate_kbps: float | None = None, rate_tolerance: float = 0.05,
                parallel: ParallelEncode | None = None) -> EncodeSummary:
    """Encode a video file. With workers > 1 (or chunks, or a Ray address) the input is split at
    GOP boundaries and the chunks are encoded in parallel by `parallel`, the engine the caller
    hands in (`tngvideo.parallel.encode_parallel`); the file is the same byte for byte.
    `options`: how hard the encoder works (`EncoderOptions`: preset, search, adaptive intra).
    `bitrate_kbps`: instead of `quality`, the quality whose video stream comes within
    `rate_tolerance` of that bitrate (searched by whole encodes, `tngvideo.ratecontrol`; audio
    and container overhead not counted, as FFmpeg's -b:v); the summary says the quality chosen.
    `start`: skip the first `start` frames; with it or `max_frames`, the copied audio and subtitle
    packets are those that start within the encoded frames' time span. `drop_audio`: copy no
    audio (subtitles and chapters still are)."""
    info = probe_video(src)
    check_size(info.width, info.height)  # before anything is encoded
    check_memory(info.width, info.height, VIDEO_ENCODE)
    t0 = time.perf_counter()
    notes, n_chunks = [], 1
    if bitrate_kbps is not None and (workers > 1 or ray_address or (chunks or 1) > 1):
        raise ValueError("a bitrate target is searched by whole encodes in one process: use --workers 1")
    if bitrate_kbps is not None and not bitrate_kbps > 0:
        raise ValueError("the bitrate target must be positive")
    if workers > 1 or ray_address or (chunks or 1) > 1:
        if parallel is None:
            raise ValueError("workers > 1, chunks or a Ray address need the parallel engine: "
                             "pass parallel=tngvideo.parallel.encode_parallel")
        seq, notes, n_chunks = parallel(src, quality=quality, gop=gop, model=model, max_frames=max_frames, start=start,
                                        workers=max(1, workers), chunks=chunks, ray_address=ray_address,
                                        progress=progress, options=options)
    else:
        codecs = codecs or load_video_codecs(model)

        def encode(q: float) -> EncodedSequence:
            return encode_sequence(read_video(src, max_frames=max_frames, start=start), codecs, width=info.width, height=info.height, time_base=info.time_base,
                                   frame_rate=info.frame_rate, quality=q, gop=gop, colour=info.colour,
                                   rotation=info.rotation, progress=progress, options=options)
        if bitrate_kbps is None:
            seq = encode(quality)
        else:
            first = encode(quality)  # the input is read again for each try: no whole video held in memory
            if not first.packets:
                raise ValueError("the input has no video frames")
            seconds = float(first.duration_ticks * info.time_base)
            done = {round(quality, 2): first}

            def encode_once(q: float) -> EncodedSequence:
                return done.pop(round(q, 2)) if round(q, 2) in done else encode(q)
            found = search_quality(encode_once, lambda sq: sum(len(p[0]) for p in sq.packets),
                                   target=bitrate_kbps * 1000 / 8 * seconds, quality_range=codecs.pframes.quality_range,
                                   tolerance=rate_tolerance, state=RateState(quality=quality))
            seq, quality = found.result, found.quality
            video_kbps = found.size * 8 / 1000 / seconds
            notes.append(f"--bitrate {bitrate_kbps:g}k: quality {quality:g} ({len(found.tries)} tries) gives "
                         f"{video_kbps:.1f} kbps of video" + ("" if abs(video_kbps / bitrate_kbps - 1) <= 0.10 else
                                                            " (the closest the model's quality range reaches)"))
    elapsed = time.perf_counter() - t0
    span = seq.span(info.time_base)
    cut_end = max_frames is not None and len(seq.packets) >= max_frames
    trim = (span[0] if start else None, span[1] if cut_end else None) if start or cut_end else None
    warnings = notes + seq.write(dst, passthrough_source=src if copy_streams and not Path(src).is_dir() else None,
                                 overwrite=overwrite, passthrough_drop=("audio",) if drop_audio else (),
                                 passthrough_range=trim)
    size = Path(dst).stat().st_size
    duration = float(seq.duration_ticks * info.time_base)
    n = len(seq.packets)
    return EncodeSummary(
        frames=n, bytes=size, duration_seconds=duration,
        kbps=size * 8 / 1000 / max(duration, 1e-9), mean_psnr=float(np.mean(seq.psnr)),
        encode_fps=n / max(elapsed, 1e-9), frame_stats=seq.stats, frame_psnr=seq.psnr, warnings=warnings,
        chunks=n_chunks, quality=quality, path=Path(dst),
    )


@dataclass
class DecodeReport:
    """What on_error="conceal" had to do: concealed frame indices, frames missing at the end."""

    concealed: list[int] = field(default_factory=list)
    missing: int = 0

    @property
    def damaged(self) -> bool:
        return bool(self.concealed or self.missing)


@dataclass
class DecodeResult:
    frames: int
    report: DecodeReport
    warnings: list[str] = field(default_factory=list)
    path: Path | None = None  # the file (or numbered images) written; None for a stream


def decode_frames(src: str | Path, *, start: int = 0, frames: int | None = None,
                  codecs: VideoCodecs | None = None, on_error: str = "stop",
                  report: DecodeReport | None = None) -> tuple[SequenceHeader, Iterator[VideoFrame]]:
    """Decoded frames [start, start + frames): decoding begins at the I-frame at or before `start`.

    on_error="stop" raises `DecodeError` naming the first bad frame. on_error="conceal" repeats
    the last good frame (mid-grey before the first) from a damaged frame until the next I-frame
    that decodes, and records in `report` the concealed frames and how many frames a truncated
    stream lacks (those are not invented). The decoding itself: `SequenceDecoder`."""
    if on_error not in ("stop", "conceal"):
        raise ValueError("on_error must be 'stop' or 'conceal'")
    reader = TngvReader(src)
    header = reader.header
    try:  # all before any network runs
        check_memory(header.width, header.height, VIDEO_DECODE)
        dec = SequenceDecoder(header, codecs, on_error=on_error)
    except (FileNotFoundError, MemoryLimitError, DecodeError) as exc:
        reader.close()
        raise DecodeError(str(exc)) from None
    point = dec.seek(start)
    end = header.frame_count if frames is None else min(header.frame_count, start + frames)
    report = report if report is not None else DecodeReport()

    def gen() -> Iterator[VideoFrame]:
        try:
            for pk in reader.packets(from_pts=point.pts):
                if point.pts is not None and pk.pts < point.pts:
                    continue  # the seek landed early
                if dec.index >= end:
                    break
                f = dec.decode(pk.data, pts=pk.pts, duration=pk.duration)
                if f.concealed:
                    report.concealed.append(f.index)
                if f.index >= start:
                    yield VideoFrame(f.rgb, f.pts, f.duration)
            if dec.index < end:
                if on_error == "stop":
                    raise DecodeError(f"stream ends after {dec.index} of {header.frame_count} frames")
                report.missing = end - max(dec.index, start)
        finally:
            reader.close()

    return header, gen()


def decode_file(src: str | Path, dst: str | Path, *, start: int = 0, frames: int | None = None,
                on_error: str = "stop", progress: Callable[[int], None] | None = None,
                overwrite: bool = True, drop_audio: bool = False) -> DecodeResult:
    """Decode frames [start, start + frames) of a `.tngv` into `dst` (see `write_video`), with
    the audio and subtitle packets that start within their time span (all of them before the
    first frame too when `start` is 0); `drop_audio`: none of its audio."""
    report = DecodeReport()
    header, it = decode_frames(src, start=start, frames=frames, on_error=on_error, report=report)

    def counted():
        for f in it:
            if progress:
                progress(1)
            yield f

    n, warnings = write_video(
        dst, counted(), width=header.width, height=header.height, time_base=Fraction(*header.time_base),
        frame_rate=Fraction(*header.frame_rate), colour=header.colour, rotation=header.rotation,
        passthrough_source=src, trim_passthrough=not (start == 0 and frames is None), passthrough_tngv=True,
        passthrough_drop=("audio",) if drop_audio else (), trim_from_first_frame=start > 0, overwrite=overwrite)
    return DecodeResult(n, report, warnings, Path(dst))


__all__ = ["BitstreamError", "DecodeError", "DecodeReport", "DecodeResult", "EncodeSummary", "EncodedSequence",
           "ParallelEncode", "decode_file", "decode_frames", "encode_file", "encode_sequence"]
