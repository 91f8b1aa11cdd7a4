"""One adapter per command: the parsed arguments to a call of the public API (tngvideo.api), its
result to printed lines and an exit code. No codec or workflow logic lives here."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from tngvideo.cli.exits import EXIT_BAD_DATA, EXIT_INTERNAL, EXIT_OK, CliError
from tngvideo.cli.options import encoder_options
from tngvideo.cli.output import log, progress, ranges


def cmd_encode(args) -> int:
    from tngvideo.api.video import encode_file

    with progress(args, "encode") as report:
        s = encode_file(args.input, args.output, quality=args.quality, gop=args.gop, model=args.model,
                        start=args.start, frames=args.frames, bitrate_kbps=args.bitrate, workers=args.workers,
                        chunks=args.chunks, ray_address=args.ray_address, options=encoder_options(args),
                        drop_audio=args.no_audio, overwrite=args.overwrite, progress=report)
    for w in s.warnings:
        log(args, f"tngvideo: warning: {w}")
    log(args, f"{s.path}: {s.frames} frames at quality {s.quality:g}, {s.bytes} bytes, {s.kbps:.1f} kbps, "
              f"mean PSNR-RGB {s.mean_psnr:.2f} dB, {s.encode_fps:.2f} fps")
    return EXIT_OK


def cmd_batch(args) -> int:
    from tngvideo.api.video import encode_batch

    with progress(args, "batch") as report:
        entries, notes = encode_batch(args.input, args.output, quality=args.quality, gop=args.gop, model=args.model,
                                      workers=args.workers, ray_address=args.ray_address,
                                      options=encoder_options(args), progress=report)
    for n in notes:
        log(args, f"tngvideo: note: {n}")
    counts = {k: sum(e.status == k for e in entries) for k in ("ok", "skipped", "failed")}
    for e in entries:
        if e.status == "failed":
            print(f"tngvideo: error: {e.input}: {e.error}", file=sys.stderr)
    log(args, f"{counts['ok']} encoded, {counts['skipped']} skipped (already done), {counts['failed']} failed; "
              f"manifest {Path(args.output) / 'manifest.jsonl'}")
    return EXIT_BAD_DATA if counts["failed"] else EXIT_OK


def cmd_decode(args) -> int:
    from tngvideo.api.video import decode_file

    to_stdout = args.output == "-"  # a y4m stream, written as the frames decode
    with progress(args, "decode") as report:
        res = decode_file(args.input, sys.stdout.buffer if to_stdout else args.output, start=args.start,
                          frames=args.frames, rendition=args.rendition, on_error=args.on_error,
                          drop_audio=args.no_audio, overwrite=args.overwrite, progress=report)
    for w in res.warnings:
        log(args, f"tngvideo: warning: {w}")
    log(args, f"{'stdout (y4m)' if to_stdout else res.path}: {res.frames} frames")
    if res.report.damaged:
        what = []
        if res.report.concealed:
            what.append(f"{len(res.report.concealed)} damaged frame(s) concealed: {ranges(res.report.concealed)}")
        if res.report.missing:
            what.append(f"stream truncated, last {res.report.missing} frame(s) missing")
        print(f"tngvideo: error: {Path(args.input)}: {'; '.join(what)}", file=sys.stderr)
        return EXIT_BAD_DATA
    return EXIT_OK


def cmd_segment(args) -> int:
    from tngvideo.api.video import segment

    with progress(args, "segment") as report:
        res = segment(args.input, args.output, ladder=args.ladder, segment_seconds=args.segment_seconds, gop=args.gop,
                      tolerance=args.tolerance, frames=args.frames, model=args.model, options=encoder_options(args),
                      overwrite=args.overwrite, progress=report)
    for w in res.warnings:
        log(args, f"tngvideo: warning: {w}")
    for r in res.renditions:
        log(args, f"rendition {r.index}: {r.width}x{r.height}, target {r.target_kbps:g} kbps, {len(r.segments)} segments, "
                  f"average {r.average_kbps:.1f} kbps, peak {r.peak_kbps:.1f} kbps, worst segment "
                  f"{100 * r.worst_rate_error:.1f}% off target")
    log(args, f"wrote {res.master}")
    return EXIT_OK


def cmd_analyze(args) -> int:
    from tngvideo.api.video import analyze

    compare = [c for c in (args.compare or "").split(",") if c]
    with progress(args, "analyze") as report:
        a = analyze(args.input, args.output, qualities=args.quality, gop=args.gop, frames=args.frames,
                    compare=compare, reference=args.reference, model=args.model, options=encoder_options(args),
                    overwrite=args.overwrite, progress=report)
    for s in a.summaries:
        log(args, f"{s.codec:>9} {s.setting:6g}: {s.frames} frames, {s.kbps:9.1f} kbps, {s.bpp:.4f} bpp, "
                  f"PSNR-RGB {s.psnr_rgb:.2f} dB, PSNR-Y {s.psnr_y:.2f} dB, MS-SSIM {s.ms_ssim:.4f}")
    for peer, v in a.bd_rate_psnr.items():
        log(args, f"BD-rate of tngvideo vs {peer} (PSNR-RGB): {v:+.2f}%")
    for w in a.warnings:
        log(args, f"tngvideo: warning: {w}")
    log(args, f"wrote {a.out_dir}/report.html, frames.csv, analysis.json and charts")
    return EXIT_OK


def cmd_info(args) -> int:
    from tngvideo.api.describe import describe

    info = describe(args.input).to_dict()
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


def cmd_image_encode(args) -> int:
    from tngvideo.api.image import encode_image

    r = encode_image(args.input, args.output, quality=args.quality, model=args.model, search=args.search,
                     overwrite=args.overwrite)
    log(args, f"{r.path}: {r.width}x{r.height}, {r.bytes} bytes, {r.bpp:.4f} bpp, "
              f"PSNR-RGB {r.psnr_rgb:.2f} dB, {r.encode_ms:.0f} ms")
    return EXIT_OK


def cmd_image_decode(args) -> int:
    from tngvideo.api.image import decode_image

    r = decode_image(args.input, args.output, overwrite=args.overwrite)
    log(args, f"{r.path}: {r.width}x{r.height}, {r.decode_ms:.0f} ms")
    return EXIT_OK


def cmd_demo(args) -> int:
    from tngvideo.api.image import demo

    d = demo(args.model, args.quality)
    print(f"model {d.model} ({d.weights_hash}), sample photo {d.width}x{d.height}")
    print(f"{'quality':>7} {'bytes':>7} {'bpp':>7} {'PSNR-RGB':>9} {'est/actual':>10} {'enc ms':>7} {'dec ms':>7}  round trip")
    for r in d.rows:
        print(f"{r.quality:7.2f} {r.bytes:7d} {r.bpp:7.4f} {r.psnr_rgb:9.2f} {r.estimate_ratio:10.4f} "
              f"{r.encode_ms:7.0f} {r.decode_ms:7.0f}  {'bit-exact' if r.exact else 'MISMATCH'}")
        if not r.exact:
            raise CliError("decoded image differs from the encoder's reconstruction", EXIT_INTERNAL)
    return EXIT_OK
