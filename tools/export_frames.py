#!/usr/bin/env python3
"""Export training clips as frame folders (`<clip>/im0001.webp` ..., lossless WebP), the layout
`ClipPairs` reads without PyAV: for training on a machine without it, or to carry a compact,
already-decoded copy of the clips.

    python tools/export_frames.py ../shared/data/video/train -o runs/frames --max-frames 32
    python tools/export_frames.py ../shared/data/video/train -o runs/frames --quality 95   # lossy, ~4x smaller

Video files are decoded (first --max-frames frames, halved while larger than --max-side, as in
training); existing frame folders (Vimeo-90k septuplets) are re-encoded. The output folder
appears complete or not at all.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm import tqdm

from tngvideo.fileio import atomic_folder
from tngvideo.train.video_data import clip_sources, read_clip, read_frames


def write_frames(frames: list[np.ndarray], folder: Path, quality: int | None = None) -> int:
    """Frames as WebP: lossless by default, lossy at `quality` (the clips are lossy sources
    already, so a high quality costs the training little and carries in a quarter of the bytes)."""
    folder.mkdir(parents=True, exist_ok=True)
    total = 0
    for i, rgb in enumerate(frames, 1):
        path = folder / f"im{i:04d}.webp"
        if quality is None:
            Image.fromarray(rgb).save(path, "WEBP", lossless=True, quality=100, method=4)
        else:
            Image.fromarray(rgb).save(path, "WEBP", quality=quality, method=4)
        total += path.stat().st_size
    return total


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("roots", nargs="+", help="folders of clips and/or frame folders")
    ap.add_argument("-o", "--out", required=True)
    ap.add_argument("--max-frames", type=int, default=120)
    ap.add_argument("--max-side", type=int, default=720)
    ap.add_argument("--quality", type=int, default=None, help="lossy WebP quality 1-100 (default: lossless)")
    args = ap.parse_args()
    if args.quality is not None and not 1 <= args.quality <= 100:
        print("error: --quality must be between 1 and 100", file=sys.stderr)
        return 2
    out = Path(args.out)
    if out.exists():
        print(f"error: {out} exists", file=sys.stderr)
        return 2
    for root in map(Path, args.roots):
        if not root.is_dir():
            print(f"error: {root} is not a folder", file=sys.stderr)
            return 2
    jobs = clip_sources(args.roots)
    if not jobs:
        print("error: no clips or frame folders found", file=sys.stderr)
        return 2
    total = 0
    with atomic_folder(out) as tmp:
        for name, src in tqdm(jobs, desc="export", unit="clip"):
            if isinstance(src, Path):
                frames = read_clip(src, max_frames=args.max_frames, max_side=args.max_side)
            else:
                frames = read_frames(src, max_frames=args.max_frames)
            total += write_frames(frames, tmp / name, args.quality)
    print(f"wrote {len(jobs)} clips to {out} ({total / 1e6:.1f} MB)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
