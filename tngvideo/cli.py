"""Command line: `tngvideo encode | decode | segment | analyze | info | demo | image encode | image decode`.

Exit codes: 0 success, 1 internal error, 2 usage error, 3 bad input data,
4 input not found, 5 output cannot be written.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from tngvideo import __version__

EXIT_OK, EXIT_INTERNAL, EXIT_USAGE, EXIT_BAD_DATA, EXIT_NO_INPUT, EXIT_CANNOT_WRITE = 0, 1, 2, 3, 4, 5


class CliError(Exception):
    def __init__(self, message: str, code: int):
        super().__init__(message)
        self.code = code


def _log(args, msg: str) -> None:
    if not getattr(args, "quiet", False):
        print(msg, file=sys.stderr)


def _shown(path: str | Path) -> str:
    """A file name as messages show it: never empty, and shortened when very long."""
    text = str(path)
    if not text:
        return "''"
    return text if len(text) <= 200 else text[:100] + "..." + text[-60:]


def _input(path: str, *, allow_dir: bool = False) -> Path:
    if not path:
        raise CliError("the input file name is empty", EXIT_NO_INPUT)
    p = Path(path)
    try:
        found, regular, folder = p.exists(), p.is_file(), p.is_dir()
    except OSError as exc:  # a name too long, or otherwise impossible
        raise CliError(f"{_shown(path)}: cannot be read ({exc.strerror or exc})", EXIT_NO_INPUT) from None
    if not found:
        raise CliError(f"{_shown(path)}: no such file", EXIT_NO_INPUT)
    if not regular and not (allow_dir and folder):
        raise CliError(f"{_shown(path)}: not a regular file", EXIT_NO_INPUT)
    return p


def _same_file(a: Path, b: Path) -> bool:
    try:
        return a.exists() and b.exists() and os.path.samefile(a, b)
    except OSError:
        return False


def _output(path: str | Path, overwrite: bool, *, src: Path | None = None) -> Path:
    """An output file that can be written: checked before any work is done. Never the input (not
    even with -y), never an existing non-regular file, and without -y never an existing file."""
    p = Path(path)
    try:
        exists, regular = os.path.lexists(p), p.is_file()
        parent_ok = p.parent.is_dir()
    except OSError as exc:
        raise CliError(f"{_shown(p)}: cannot be written ({exc.strerror or exc})", EXIT_CANNOT_WRITE) from None
    if src is not None and _same_file(p, src):
        raise CliError(f"{_shown(p)}: is the input file (refusing to overwrite it)", EXIT_CANNOT_WRITE)
    if exists and not overwrite:
        raise CliError(f"{_shown(p)}: already exists (use -y to overwrite)", EXIT_CANNOT_WRITE)
    if exists and not regular:
        raise CliError(f"{_shown(p)}: exists and is not a regular file", EXIT_CANNOT_WRITE)
    if not parent_ok:
        raise CliError(f"{_shown(p)}: directory {_shown(p.parent)} does not exist", EXIT_CANNOT_WRITE)
    _check_writable(p.parent, p)
    return p


def _check_writable(folder: Path, shown: Path) -> None:
    """Create and remove a file in `folder`: an unwritable output is found before any work."""
    import tempfile

    try:
        with tempfile.TemporaryFile(dir=folder, prefix=".tngvideo-check-"):
            pass
    except OSError as exc:
        raise CliError(f"{_shown(shown)}: cannot write in {_shown(folder)} ({exc.strerror or exc})",
                       EXIT_CANNOT_WRITE) from None


def _frames_output(out: Path, overwrite: bool, count: int) -> None:
    """Checks for a numbered-image output (a folder, or a pattern with one %d): the pattern,
    the folder, and (without -y) that none of the `count` files it will write exists."""
    pattern = out / "frame_%06d.png" if out.is_dir() else out
    bare = pattern.name.replace("%%", "")
    if bare.count("%") != 1 or not re.search(r"%0?\d*d", bare):
        raise CliError(f"{_shown(out)}: a frame pattern needs exactly one %d (such as f_%05d.png)", EXIT_USAGE)
    if not pattern.parent.is_dir():
        raise CliError(f"{_shown(out)}: directory {_shown(pattern.parent)} does not exist", EXIT_CANNOT_WRITE)
    _check_writable(pattern.parent, out)
    if not overwrite:
        taken = _taken_frame(pattern, count)
        if taken is not None:
            raise CliError(f"{_shown(pattern.parent / taken)}: already exists (use -y to overwrite)",
                           EXIT_CANNOT_WRITE)


def _taken_frame(pattern: Path, count: int) -> str | None:
    """The first file in the pattern's folder that frames 0..count-1 would replace (one listing
    of the folder, however many frames)."""
    head, tail = re.split(r"%0?\d*d", pattern.name.replace("%%", "\0"), maxsplit=1)
    head, tail = head.replace("\0", "%"), tail.replace("\0", "%")
    for name in sorted(os.listdir(pattern.parent)):
        m = re.fullmatch(re.escape(head) + r"(\d+)" + re.escape(tail), name)
        if m and int(m.group(1)) < count and pattern.name % int(m.group(1)) == name:
            return name
    return None


def _codec(model: str, *, from_file: Path | None = None):
    """The image codec of a registered model: an unknown --model is a usage error, an unknown
    model named by a file (`from_file`) is bad input data."""
    from tngvideo.image.codec import ImageCodec
    from tngvideo.image.registry import UnknownModelError

    try:
        return ImageCodec.from_name(model)
    except UnknownModelError as exc:
        if from_file is not None:
            raise CliError(f"{from_file}: made with an {exc}", EXIT_BAD_DATA) from None
        raise CliError(str(exc), EXIT_USAGE) from None


def _check_image_input(src: Path, search: int) -> None:
    """The picture's size, from its header, against the limits and this machine's memory: before
    any pixel is decoded or encoded."""
    from tngvideo.bitstream.tng_file import check_size
    from tngvideo.limits import IMAGE_ENCODE, IMAGE_SEARCH, check_memory
    from tngvideo.media import probe_image

    w, h = probe_image(src)
    check_size(w, h)
    check_memory(w, h, IMAGE_SEARCH if search else IMAGE_ENCODE)


def cmd_image_encode(args) -> int:
    from tngvideo.metrics import psnr
    from tngvideo.fileio import atomic_write_bytes
    from tngvideo.media import read_image

    src = _input(args.input)
    out = _output(args.output or src.with_suffix(".tng"), args.overwrite, src=src)
    codec = _codec(args.model)
    _check_image_input(src, args.search)
    rgb = read_image(src)
    t = time.perf_counter()
    res = codec.compress_with_info(rgb, args.quality, search_steps=args.search)
    ms = (time.perf_counter() - t) * 1000
    atomic_write_bytes(out, res.data, overwrite=args.overwrite)
    h, w = rgb.shape[:2]
    _log(args, f"{out}: {w}x{h}, {len(res.data)} bytes, {len(res.data) * 8 / (w * h):.4f} bpp, "
               f"PSNR-RGB {psnr(rgb, res.reconstruction):.2f} dB, {ms:.0f} ms")
    return EXIT_OK


def cmd_image_decode(args) -> int:
    from tngvideo.bitstream import unpack_image, BitstreamError
    from tngvideo.media import write_image

    src = _input(args.input)
    out = _output(args.output or src.with_suffix(".png"), args.overwrite, src=src)
    data = src.read_bytes()
    try:
        model = unpack_image(data).model
    except BitstreamError as exc:
        raise CliError(f"{src}: {exc}", EXIT_BAD_DATA) from None
    codec = _codec(model, from_file=src)
    t = time.perf_counter()
    rgb = codec.decompress(data)
    ms = (time.perf_counter() - t) * 1000
    write_image(out, rgb, overwrite=args.overwrite)
    _log(args, f"{out}: {rgb.shape[1]}x{rgb.shape[0]}, {ms:.0f} ms")
    return EXIT_OK


def _progress(args, total: int | None, desc: str):
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit="frame", disable=args.quiet, file=sys.stderr, dynamic_ncols=True)


def _encoder_options(args):
    """The video encoder's options from the command line (subcommands without --search or
    --fixed-gop use the defaults for them)."""
    from tngvideo.video import EncoderOptions

    return EncoderOptions(preset=args.preset, search_steps=getattr(args, "search", 0),
                          adaptive_intra=not getattr(args, "fixed_gop", False), intra_offset=args.intra_offset,
                          p_offsets=args.p_offsets, motion_estimators=args.motion_estimators)


def _offsets(text: str) -> tuple[float, ...]:
    try:
        return tuple(float(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, not {text!r}") from None


def _bitrate_kbps(text: str) -> float:
    """'500k', '1.5M' or bits per second -> kbps."""
    scale = {"k": 1.0, "m": 1000.0}.get(text[-1:].lower())
    try:
        v = float(text[:-1]) * scale if scale else float(text) / 1000
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a bitrate like 500k or 1.5M, not {text!r}") from None
    if not (v > 0 and v < 1e7):
        raise argparse.ArgumentTypeError(f"the bitrate must be positive and finite, not {text!r}")
    return v


def _names(text: str) -> tuple[str, ...]:
    return tuple(v.strip() for v in text.split(",") if v.strip())


def _add_rate_allocation(p) -> None:
    """The encoder's quality cascade and motion estimators (EncoderOptions), for every subcommand that encodes video."""
    from tngvideo.video import DEFAULT_INTRA_OFFSET, DEFAULT_MOTION_ESTIMATORS, DEFAULT_P_OFFSETS, MOTION_ESTIMATORS

    p.add_argument("--intra-offset", type=float, default=DEFAULT_INTRA_OFFSET, metavar="D",
                   help=f"I-frames at quality + D (default: {DEFAULT_INTRA_OFFSET:g})")
    p.add_argument("--p-offsets", type=_offsets, default=DEFAULT_P_OFFSETS, metavar="D1,D2,...",
                   help="the k-th P-frame after an I-frame at quality + D[(k-1) mod n] (default: "
                        f"{','.join(f'{d:g}' for d in DEFAULT_P_OFFSETS)}; negative lists as --p-offsets=-1,0)")
    p.add_argument("--motion-estimators", type=_names, default=DEFAULT_MOTION_ESTIMATORS, metavar="NAMES",
                   help=f"flow estimators each P-frame tries, cheapest kept ({', '.join(MOTION_ESTIMATORS)}; "
                        f"default: {','.join(DEFAULT_MOTION_ESTIMATORS)})")


def cmd_encode(args) -> int:
    from tngvideo.media import probe_video

    src = _input(args.input, allow_dir=True)  # a folder of numbered images is a video too
    out = _output(args.output or src.with_suffix(".tngv"), args.overwrite, src=src)
    if args.gop < 1:
        raise CliError("--gop must be at least 1", EXIT_USAGE)
    if args.start < 0 or (args.frames is not None and args.frames < 1):
        raise CliError("--start must be >= 0 and --frames >= 1", EXIT_USAGE)
    probe_video(src)
    total = _frame_total(src, args.start, args.frames)
    if args.workers < 1 or (args.chunks is not None and args.chunks < 1):
        raise CliError("--workers and --chunks must be at least 1", EXIT_USAGE)
    if args.bitrate is not None and (args.workers > 1 or args.ray_address or (args.chunks or 1) > 1):
        raise CliError("--bitrate searches the quality by whole encodes in one process: drop --workers/--chunks",
                       EXIT_USAGE)
    _encoder_options(args)  # checked before any model loads
    from tngvideo.parallel import encode_parallel
    from tngvideo.videofile import encode_file

    with _progress(args, None if args.bitrate else total, "encode") as bar:
        s = encode_file(src, out, quality=args.quality, gop=args.gop, model=args.model,
                        max_frames=args.frames, start=args.start, progress=bar.update, workers=args.workers,
                        chunks=args.chunks, ray_address=args.ray_address, options=_encoder_options(args),
                        overwrite=args.overwrite, bitrate_kbps=args.bitrate, drop_audio=args.no_audio,
                        parallel=encode_parallel)
    for w in s.warnings:
        _log(args, f"tngvideo: warning: {w}")
    _log(args, f"{out}: {s.frames} frames at quality {s.quality:g}, {s.bytes} bytes, {s.kbps:.1f} kbps, "
               f"mean PSNR-RGB {s.mean_psnr:.2f} dB, {s.encode_fps:.2f} fps")
    return EXIT_OK


def _frame_total(src: Path, start: int, frames: int | None) -> int:
    """How many frames a command reading `src` from `start` (at most `frames`) will see: counted
    without decoding (`media.count_frames`), for the progress bar's total; --start past the end
    is a usage error."""
    from tngvideo.media import count_frames

    available = count_frames(src, limit=start + frames if frames else None)
    if start and start >= available:
        raise CliError(f"--start {start}: {_shown(src)} has {available} frames", EXIT_USAGE)
    return available - start


def cmd_batch(args) -> int:
    from tngvideo.parallel import batch_inputs, run_batch

    src = _input(args.input, allow_dir=True)
    out_dir = Path(args.output)
    if out_dir.exists() and not out_dir.is_dir():
        raise CliError(f"{out_dir}: not a folder", EXIT_CANNOT_WRITE)
    if args.workers < 1:
        raise CliError("--workers must be at least 1", EXIT_USAGE)
    try:
        total = len(batch_inputs(src))
    except UnicodeDecodeError:
        raise CliError(f"{src}: not a folder or a text list of files", EXIT_BAD_DATA) from None
    with _progress(args, total, "batch") as bar:
        entries, notes = run_batch(src, out_dir, quality=args.quality, gop=args.gop, model=args.model,
                                   workers=args.workers, ray_address=args.ray_address, progress=bar.update,
                                   options=_encoder_options(args))
    for n in notes:
        _log(args, f"tngvideo: note: {n}")
    counts = {k: sum(e.status == k for e in entries) for k in ("ok", "skipped", "failed")}
    for e in entries:
        if e.status == "failed":
            print(f"tngvideo: error: {e.input}: {e.error}", file=sys.stderr)
    _log(args, f"{counts['ok']} encoded, {counts['skipped']} skipped (already done), {counts['failed']} failed; "
               f"manifest {out_dir / 'manifest.jsonl'}")
    return EXIT_BAD_DATA if counts["failed"] else EXIT_OK


def cmd_decode(args) -> int:
    from tngvideo.bitstream.container import TngvReader
    from tngvideo.streaming.playback import decode_playlist, playlist_frames
    from tngvideo.videofile import decode_file

    src = _input(args.input)
    if args.start < 0 or (args.frames is not None and args.frames < 1) or args.rendition < 0:
        raise CliError("--start and --rendition must be >= 0 and --frames >= 1", EXIT_USAGE)
    to_stdout = args.output == "-"  # a y4m stream, written as the frames decode
    out = Path(args.output) if args.output and not to_stdout else src.with_suffix(".mkv")
    if src.suffix.lower() == ".m3u8":  # a master playlist (pick --rendition) or a media playlist
        _, total, _ = playlist_frames(src, rendition=args.rendition, start=args.start, frames=args.frames)
        if total == 0:
            raise CliError(f"--start {args.start}: past the end of the rendition", EXIT_USAGE)
    else:
        with TngvReader(src) as r:
            n = r.header.frame_count
        if n == 0:
            raise CliError(f"{_shown(src)}: holds no frames", EXIT_BAD_DATA)
        if args.start >= n:
            raise CliError(f"--start {args.start}: {_shown(src)} has {n} frames", EXIT_USAGE)
        total = min(n - args.start, args.frames or n)
    if not to_stdout:
        _decode_output(out, args.overwrite, src, total)
    with _progress(args, total, "decode") as bar:
        if to_stdout:
            res = _decode_to_stdout(src, args, bar.update)
        elif src.suffix.lower() == ".m3u8":
            res = decode_playlist(src, out, rendition=args.rendition, start=args.start, frames=args.frames,
                                  on_error=args.on_error, progress=bar.update, overwrite=args.overwrite)
        else:
            res = decode_file(src, out, start=args.start, frames=args.frames, on_error=args.on_error,
                              progress=bar.update, overwrite=args.overwrite, drop_audio=args.no_audio)
    for w in res.warnings:
        _log(args, f"tngvideo: warning: {w}")
    _log(args, f"{'stdout (y4m)' if to_stdout else out}: {res.frames} frames")
    if res.report.damaged:
        what = []
        if res.report.concealed:
            what.append(f"{len(res.report.concealed)} damaged frame(s) concealed: {_ranges(res.report.concealed)}")
        if res.report.missing:
            what.append(f"stream truncated, last {res.report.missing} frame(s) missing")
        print(f"tngvideo: error: {src}: {'; '.join(what)}", file=sys.stderr)
        return EXIT_BAD_DATA
    return EXIT_OK


def _decode_to_stdout(src: Path, args, progress):
    """`decode -o -`: a y4m stream on stdout, each frame written as soon as it is decoded (so
    `| ffplay -` starts at once); video only, at the nominal frame rate."""
    from fractions import Fraction

    from tngvideo.bitstream.container import TngvReader
    from tngvideo.media import write_y4m
    from tngvideo.streaming.playback import playlist_frames
    from tngvideo.videofile import DecodeReport, DecodeResult, decode_frames

    report = DecodeReport()
    warnings = []
    if src.suffix.lower() == ".m3u8":
        header, _, frames = playlist_frames(src, rendition=args.rendition, start=args.start, frames=args.frames,
                                            on_error=args.on_error, report=report)
    else:
        with TngvReader(src) as r:
            if r.audio_streams() and not args.no_audio:
                warnings.append("a y4m stream carries only the picture: the audio is not written to stdout")
        header, frames = decode_frames(src, start=args.start, frames=args.frames, on_error=args.on_error,
                                       report=report)
    if header.rotation:
        warnings.append(f"a y4m stream has no display rotation: the picture is {header.rotation} degrees off")

    def counted():
        for f in frames:
            progress(1)
            yield f

    n = write_y4m(sys.stdout.buffer, counted(), width=header.width, height=header.height,
                  frame_rate=Fraction(*header.frame_rate))
    return DecodeResult(n, report, warnings)


def _decode_output(out: Path, overwrite: bool, src: Path, count: int) -> None:
    """A decode's output: a video file of a known type, or numbered images (see _frames_output)."""
    from tngvideo.media import VIDEO_OUTPUTS

    if out.is_dir() or "%" in out.name:
        _frames_output(out, overwrite, count)
        return
    _output(out, overwrite, src=src)
    if out.suffix.lower() not in VIDEO_OUTPUTS:
        raise CliError(f"{_shown(out)}: unsupported output type '{out.suffix}' (use .mkv, .mp4, a folder "
                       "or a pattern like f_%05d.png)", EXIT_USAGE)


def _ranges(idx: list[int]) -> str:
    """[3, 4, 5, 9] -> '3-5, 9'"""
    out, i = [], 0
    while i < len(idx):
        j = i
        while j + 1 < len(idx) and idx[j + 1] == idx[j] + 1:
            j += 1
        out.append(str(idx[i]) if i == j else f"{idx[i]}-{idx[j]}")
        i = j + 1
    return ", ".join(out)


def cmd_segment(args) -> int:
    from tngvideo.media import probe_video
    from tngvideo.streaming.ladder import default_ladder, parse_ladder
    from tngvideo.streaming.segmenter import segment_video

    src = _input(args.input, allow_dir=True)
    out_dir = Path(args.output)
    if out_dir.exists() and (not out_dir.is_dir() or (any(out_dir.iterdir()) and not args.overwrite)):
        raise CliError(f"{out_dir}: exists and is not an empty folder (use -y to write into it)", EXIT_CANNOT_WRITE)
    if args.segment_seconds <= 0 or args.gop < 1:
        raise CliError("--segment-seconds must be positive and --gop at least 1", EXIT_USAGE)
    info = probe_video(src)
    ladder = parse_ladder(args.ladder) if args.ladder else default_ladder(info.width, info.height, float(info.frame_rate))
    if args.frames is not None and args.frames < 1:
        raise CliError("--frames must be at least 1", EXIT_USAGE)
    with _progress(args, _frame_total(src, 0, args.frames), "segment") as bar:
        res = segment_video(src, out_dir, ladder, segment_seconds=args.segment_seconds, gop=args.gop,
                            tolerance=args.tolerance, model=args.model, max_frames=args.frames, progress=bar.update,
                            options=_encoder_options(args))
    for w in res.warnings:
        _log(args, f"tngvideo: warning: {w}")
    for r in res.renditions:
        _log(args, f"rendition {r.index}: {r.width}x{r.height}, target {r.target_kbps:g} kbps, {len(r.segments)} segments, "
                   f"average {r.average_kbps:.1f} kbps, peak {r.peak_kbps:.1f} kbps, worst segment "
                   f"{100 * r.worst_rate_error:.1f}% off target")
    _log(args, f"wrote {res.master}")
    return EXIT_OK


def cmd_analyze(args) -> int:
    from tngvideo.analysis.peers import PEERS
    from tngvideo.analysis.video_report import analyze, write_outputs

    src = _input(args.input, allow_dir=True)
    compare = [c for c in (args.compare or "").split(",") if c]
    unknown = [c for c in compare if c not in PEERS]
    if unknown:
        raise CliError(f"unknown codec(s) for --compare: {', '.join(unknown)} (known: {', '.join(PEERS)})", EXIT_USAGE)
    is_tngv = src.is_file() and src.suffix.lower() == ".tngv"
    if is_tngv and not args.reference:
        raise CliError("analysing an existing .tngv needs --reference SOURCE", EXIT_USAGE)
    reference = _input(args.reference, allow_dir=True) if is_tngv else src
    out_dir = Path(args.output or (src.with_suffix("").name + "_analysis"))
    if out_dir.exists() and any(out_dir.iterdir()) and not args.overwrite:
        raise CliError(f"{out_dir}: not empty (use -y to overwrite)", EXIT_CANNOT_WRITE)
    qualities = [] if is_tngv else args.quality
    if args.frames is not None and args.frames < 1:
        raise CliError("--frames must be at least 1", EXIT_USAGE)
    with _progress(args, _analyze_total(src, reference, is_tngv, qualities, compare, args.frames), "analyze") as bar:
        a = analyze(reference, qualities=qualities, gop=args.gop, compare=compare, max_frames=args.frames,
                    model=args.model, tngv=src if is_tngv else None, progress=bar.update,
                    options=_encoder_options(args))
    write_outputs(a, out_dir)
    for s in a.summaries:
        _log(args, f"{s.codec:>9} {s.setting:6g}: {s.frames} frames, {s.kbps:9.1f} kbps, {s.bpp:.4f} bpp, "
                   f"PSNR-RGB {s.psnr_rgb:.2f} dB, PSNR-Y {s.psnr_y:.2f} dB, MS-SSIM {s.ms_ssim:.4f}")
    for peer, v in a.bd_rate_psnr.items():
        _log(args, f"BD-rate of tngvideo vs {peer} (PSNR-RGB): {v:+.2f}%")
    for w in a.warnings:
        _log(args, f"tngvideo: warning: {w}")
    _log(args, f"wrote {out_dir}/report.html, frames.csv, analysis.json and charts")
    return EXIT_OK


def _analyze_total(src: Path, reference: Path, is_tngv: bool, qualities: list[float], compare: list[str],
                   frames: int | None) -> int:
    """The steps analyze reports: each frame decoded from each encode (or from the given .tngv)
    and each frame of each peer codec's settings."""
    from tngvideo.analysis.peers import PEERS

    n = _frame_total(reference, 0, frames)
    if is_tngv:
        from tngvideo.bitstream.container import TngvReader

        with TngvReader(src) as r:
            return min(n, r.header.frame_count)
    return n * (len(qualities) + sum(len(PEERS[p][3]) for p in compare))


def cmd_info(args) -> int:
    src = _input(args.input)
    with src.open("rb") as f:
        magic = f.read(4)
    info = _image_info(src) if magic == b"TNGI" else _video_info(src)
    if args.json:
        print(json.dumps(info, indent=2))
        return EXIT_OK
    per_frame = info.pop("frame_list", [])
    for k, v in info.items():
        print(f"{k:>13}: {v:.4f}" if isinstance(v, float) else f"{k:>13}: {v}")
    if per_frame:
        print(f"{'frame':>7} {'type':>4} {'pts':>10} {'bytes':>8}")
        for f in per_frame:
            print(f"{f['index']:7d} {f['type']:>4} {f['pts']:10d} {f['bytes']:8d}")
    return EXIT_OK


def _video_info(src: Path) -> dict:
    from fractions import Fraction

    from tngvideo.bitstream.container import TngvReader
    from tngvideo.bitstream.packet import read_record

    with TngvReader(src) as r:
        h = r.header
        sizes = {"I": 0, "P": 0}
        frame_list = []
        for n, pk in enumerate(r.packets()):
            kind = "IP"[read_record(pk.data).frame_type]
            sizes[kind] += len(pk.data)
            frame_list.append({"index": n, "type": kind, "pts": pk.pts, "bytes": len(pk.data)})
        n = len(frame_list)
        audio = len(r.audio_streams())
    rate = Fraction(*h.frame_rate)
    seconds = h.frame_count / rate if rate else 0
    size = src.stat().st_size
    return {
        "file": str(src), "format": "tngv", "version": h.version, "models": h.models,
        "width": h.width, "height": h.height, "frame_rate": f"{h.frame_rate[0]}/{h.frame_rate[1]}",
        "time_base": f"{h.time_base[0]}/{h.time_base[1]}", "frames": h.frame_count, "packets": n, "gop": h.gop,
        "rotation": h.rotation, "colour": h.colour,
        "iframes": len(h.iframes), "audio_streams": audio, "bytes": size, "i_frame_bytes": sizes["I"],
        "p_frame_bytes": sizes["P"], "kbps": size * 8 / 1000 / float(seconds) if seconds else 0.0,
        "bpp": size * 8 / (h.width * h.height * max(h.frame_count, 1)),
        "frame_list": frame_list,
    }


def _image_info(src: Path) -> dict:
    from tngvideo.bitstream import unpack_image

    data = src.read_bytes()
    f = unpack_image(data)
    return {
        "file": str(src),
        "format": "tng-image",
        "model": f.model,
        "weights_hash": f.weights_hash.hex(),
        "width": f.width,
        "height": f.height,
        "quality": f.quality,
        "bytes": len(data),
        "header_bytes": len(data) - len(f.hyper) - len(f.latent),
        "hyper_bytes": len(f.hyper),
        "latent_bytes": len(f.latent),
        "bpp": len(data) * 8 / (f.width * f.height),
    }


def sample_image() -> np.ndarray:
    """A natural photograph shipped with an installed package (matplotlib's sample data)."""
    import matplotlib
    from tngvideo.media import read_image

    return read_image(Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg")


def cmd_demo(args) -> int:
    from tngvideo.analysis.image_bench import model_qualities
    from tngvideo.metrics import psnr

    rgb = sample_image()
    codec = _codec(args.model)
    h, w = rgb.shape[:2]
    print(f"model {codec.name} ({codec.weights_hash.hex()}), sample photo {w}x{h}")
    print(f"{'quality':>7} {'bytes':>7} {'bpp':>7} {'PSNR-RGB':>9} {'est/actual':>10} {'enc ms':>7} {'dec ms':>7}  round trip")
    for q in args.quality or model_qualities(codec, 4):
        t0 = time.perf_counter()
        res = codec.compress_with_info(rgb, q)
        t1 = time.perf_counter()
        dec = codec.decompress(res.data)
        t2 = time.perf_counter()
        exact = bool(np.array_equal(dec, res.reconstruction))
        print(f"{q:7.2f} {len(res.data):7d} {len(res.data) * 8 / (w * h):7.4f} {psnr(rgb, dec):9.2f} "
              f"{res.estimated_bits / res.payload_bits:10.4f} {(t1 - t0) * 1000:7.0f} {(t2 - t1) * 1000:7.0f}  "
              f"{'bit-exact' if exact else 'MISMATCH'}")
        if not exact:
            raise CliError("decoded image differs from the encoder's reconstruction", EXIT_INTERNAL)
    return EXIT_OK


class _HelpWithDefaults(argparse.HelpFormatter):
    """Every option's help ends with its default ("(default: 4)"), unless the help already says
    it or there is none to show (a flag, or an option whose absence means "not used")."""

    def _get_help_string(self, action) -> str:
        text = action.help or ""
        default = action.default
        if (default in (None, False, "", argparse.SUPPRESS) or isinstance(default, bool) or "default" in text.lower()
                or not action.option_strings):
            return text
        if isinstance(default, (list, tuple)):
            shown = ("," if isinstance(default, tuple) else " ").join(_plain(v) for v in default)
        else:
            shown = _plain(default)
        return f"{text} (default: {shown.replace('%', '%%')})".strip()


def _plain(v) -> str:
    return f"{v:g}" if isinstance(v, float) else str(v)


def build_parser() -> argparse.ArgumentParser:
    from tngvideo.image.registry import DEFAULT_MODEL

    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("-q", "--quiet", action="store_true", default=argparse.SUPPRESS, help="print only errors")
    common.add_argument("--threads", type=int, default=argparse.SUPPRESS, help="CPU threads for torch")
    p = argparse.ArgumentParser(prog="tngvideo", description="TNG learned image and video codec.",
                                formatter_class=_HelpWithDefaults)
    p.add_argument("--version", action="version", version=f"tngvideo {__version__}")
    p.add_argument("-q", "--quiet", action="store_true", help="print only errors")
    p.add_argument("--threads", type=int, default=None, help="CPU threads for torch")
    sub = p.add_subparsers(dest="command", required=True)

    def add(group, name, **kw):  # every sub-command also takes -q and --threads
        return group.add_parser(name, parents=[common], formatter_class=_HelpWithDefaults, **kw)

    from tngvideo.video import DEFAULT_GOP, DEFAULT_PRESET, PRESET_NAMES

    ve = add(sub, "encode", help="video (anything FFmpeg reads) -> .tngv")
    ve.add_argument("input", help="a video file, a folder of numbered images, or - for stdin")
    ve.add_argument("-o", "--output", help="the .tngv to write, or - for stdout (default: INPUT.tngv)")
    ve.add_argument("--quality", type=float, default=4.0, help="1 (smallest) .. 8 (best), fractional allowed")
    ve.add_argument("--bitrate", type=_bitrate_kbps, default=None, metavar="RATE",
                    help="aim the video stream at RATE (e.g. 500k, 1.5M) instead of a fixed quality: the quality is "
                         "searched by whole encodes (2-4 usually), starting from --quality")
    ve.add_argument("--gop", type=int, default=DEFAULT_GOP, help="intra period in frames")
    ve.add_argument("--start", type=int, default=0, metavar="N", help="skip the first N frames of the input")
    ve.add_argument("--frames", type=int, default=None, help="encode at most N frames (from --start)")
    ve.add_argument("-an", dest="no_audio", action="store_true", help="leave the audio out (subtitles are still copied)")
    ve.add_argument("--model", default=None, help="video model (default: the newest shipped)")
    ve.add_argument("--search", type=int, default=0, metavar="STEPS",
                    help="encoder-side search of I-frame latents and P-frame motion: fewer bytes, a much slower encode")
    ve.add_argument("--fixed-gop", action="store_true",
                    help="I-frames only every --gop frames; by default a frame is also coded intra where "
                         "that costs less (scene cuts); the decision codes each P-frame intra as well, a slower encode")
    preset_help = ("encoder speed against bytes: how often each P-frame tries every motion mode "
                   "(fast: one motion quality; medium: all every 4th P-frame; slow: all on every frame)")
    ve.add_argument("--preset", choices=PRESET_NAMES, default=DEFAULT_PRESET, help=preset_help)
    _add_rate_allocation(ve)
    ve.add_argument("--workers", type=int, default=1,
                    help="encode GOP-aligned chunks in parallel on N workers (Ray if installed, else processes)")
    ve.add_argument("--chunks", type=int, default=None, help="number of chunks (default: one per worker)")
    ve.add_argument("--ray-address", default=None, help="use a running Ray cluster (e.g. ray://host:10001)")
    ve.add_argument("-y", dest="overwrite", action="store_true", help="overwrite the output")
    ve.set_defaults(func=cmd_encode)

    ba = add(sub, "batch", help="encode a catalog: a folder of videos or a text file listing them")
    ba.add_argument("input", help="a folder, or a text file with one path per line")
    ba.add_argument("-o", "--output", required=True, help="output folder (one .tngv per input, manifest.jsonl)")
    ba.add_argument("--quality", type=float, default=4.0, help="1 (smallest) .. 8 (best), fractional allowed")
    ba.add_argument("--gop", type=int, default=DEFAULT_GOP, help="intra period in frames")
    ba.add_argument("--model", default=None, help="video model (default: the newest shipped)")
    ba.add_argument("--preset", choices=PRESET_NAMES, default=DEFAULT_PRESET, help=preset_help)
    _add_rate_allocation(ba)
    ba.add_argument("--workers", type=int, default=1, help="files encoded at once (Ray if installed, else processes)")
    ba.add_argument("--ray-address", default=None, help="use a running Ray cluster")
    ba.set_defaults(func=cmd_batch)
    vd = add(sub, "decode", help=".tngv -> .mkv (lossless FFV1), .mp4 (H.264) or numbered PNGs")
    vd.add_argument("input", help="a .tngv file, a segment, or an HLS playlist (.m3u8) written by `segment`")
    vd.add_argument("-o", "--output", help="OUT.mkv, OUT.mp4, a directory, a pattern like f_%%05d.png, or - for a "
                                           "y4m stream on stdout as the frames decode (default: INPUT.mkv)")
    vd.add_argument("--start", type=int, default=0, help="first frame to output")
    vd.add_argument("--frames", type=int, default=None, help="number of frames to output")
    vd.add_argument("-an", dest="no_audio", action="store_true", help="leave the audio out")
    vd.add_argument("--rendition", type=int, default=0, help="which rendition of a master playlist (0 = first)")
    vd.add_argument("--on-error", choices=("stop", "conceal"), default="stop",
                    help="stop at a damaged frame (default), or conceal it by repeating the last good frame "
                         "until the next I-frame (exits with code 3 and lists the concealed frames)")
    vd.add_argument("-y", dest="overwrite", action="store_true", help="overwrite the output")
    vd.set_defaults(func=cmd_decode)

    sg = add(sub, "segment", help="GOP-aligned segments at a bitrate ladder, with HLS playlists")
    sg.add_argument("input")
    sg.add_argument("-o", "--output", required=True, help="output folder (master.m3u8, r0/, r1/, ...)")
    sg.add_argument("--segment-seconds", type=float, default=2.0, help="segment length in seconds of source time")
    sg.add_argument("--ladder", default=None,
                    help="renditions, e.g. 800k,400k@640x360,150k@50%% (default: three rungs sized to the source)")
    sg.add_argument("--gop", type=int, default=DEFAULT_GOP, help="intra period inside a segment")
    sg.add_argument("--tolerance", type=float, default=0.05, help="rate control aim, relative to the target")
    sg.add_argument("--frames", type=int, default=None, help="segment only the first N frames")
    sg.add_argument("--model", default=None, help="video model (default: the newest shipped)")
    sg.add_argument("--preset", choices=PRESET_NAMES, default=DEFAULT_PRESET, help=preset_help)
    _add_rate_allocation(sg)
    sg.add_argument("-y", dest="overwrite", action="store_true", help="write into a non-empty output folder")
    sg.set_defaults(func=cmd_segment)

    an = add(sub, "analyze", help="per-frame rate-distortion analysis (CSV, JSON, charts, HTML)")
    an.add_argument("input", help="a video to encode, or a .tngv to decode (with --reference)")
    an.add_argument("-o", "--output", help="output folder (default: INPUT_analysis)")
    an.add_argument("--quality", type=float, nargs="+", default=[4.0], help="one or more qualities to encode at")
    an.add_argument("--gop", type=int, default=DEFAULT_GOP, help="intra period in frames")
    an.add_argument("--frames", type=int, default=None, help="analyse only the first N frames")
    an.add_argument("--compare", default="", help="peer codecs encoded in the same run: x264,x264-lowdelay,x265,svtav1")
    an.add_argument("--reference", help="the source video when INPUT is a .tngv")
    an.add_argument("--model", default=None, help="video model (default: the newest shipped)")
    an.add_argument("--preset", choices=PRESET_NAMES, default=DEFAULT_PRESET, help=preset_help)
    _add_rate_allocation(an)
    an.add_argument("-y", dest="overwrite", action="store_true", help="write into a non-empty output folder")
    an.set_defaults(func=cmd_analyze)

    d = add(sub, "demo", help="compress and decompress a sample photo, print bpp and PSNR")
    d.add_argument("--quality", type=float, nargs="+", default=None,
                   help="default: four qualities spread over the model's range")
    d.add_argument("--model", default=DEFAULT_MODEL, help="image model")
    d.set_defaults(func=cmd_demo)

    img = sub.add_parser("image", help="still images (.tng)", formatter_class=_HelpWithDefaults).add_subparsers(dest="image_command", required=True)
    e = add(img, "encode", help="image -> .tng")
    e.add_argument("input", help="any image Pillow reads, or - for stdin")
    e.add_argument("-o", "--output", help="the .tng to write, or - for stdout (default: INPUT.tng)")
    e.add_argument("--quality", type=float, default=6.0,
                   help="1 (smallest) .. the model's top level (10 for the shipped model), fractional allowed")
    e.add_argument("--model", default=DEFAULT_MODEL, help="image model")
    e.add_argument("--search", type=int, default=0, metavar="STEPS",
                   help="encoder-side latent search: fewer bytes for the same picture quality, "
                        "about 0.5 s per step for a 768x512 image on 2 cores (try 30); decoding is unchanged")
    e.add_argument("-y", dest="overwrite", action="store_true", help="overwrite the output")
    e.set_defaults(func=cmd_image_encode)
    dd = add(img, "decode", help=".tng -> PNG (or another format by suffix)")
    dd.add_argument("input", help="a .tng file, or - for stdin")
    dd.add_argument("-o", "--output", help="the image to write, or - for stdout (default: INPUT.png)")
    dd.add_argument("-y", dest="overwrite", action="store_true", help="overwrite the output")
    dd.set_defaults(func=cmd_image_decode)

    i = add(sub, "info", help="show a .tng or .tngv file's header fields, sizes and rates")
    i.add_argument("input")
    i.add_argument("--json", action="store_true", help="print the fields as JSON")
    i.set_defaults(func=cmd_info)
    return p


STDOUT_SUFFIX = {"encode": ".tngv", "image encode": ".tng", "image decode": ".png"}
STREAMED = {"decode"}  # commands that write `-o -` themselves, as they go


def _run_with_pipes(args) -> int:
    """`-` as input spools stdin to a temporary file; `-` as output writes a temporary file and
    copies it to stdout once the command has succeeded (so a failure never emits half a file)."""
    import shutil
    import tempfile

    command = args.command + (f" {args.image_command}" if getattr(args, "image_command", None) else "")
    pipe_in = getattr(args, "input", None) == "-"
    pipe_out = getattr(args, "output", None) == "-"
    if not (pipe_in or pipe_out):
        return args.func(args)
    streamed = pipe_out and command in STREAMED
    if pipe_out and command not in STDOUT_SUFFIX and not streamed:
        raise CliError(f"'{command}' cannot write to stdout", EXIT_USAGE)
    if pipe_in and not pipe_out and not getattr(args, "output", None) and (command in STDOUT_SUFFIX or command in STREAMED):
        raise CliError("reading from stdin needs -o OUTPUT", EXIT_USAGE)
    with tempfile.TemporaryDirectory(prefix="tngvideo-") as tmp:
        if pipe_in:
            args.input = str(Path(tmp) / "stdin")
            with open(args.input, "wb") as f:
                shutil.copyfileobj(sys.stdin.buffer, f)
        if pipe_out and not streamed:
            args.output = str(Path(tmp) / f"stdout{STDOUT_SUFFIX[command]}")
            args.overwrite = True
        code = args.func(args)
        if pipe_out and not streamed and code in (EXIT_OK, EXIT_BAD_DATA) and Path(args.output).is_file():
            with open(args.output, "rb") as f:
                shutil.copyfileobj(f, sys.stdout.buffer)
            sys.stdout.buffer.flush()
        return code


EXIT_BROKEN_PIPE = 128 + 13  # as a process killed by SIGPIPE: the reader of stdout went away


def main(argv: list[str] | None = None) -> int:
    try:
        return _main(argv)
    except BrokenPipeError:  # `tngvideo info --json x.tngv | head`: stop quietly, as cat does
        _drop_stdout()
        return EXIT_BROKEN_PIPE


def _drop_stdout() -> None:
    """Point stdout at /dev/null, so that the interpreter's last flush finds no closed pipe either."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError, AttributeError):  # stdout is not a real file (a test's capture)
        pass


def _main(argv: list[str] | None) -> int:
    args = build_parser().parse_args(argv)
    from tngvideo.bitstream import BitstreamError
    from tngvideo.errors import DecodeError, MediaError
    from tngvideo.image.registry import UnknownModelError
    from tngvideo.limits import MemoryLimitError
    from tngvideo.streaming.playlist import PlaylistError

    try:
        if args.threads:
            import torch

            torch.set_num_threads(args.threads)
        with _signals_interrupt():
            return _run_with_pipes(args)
    except CliError as exc:
        print(f"tngvideo: error: {exc}", file=sys.stderr)
        return exc.code
    except UnknownModelError as exc:  # a --model the user named (usage), or a name read from a file (bad data)
        named = getattr(args, "model", None)
        print(f"tngvideo: error: {exc}", file=sys.stderr)
        return EXIT_USAGE if named is not None else EXIT_BAD_DATA
    except (BitstreamError, DecodeError, MediaError, PlaylistError, MemoryLimitError) as exc:  # bad input data
        print(f"tngvideo: error: {_shown(getattr(args, 'input', '') or 'input')}: {exc}", file=sys.stderr)
        return EXIT_BAD_DATA
    except ValueError as exc:
        print(f"tngvideo: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except BrokenPipeError:
        raise
    except OSError as exc:
        name = exc.filename or getattr(args, "output", None) or getattr(args, "input", None) or "output"
        print(f"tngvideo: error: {_shown(name)}: {exc.strerror or exc}", file=sys.stderr)
        return EXIT_CANNOT_WRITE
    except Terminated as exc:
        print(f"tngvideo: stopped by signal {exc.signum}", file=sys.stderr)
        return 128 + exc.signum
    except KeyboardInterrupt:
        print("tngvideo: interrupted", file=sys.stderr)
        return 130


class Terminated(KeyboardInterrupt):
    """SIGTERM or SIGHUP, raised where the program is, so that partial outputs are cleaned up."""

    def __init__(self, signum: int):
        super().__init__(signum)
        self.signum = signum


@contextmanager
def _signals_interrupt():
    """While a command runs, SIGTERM and SIGHUP stop it the way Ctrl-C does (in the main thread)."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def stop(signum, frame):
        raise Terminated(signum)

    old = {sig: signal.signal(sig, stop) for sig in (signal.SIGTERM, signal.SIGHUP)}
    try:
        yield
    finally:
        for sig, handler in old.items():
            signal.signal(sig, handler)


if __name__ == "__main__":
    raise SystemExit(main())
