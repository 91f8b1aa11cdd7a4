"""The video workflows of the public API (`tngvideo.encode_file`, `decode_file`, `segment`,
`analyze`, `encode_batch`): each checks its arguments, its input and its output before any model
loads (errors: `tngvideo.errors`), then runs the workflow modules and returns their typed result.

`progress`, where taken, is called as progress(frames_done, total): once with 0 before the work
starts (total: the frames expected, or None when unknown), then with each step's frame count."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO, Callable

from tngvideo.api.paths import check_frames_output, check_input, check_output, shown
from tngvideo.errors import BadInputError, OutputError, UsageError
from tngvideo.video import DEFAULT_GOP, EncoderOptions

if TYPE_CHECKING:
    from tngvideo.analysis.video_report import Analysis
    from tngvideo.parallel import BatchEntry
    from tngvideo.streaming.segmenter import LadderResult
    from tngvideo.videofile import DecodeResult, EncodeSummary

Progress = Callable[[int, "int | None"], None]
# The encoder's options: an EncoderOptions, its fields as a mapping (checked where the argument
# checks reach them, so a bad field is reported after a missing input), or None for the defaults.
Options = EncoderOptions | Mapping[str, object] | None


def _options(options: Options) -> EncoderOptions:
    """EncoderOptions from an instance, its fields as a mapping, or None (the defaults)."""
    if options is None:
        return EncoderOptions()
    return options if isinstance(options, EncoderOptions) else EncoderOptions(**options)


def _stepper(progress: Progress | None, total: int | None) -> Callable[[int], None] | None:
    """Start `progress` at `total` and return the per-step callback the workflows take."""
    if progress is None:
        return None
    progress(0, total)
    return lambda n: progress(n, total)


def frame_total(src: Path, start: int, frames: int | None) -> int:
    """How many frames reading `src` from `start` (at most `frames`) gives, counted without
    decoding; `start` past the end is a UsageError."""
    from tngvideo.media import count_frames

    available = count_frames(src, limit=start + frames if frames else None)
    if start and start >= available:
        raise UsageError(f"--start {start}: {shown(src)} has {available} frames")
    return available - start


def encode_file(src: str | Path, dst: str | Path | None = None, *, quality: float = 4.0, gop: int = DEFAULT_GOP,
                model: str | None = None, start: int = 0, frames: int | None = None,
                bitrate_kbps: float | None = None, workers: int = 1, chunks: int | None = None,
                ray_address: str | None = None, options: Options = None, drop_audio: bool = False,
                overwrite: bool = False, progress: Progress | None = None) -> EncodeSummary:
    """Encode a video (a file, or a folder of numbered images) to a .tngv (default: next to `src`).

    `quality` 1 (smallest) .. 8 (best); `bitrate_kbps` instead searches the quality whose video
    stream comes closest to that rate. `start`/`frames`: the span of the input coded. `workers`,
    `chunks`, `ray_address`: GOP-aligned chunks encoded in parallel (the same bytes). `options`:
    an `EncoderOptions` (or its fields as a mapping). The result names the file (`.path`)."""
    src = check_input(src, allow_dir=True)  # a folder of numbered images is a video too
    out = check_output(dst or src.with_suffix(".tngv"), overwrite, src=src)
    if gop < 1:
        raise UsageError("--gop must be at least 1")
    if start < 0 or (frames is not None and frames < 1):
        raise UsageError("--start must be >= 0 and --frames >= 1")
    from tngvideo.media import probe_video

    probe_video(src)
    total = frame_total(src, start, frames)
    if workers < 1 or (chunks is not None and chunks < 1):
        raise UsageError("--workers and --chunks must be at least 1")
    if bitrate_kbps is not None and (workers > 1 or ray_address or (chunks or 1) > 1):
        raise UsageError("--bitrate searches the quality by whole encodes in one process: drop --workers/--chunks")
    opts = _options(options)  # checked before any model loads
    from tngvideo import videofile
    from tngvideo.parallel import encode_parallel

    step = _stepper(progress, None if bitrate_kbps else total)
    return videofile.encode_file(src, out, quality=quality, gop=gop, model=model, max_frames=frames, start=start,
                                 progress=step, workers=workers, chunks=chunks, ray_address=ray_address,
                                 options=opts, overwrite=overwrite, bitrate_kbps=bitrate_kbps,
                                 drop_audio=drop_audio, parallel=encode_parallel)


def decode_file(src: str | Path, dst: str | Path | BinaryIO | None = None, *, start: int = 0,
                frames: int | None = None, rendition: int = 0, on_error: str = "stop", drop_audio: bool = False,
                overwrite: bool = False, progress: Progress | None = None) -> DecodeResult:
    """Decode frames [start, start + frames) of a .tngv, a segment, or an HLS playlist written by
    `segment` (`rendition`: which of a master playlist's renditions) into `dst`: .mkv (lossless
    FFV1), .mp4, a folder or a pattern like f_%05d.png for numbered PNGs (default: next to `src`,
    .mkv), or a writable binary stream, which gets a y4m stream as the frames decode.
    on_error="conceal" repeats the last good frame over damaged ones; the result's `report` lists
    them (`report.damaged`)."""
    from tngvideo.bitstream.container import TngvReader
    from tngvideo.streaming.playback import playlist_frames

    src = check_input(src)
    if start < 0 or (frames is not None and frames < 1) or rendition < 0:
        raise UsageError("--start and --rendition must be >= 0 and --frames >= 1")
    stream = dst if dst is not None and not isinstance(dst, (str, Path)) else None
    out = Path(dst) if dst and stream is None else src.with_suffix(".mkv")
    playlist = src.suffix.lower() == ".m3u8"  # a master playlist (pick `rendition`) or a media playlist
    if playlist:
        _, total, _ = playlist_frames(src, rendition=rendition, start=start, frames=frames)
        if total == 0:
            raise UsageError(f"--start {start}: past the end of the rendition")
    else:
        with TngvReader(src) as r:
            n = r.header.frame_count
        if n == 0:
            raise BadInputError(f"{shown(src)}: holds no frames")
        if start >= n:
            raise UsageError(f"--start {start}: {shown(src)} has {n} frames")
        total = min(n - start, frames or n)
    if stream is None:
        _check_decode_output(out, overwrite, src, total)
    step = _stepper(progress, total)
    if stream is not None:
        return _decode_to_stream(src, stream, start=start, frames=frames, rendition=rendition, on_error=on_error,
                                 drop_audio=drop_audio, progress=step)
    if playlist:
        from tngvideo.streaming.playback import decode_playlist

        return decode_playlist(src, out, rendition=rendition, start=start, frames=frames, on_error=on_error,
                               progress=step, overwrite=overwrite)
    from tngvideo import videofile

    return videofile.decode_file(src, out, start=start, frames=frames, on_error=on_error, progress=step,
                                 overwrite=overwrite, drop_audio=drop_audio)


def _check_decode_output(out: Path, overwrite: bool, src: Path, count: int) -> None:
    """A decode's output: a video file of a known type, or numbered images."""
    from tngvideo.media import VIDEO_OUTPUTS

    if out.is_dir() or "%" in out.name:
        check_frames_output(out, overwrite, count)
        return
    check_output(out, overwrite, src=src)
    if out.suffix.lower() not in VIDEO_OUTPUTS:
        raise UsageError(f"{shown(out)}: unsupported output type '{out.suffix}' (use .mkv, .mp4, a folder "
                         "or a pattern like f_%05d.png)")


def _decode_to_stream(src: Path, stream: BinaryIO, *, start: int, frames: int | None, rendition: int,
                      on_error: str, drop_audio: bool, progress: Callable[[int], None] | None) -> DecodeResult:
    """A y4m stream, each frame written as soon as it is decoded (so a player reading it starts
    at once); video only, at the nominal frame rate."""
    from fractions import Fraction

    from tngvideo.bitstream.container import TngvReader
    from tngvideo.media import write_y4m
    from tngvideo.streaming.playback import playlist_frames
    from tngvideo.videofile import DecodeReport, DecodeResult, decode_frames

    report = DecodeReport()
    warnings = []
    if src.suffix.lower() == ".m3u8":
        header, _, it = playlist_frames(src, rendition=rendition, start=start, frames=frames, on_error=on_error,
                                        report=report)
    else:
        with TngvReader(src) as r:
            if r.audio_streams() and not drop_audio:
                warnings.append("a y4m stream carries only the picture: the audio is not written to stdout")
        header, it = decode_frames(src, start=start, frames=frames, on_error=on_error, report=report)
    if header.rotation:
        warnings.append(f"a y4m stream has no display rotation: the picture is {header.rotation} degrees off")

    def counted():
        for f in it:
            if progress:
                progress(1)
            yield f

    n = write_y4m(stream, counted(), width=header.width, height=header.height, frame_rate=Fraction(*header.frame_rate))
    return DecodeResult(n, report, warnings)


def segment(src: str | Path, out_dir: str | Path, *, ladder: str | None = None, segment_seconds: float = 2.0,
            gop: int = DEFAULT_GOP, tolerance: float = 0.05, frames: int | None = None, model: str | None = None,
            options: Options = None, overwrite: bool = False, progress: Progress | None = None) -> LadderResult:
    """GOP-aligned fMP4 segments of `segment_seconds` at each rung of a bitrate `ladder` (e.g.
    "800k,400k@640x360,150k@50%"; default: three rungs sized to the source), with HLS playlists
    (`out_dir/master.m3u8`). `out_dir` must be missing or empty unless `overwrite`."""
    from tngvideo.media import probe_video
    from tngvideo.streaming.ladder import default_ladder, parse_ladder
    from tngvideo.streaming.segmenter import segment_video

    src = check_input(src, allow_dir=True)
    out_dir = Path(out_dir)
    if out_dir.exists() and (not out_dir.is_dir() or (any(out_dir.iterdir()) and not overwrite)):
        raise OutputError(f"{out_dir}: exists and is not an empty folder (use -y to write into it)")
    if segment_seconds <= 0 or gop < 1:
        raise UsageError("--segment-seconds must be positive and --gop at least 1")
    info = probe_video(src)
    rungs = parse_ladder(ladder) if ladder else default_ladder(info.width, info.height, float(info.frame_rate))
    if frames is not None and frames < 1:
        raise UsageError("--frames must be at least 1")
    step = _stepper(progress, frame_total(src, 0, frames))
    return segment_video(src, out_dir, rungs, segment_seconds=segment_seconds, gop=gop, tolerance=tolerance,
                         model=model, max_frames=frames, progress=step, options=_options(options))


def analyze(src: str | Path, out_dir: str | Path | None = None, *, qualities: list[float] = (4.0,),
            gop: int = DEFAULT_GOP, frames: int | None = None, compare: list[str] = (),
            reference: str | Path | None = None, model: str | None = None, options: Options = None,
            overwrite: bool = False, progress: Progress | None = None) -> Analysis:
    """Per-frame rate-distortion analysis of `src` encoded at each of `qualities` (and by the
    peer codecs named in `compare`), or of an existing .tngv `src` against its `reference`
    source; writes report.html, frames.csv, analysis.json and charts into `out_dir` (default:
    SRC_analysis in the current folder), which the result names (`.out_dir`)."""
    from tngvideo.analysis import video_report
    from tngvideo.analysis.peers import PEERS

    src = check_input(src, allow_dir=True)
    unknown = [c for c in compare if c not in PEERS]
    if unknown:
        raise UsageError(f"unknown codec(s) for --compare: {', '.join(unknown)} (known: {', '.join(PEERS)})")
    is_tngv = src.is_file() and src.suffix.lower() == ".tngv"
    if is_tngv and not reference:
        raise UsageError("analysing an existing .tngv needs --reference SOURCE")
    ref = check_input(reference, allow_dir=True) if is_tngv else src
    out_dir = Path(out_dir or (src.with_suffix("").name + "_analysis"))
    if out_dir.exists() and any(out_dir.iterdir()) and not overwrite:
        raise OutputError(f"{out_dir}: not empty (use -y to overwrite)")
    qualities = [] if is_tngv else list(qualities)
    if frames is not None and frames < 1:
        raise UsageError("--frames must be at least 1")
    n = frame_total(ref, 0, frames)
    if is_tngv:
        from tngvideo.bitstream.container import TngvReader

        with TngvReader(src) as r:
            total = min(n, r.header.frame_count)
    else:
        total = n * (len(qualities) + sum(len(PEERS[p][3]) for p in compare))
    step = _stepper(progress, total)
    a = video_report.analyze(ref, qualities=qualities, gop=gop, compare=list(compare), max_frames=frames,
                             model=model, tngv=src if is_tngv else None, progress=step, options=_options(options))
    video_report.write_outputs(a, out_dir)
    return replace(a, out_dir=out_dir)


def encode_batch(src: str | Path, out_dir: str | Path, *, quality: float = 4.0, gop: int = DEFAULT_GOP,
                 model: str | None = None, workers: int = 1, ray_address: str | None = None,
                 options: Options = None, progress: Progress | None = None
                 ) -> tuple[list[BatchEntry], list[str]]:
    """Encode a catalog (a folder of videos, or a text file listing one per line) to
    out_dir/<name>.tngv with a manifest.jsonl; finished outputs are skipped, so a rerun resumes.
    Returns (one entry per input, with its status, notes for the user)."""
    from tngvideo.parallel import batch_inputs, run_batch

    src = check_input(src, allow_dir=True)
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise OutputError(f"{out_dir}: not a folder")
    if workers < 1:
        raise UsageError("--workers must be at least 1")
    try:
        total = len(batch_inputs(src))
    except UnicodeDecodeError:
        raise BadInputError(f"{src}: not a folder or a text list of files") from None
    return run_batch(src, out_dir, quality=quality, gop=gop, model=model, workers=workers, ray_address=ray_address,
                     progress=_stepper(progress, total), options=_options(options))
