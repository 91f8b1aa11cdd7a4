"""Cut a video into GOP-aligned HLS segments at every rung of a bitrate ladder.

Segments are fragmented MP4, as HLS allows: each rendition has one init segment (`init.mp4`:
ftyp + moov with the rendition's sequence header, named by EXT-X-MAP) and media segments
(`segNNNNN.m4s`: moof + mdat) whose first frame is an I-frame, so each decodes with the init
segment alone (the two concatenated are a `.tngv` file). Only tngvideo decodes them. Segment boundaries follow the source timestamps: segment k starts at the first frame whose
time (from the first frame) reaches k * segment_seconds. Rate control needs no retraining: the
continuous quality knob is searched per segment (secant steps on log-bytes, bracketed) until the
segment's real file bytes are within the tolerance of the rendition's target bitrate.
"""

from __future__ import annotations

import json
import math
import os
import shutil
from dataclasses import asdict, dataclass, field, replace
from fractions import Fraction
from pathlib import Path
from typing import Callable, Iterable, Iterator

import numpy as np

from tngvideo.bitstream.container import SequenceHeader, write_fmp4_segment
from tngvideo.fileio import atomic_output
from tngvideo.media import VideoFrame, probe_video, read_video, resized
from tngvideo.ratecontrol import RateState, search_quality
from tngvideo.streaming.ladder import Rendition
from tngvideo.streaming.playlist import PlaylistSegment, VariantEntry, write_master_playlist, write_media_playlist
from tngvideo.video import DEFAULT_GOP, EncoderOptions
from tngvideo.video.registry import load_video_codecs
from tngvideo.videofile import EncodedSequence, encode_sequence

DEFAULT_SEGMENT_SECONDS = 2.0
INIT_URI = "init.mp4"  # each rendition's fragmented-MP4 init segment (EXT-X-MAP)
DEFAULT_TOLERANCE = 0.05  # aim; the promise to users is 10%


@dataclass
class SegmentResult:
    index: int
    uri: str
    frames: int
    start_pts: int
    duration: float  # seconds, from the source timestamps
    bytes: int
    kbps: float
    quality: float
    tries: int
    mean_psnr: float


@dataclass
class RenditionResult:
    index: int
    target_kbps: float
    width: int
    height: int
    uri: str
    segments: list[SegmentResult] = field(default_factory=list)

    @property
    def duration(self) -> float:
        return sum(s.duration for s in self.segments)

    @property
    def average_kbps(self) -> float:
        return sum(s.bytes for s in self.segments) * 8 / 1000 / max(self.duration, 1e-9)

    @property
    def peak_kbps(self) -> float:
        return max(s.kbps for s in self.segments)

    @property
    def worst_rate_error(self) -> float:
        """Largest |segment kbps / target - 1| over the segments."""
        return max(abs(s.kbps / self.target_kbps - 1) for s in self.segments)


@dataclass
class LadderResult:
    master: Path
    renditions: list[RenditionResult]
    warnings: list[str] = field(default_factory=list)


def split_segments(frames: Iterable[VideoFrame], time_base: Fraction, seconds: float) -> Iterator[list[VideoFrame]]:
    """Group frames into segments by source time: a segment starts at the first frame at or after k * seconds."""
    if seconds <= 0:
        raise ValueError("segment length must be positive")
    current: list[VideoFrame] = []
    first_pts = None
    seg = -1
    for f in frames:
        if first_pts is None:
            first_pts = f.pts
        k = math.floor(float((f.pts - first_pts) * time_base) / seconds + 1e-9)
        if k > seg and current:
            yield current
            current = []
        seg = max(seg, k)
        current.append(f)
    if current:
        yield current


def _resize(frames: list[VideoFrame], width: int, height: int) -> list[VideoFrame]:
    return [VideoFrame(resized(f.rgb, width, height), f.pts, f.duration) for f in frames]


def rendition_header(seq: EncodedSequence) -> SequenceHeader:
    """The header a rendition's init segment carries: the sequence's, without what differs
    from segment to segment (frames, I-frame index, first timestamp), which each media segment's
    packets give."""
    return replace(seq.header, frame_count=0, iframes=[], iframe_pts=[], start_pts=0, segmented=True)


def _encode_at_rate(dst: Path, *, quality_range: tuple[float, float], target_bytes: float, state: RateState,
                    tolerance: float, encode: Callable[[float], EncodedSequence]
                    ) -> tuple[int, float, int, EncodedSequence, bytes]:
    """Search the quality so that the media segment (fragmented MP4: moof + mdat) of
    `encode(quality)` is within `tolerance` of target_bytes. Returns (bytes, quality, tries,
    sequence, init segment) of the closest try, its media segment left at `dst`."""
    def write(q: float) -> tuple[int, Path, EncodedSequence, bytes]:
        seq = encode(q)
        init, media = write_fmp4_segment(rendition_header(seq), seq.packets)
        tmp = dst.with_name(f".{dst.stem}.q{q}.part{dst.suffix}")
        written.append(tmp)
        tmp.write_bytes(media)
        return len(media), tmp, seq, init

    written: list[Path] = []
    try:
        found = search_quality(write, lambda t: t[0], target=target_bytes, quality_range=quality_range,
                               tolerance=tolerance, state=state)
        size, path, seq, init = found.result
        os.replace(path, dst)
        return size, found.quality, len(found.tries), seq, init
    finally:
        for path in written:
            path.unlink(missing_ok=True)


def segment_video(src: str | Path, out_dir: str | Path, ladder: list[Rendition], *,
                  segment_seconds: float = DEFAULT_SEGMENT_SECONDS, gop: int = DEFAULT_GOP,
                  tolerance: float = DEFAULT_TOLERANCE, model: str | None = None, max_frames: int | None = None,
                  progress: Callable[[int], None] | None = None,
                  options: EncoderOptions = EncoderOptions()) -> LadderResult:
    """Write `out_dir/master.m3u8`, and per rendition i `out_dir/r{i}/index.m3u8` with its segments
    (every trial encode of the rate control with the encoder `options`)."""
    if not ladder:
        raise ValueError("the ladder needs at least one rendition")
    if not 0 < tolerance < 1:
        raise ValueError("tolerance must be in (0, 1)")
    info = probe_video(src)
    codecs = load_video_codecs(model)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    renditions, states = [], []
    for i, r in enumerate(ladder):
        w, h = r.size_for(info.width, info.height)
        sub = out_dir / f"r{i}"
        if sub.exists():
            shutil.rmtree(sub)
        sub.mkdir()
        renditions.append(RenditionResult(i, r.kbps, w, h, f"r{i}/index.m3u8"))
        states.append(RateState(quality=sum(codecs.pframes.quality_range) / 2))
    warnings = ["audio is not carried in segments"] if info.audio_streams else []
    for k, frames in enumerate(split_segments(read_video(src, max_frames=max_frames), info.time_base, segment_seconds)):
        ticks = frames[-1].pts - frames[0].pts + frames[-1].duration
        seconds = float(ticks * info.time_base)
        for rend, state in zip(renditions, states):
            scaled = _resize(frames, rend.width, rend.height)

            def encode(q: float, scaled=scaled, rend=rend) -> EncodedSequence:
                return encode_sequence(scaled, codecs, width=rend.width, height=rend.height, time_base=info.time_base,
                                       frame_rate=info.frame_rate, quality=q, gop=gop, colour=info.colour,
                                       rotation=info.rotation, options=options)

            uri = f"seg{k:05d}.m4s"
            size, q, tries, seq, init = _encode_at_rate(out_dir / f"r{rend.index}" / uri,
                                                  quality_range=codecs.pframes.quality_range,
                                                  target_bytes=rend.target_kbps * 1000 / 8 * seconds,
                                                  state=state, tolerance=tolerance, encode=encode)
            if k == 0:
                with atomic_output(out_dir / f"r{rend.index}" / INIT_URI) as tmp:
                    tmp.write_bytes(init)
            elif init != (out_dir / f"r{rend.index}" / INIT_URI).read_bytes():
                raise RuntimeError(f"rendition {rend.index} segment {k}: its init segment differs from the first")
            kbps = size * 8 / 1000 / seconds
            rend.segments.append(SegmentResult(k, uri, len(frames), frames[0].pts, seconds, size, kbps, q, tries,
                                               float(np.mean(seq.psnr))))
            if abs(kbps / rend.target_kbps - 1) > 0.10:
                warnings.append(f"rendition {rend.index} segment {k}: {kbps:.1f} kbps for a {rend.target_kbps:g} kbps "
                                f"target (quality {q:g} is the closest the model reaches)")
        if progress:
            progress(len(frames))
    if not renditions[0].segments:
        raise ValueError("the input has no video frames")
    for rend in renditions:
        write_media_playlist(out_dir / rend.uri, [PlaylistSegment(s.uri, s.duration) for s in rend.segments],
                             init_uri=INIT_URI)
    with atomic_output(out_dir / "ladder.json") as tmp:
        tmp.write_text(json.dumps({
            "source": str(src), "segment_seconds": segment_seconds, "gop": gop, "models": codecs.model_ids(),
            "renditions": [{**{k: v for k, v in asdict(r).items() if k != "segments"}, "init": INIT_URI,
                            "init_bytes": (out_dir / f"r{r.index}" / INIT_URI).stat().st_size,
                            "average_kbps": r.average_kbps,
                            "peak_kbps": r.peak_kbps, "segments": [asdict(s) for s in r.segments]}
                           for r in renditions],
        }, indent=2) + "\n")
    rate = float(info.frame_rate) if info.frame_rate else 0.0
    master = out_dir / "master.m3u8"
    write_master_playlist(master, [VariantEntry(r.uri, math.ceil(r.peak_kbps * 1000), math.ceil(r.average_kbps * 1000),
                                                r.width, r.height, rate) for r in renditions])
    return LadderResult(master, renditions, warnings)
