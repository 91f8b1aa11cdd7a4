#!/usr/bin/env python3
"""Pack training clips as high-quality H.264 (.mp4) within a size budget: the compact way to
carry many training frames to a machine reached through a size-limited copy (OpenCV's FFmpeg
reads them there without PyAV).

    python tools/pack_clips.py ../shared/data/video/train -o runs/clips --max-mb 12
    python tools/pack_clips.py --config configs/video_finetune_train2.yaml -o runs/clips --max-mb 12

Each clip (video file or frame folder) is read as training reads it (first --max-frames frames,
halved while larger than --max-side), cropped to even sides and coded with x264 at --crf.
When the clips overrun the budget, the frames per clip are cut in proportion and coded again.
The quality of the packing (PSNR of the packed frames, decoded as training decodes them,
against the source frames) is printed and written to <out>/packing.json. The output folder
appears complete or not at all.
"""

from __future__ import annotations

import argparse
import io
import json
import math
import sys
from pathlib import Path

import av
import numpy as np
from PIL import Image
from tqdm import tqdm

from tngvideo.fileio import atomic_folder
from tngvideo.train.overrides import load_config
from tngvideo.train.video_data import clip_sources, read_clip, read_frames


PIX_FMT = "yuv444p"  # no chroma subsampling: the training frames are RGB


def encode(frames: list[np.ndarray], path: Path, crf: int) -> None:
    h, w = frames[0].shape[0] // 2 * 2, frames[0].shape[1] // 2 * 2
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=25, options={"crf": str(crf), "preset": "slow"})
        stream.width, stream.height, stream.pix_fmt = w, h, PIX_FMT
        for rgb in frames:
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb[:h, :w]), format="rgb24")
            for packet in stream.encode(frame.reformat(format=PIX_FMT)):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)


def psnr(a: list[np.ndarray], b: list[np.ndarray]) -> float:
    h, w = b[0].shape[:2]
    mse = np.mean([np.mean((x[:h, :w].astype(np.float64) - y.astype(np.float64)) ** 2) for x, y in zip(a, b)])
    return 10 * math.log10(255**2 / max(mse, 1e-12))


def webp_lossless_bytes(rgb: np.ndarray) -> int:
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, "WEBP", lossless=True, method=4)
    return buf.tell()


def decoded(path: Path, max_frames: int) -> list[np.ndarray]:
    from tngvideo.train.video_data import _read_with_opencv

    return _read_with_opencv(path, max_frames)  # as on the training machine


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("roots", nargs="*", help="clips, folders of clips and/or frame folders")
    ap.add_argument("--config", help="take the clips from this video training config")
    ap.add_argument("-o", "--out", required=True)
    ap.add_argument("--max-mb", type=float, required=True)
    ap.add_argument("--max-frames", type=int, default=240)
    ap.add_argument("--max-side", type=int, default=720)
    ap.add_argument("--crf", type=int, default=10, help="x264 constant rate factor (lower: better, bigger)")
    args = ap.parse_args()
    roots = [Path(r) for r in args.roots]
    if args.config:
        roots += [Path(r) for r in load_config(args.config, [])["clips"]]
    out = Path(args.out)
    if out.exists():
        print(f"error: {out} exists", file=sys.stderr)
        return 2
    missing = [r for r in roots if not r.exists()]
    if missing or not roots:
        print(f"error: {missing[0] if missing else 'no clips given'}: not found", file=sys.stderr)
        return 2
    jobs = clip_sources(roots)
    if not jobs:
        print("error: no clips or frame folders found", file=sys.stderr)
        return 2
    clips = []
    for name, src in tqdm(jobs, desc="read", unit="clip"):
        frames = (read_clip(src, max_frames=args.max_frames, max_side=args.max_side) if isinstance(src, Path)
                  else read_frames(src, max_frames=args.max_frames))
        if len(frames) >= 2:
            clips.append((name, frames))
    if not clips:
        print("error: no clip has two frames", file=sys.stderr)
        return 2
    budget, cap = args.max_mb * 1e6, max(len(f) for _, f in clips)
    with atomic_folder(out) as tmp:
        for attempt in range(4):
            sizes, rows = 0, []
            for name, frames in tqdm(clips, desc=f"pack (up to {cap} frames)", unit="clip"):
                path = tmp / f"{name}.mp4"
                encode(frames[:cap], path, args.crf)
                sizes += path.stat().st_size
                rows.append({"clip": name, "frames": len(frames[:cap]), "bytes": path.stat().st_size})
            if sizes <= budget:
                break
            if attempt == 3:
                print(f"error: {sizes / 1e6:.3f} MB at {cap} frames per clip is over {args.max_mb:.3f} MB", file=sys.stderr)
                return 2
            cap = max(2, int(cap * budget / sizes * 0.95))
        lossless = 0.0  # what lossless WebP frames (the old way to carry clips) would take, from every 10th frame
        for row, (name, frames) in zip(rows, clips):
            row["psnr"] = round(psnr(frames, decoded(tmp / f"{name}.mp4", row["frames"])), 2)
            sample = frames[: row["frames"]: 10]
            lossless += sum(webp_lossless_bytes(f) for f in sample) * row["frames"] / len(sample)
        frames_total = sum(r["frames"] for r in rows)
        summary = {"clips": len(rows), "frames": frames_total, "mb": round(sizes / 1e6, 2),
                   "lossless_webp_mb": round(lossless / 1e6, 1), "crf": args.crf, "pix_fmt": PIX_FMT,
                   "max_side": args.max_side, "frames_per_clip": cap,
                   "psnr_min": min(r["psnr"] for r in rows),
                   "psnr_mean": round(float(np.mean([r["psnr"] for r in rows])), 2), "per_clip": rows}
        (tmp / "packing.json").write_text(json.dumps(summary, indent=1) + "\n")
    print(f"packed {len(rows)} clips, {frames_total} frames, into {out} ({sizes / 1e6:.1f} MB, "
          f"{sizes / frames_total / 1e3:.1f} kB/frame, {lossless / sizes:.1f}x fewer bytes than lossless WebP); packed vs source PSNR mean {summary['psnr_mean']} dB, "
          f"lowest {summary['psnr_min']} dB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
