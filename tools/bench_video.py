#!/usr/bin/env python3
"""Video rate-distortion benchmark on real clips: tngvideo at several qualities vs x264 medium
(default, with B-frames), x264 medium low-delay P with tngvideo's intra period, x265 medium and
SVT-AV1, all encoded in one run through PyAV.

    python tools/bench_video.py                                  # video/dev of the data root, 32 frames
    python tools/bench_video.py --frames 8 --qualities 2 6       # quick look
    python tools/bench_video.py --search 20 --out results/video_controls/search.json   # searched encoder

Per clip: kbps and bpp from whole-file bytes, mean PSNR-RGB and PSNR-Y, the share of tngvideo's
bits in I- and P-frames, encode and decode fps, BD-rate (PSNR-RGB, PCHIP) of tngvideo against each
peer. Writes results/video_dev.json and results/video_dev_rd.png.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from tqdm import tqdm

from tngvideo.analysis.records import device_description
from tngvideo.analysis.video_report import analyze, draw_rd
from tngvideo.datapaths import data_path
from tngvideo.fileio import atomic_output, atomic_write_bytes
from tngvideo.parallel import batch_inputs
from tngvideo.video import DEFAULT_GOP, DEFAULT_PRESET, PRESET_NAMES, EncoderOptions

ROOT = Path(__file__).resolve().parents[1]

PEERS = "x264,x264-lowdelay,x265,svtav1"


def _est_ratio(rows) -> float | None:
    actual = sum(r.actual_bits or 0 for r in rows)
    return sum(r.estimated_bits or 0.0 for r in rows) / actual if actual else None


def clip_record(a, gop: int) -> dict:
    tng_rows = [r for r in a.rows if r.codec == "tngvideo"]
    shares = {}
    for q in sorted({r.setting for r in tng_rows}):
        rows = [r for r in tng_rows if r.setting == q]
        i_bytes = sum(r.bytes for r in rows if r.type == "I")
        p_bytes = sum(r.bytes for r in rows if r.type == "P")
        i_rows = [r for r in rows if r.type == "I"]
        p_rows = [r for r in rows if r.type == "P"]
        shares[str(q)] = {
            "i_frames": len(i_rows), "i_share": i_bytes / max(1, i_bytes + p_bytes),
            "mean_i_bytes": i_bytes / max(1, len(i_rows)), "mean_p_bytes": p_bytes / max(1, len(p_rows)),
            "mean_i_psnr": sum(r.psnr_rgb for r in i_rows) / max(1, len(i_rows)),
            "mean_p_psnr": sum(r.psnr_rgb for r in p_rows) / max(1, len(p_rows)),
            # rate the entropy model estimates vs the payload actually coded (headers excluded)
            "i_estimated_over_actual": _est_ratio(i_rows), "p_estimated_over_actual": _est_ratio(p_rows),
        }
    return {
        "clip": Path(a.source).name, "width": a.width, "height": a.height, "gop": gop,
        "frames": len(tng_rows) // max(1, len(shares)),
        "summaries": [s.__dict__ for s in a.summaries], "tngvideo_frame_types": shares,
        "bd_rate_psnr_rgb": a.bd_rate_psnr,
    }


def plot(analyses: list, frames: int, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(analyses), figsize=(6 * len(analyses), 4.5), squeeze=False)
    for ax, a in zip(axes[0], analyses):
        draw_rd(ax, a)
        ax.set_title(f"{Path(a.source).name} ({frames} frames)")
    fig.tight_layout()
    with atomic_output(path) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clips", default=str(data_path("video", "dev")), help="a folder of clips")
    ap.add_argument("--frames", type=int, default=32)
    ap.add_argument("--qualities", type=float, nargs="+", default=[1.0, 2.5, 4.0, 6.0, 8.0])
    ap.add_argument("--gop", type=int, default=DEFAULT_GOP)
    ap.add_argument("--compare", default=PEERS)
    ap.add_argument("--model", default=None)
    ap.add_argument("--preset", default=DEFAULT_PRESET, choices=PRESET_NAMES, help="encoder preset")
    ap.add_argument("--search", type=int, default=0, metavar="STEPS",
                    help="encoder-side search steps per frame (I-frame latents, P-frame motion)")
    ap.add_argument("--out", default=str(ROOT / "results/video_dev.json"))
    args = ap.parse_args()
    clips = batch_inputs(args.clips) if Path(args.clips).is_dir() else []
    if not clips:
        print(f"bench_video: no clips in {args.clips}", file=sys.stderr)
        return 2
    compare = [c for c in args.compare.split(",") if c]
    t0 = time.time()
    records, analyses = [], []
    options = EncoderOptions(preset=args.preset, search_steps=args.search)
    with tqdm(desc="bench", unit="frame", file=sys.stderr) as bar:
        for clip in clips:
            a = analyze(clip, qualities=args.qualities, gop=args.gop, compare=compare, max_frames=args.frames,
                        model=args.model, with_msssim=False, progress=bar.update, options=options)
            analyses.append(a)
            records.append(clip_record(a, args.gop))
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    result = {"device": device_description(), "seconds": round(time.time() - t0, 1), "frames_per_clip": args.frames,
              "preset": args.preset, "search_steps": args.search,
              "qualities": args.qualities, "models": analyses[0].models, "clips": records}
    atomic_write_bytes(out, (json.dumps(result, indent=2) + "\n").encode())
    plot(analyses, args.frames, out.with_name(out.stem + "_rd.png"))
    for rec in records:
        for s in rec["summaries"]:
            print(f"{rec['clip']:>28} {s['codec']:>14} {s['setting']:5g}: {s['kbps']:9.1f} kbps {s['bpp']:.4f} bpp "
                  f"PSNR-RGB {s['psnr_rgb']:.2f} dB  enc {s['encode_fps']:.2f} fps  dec {s['decode_fps']:.2f} fps")
        for peer, v in rec["bd_rate_psnr_rgb"].items():
            print(f"{rec['clip']:>28} BD-rate vs {peer}: {v:+.1f}%")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
