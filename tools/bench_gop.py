#!/usr/bin/env python3
"""Choose the intra period by measurement: encode the dev clips at several GOP lengths and
qualities, and report BD-rate (PSNR-RGB, PCHIP) of each GOP against a reference GOP.

    python tools/bench_gop.py                                # video/dev of the data root, 32 frames
    python tools/bench_gop.py --gops 4 8 16 32 --qualities 2 4 6

Writes results/gop.json. A longer GOP spends fewer bits on I-frames but lets prediction errors
build up and makes seeking slower (a seek decodes up to GOP-1 frames it does not show).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from tqdm import tqdm

from tngvideo.analysis.bdrate import bd_rate
from tngvideo.analysis.records import device_description
from tngvideo.analysis.video_report import analyze
from tngvideo.datapaths import data_path
from tngvideo.fileio import atomic_write_bytes
from tngvideo.parallel import batch_inputs

ROOT = Path(__file__).resolve().parents[1]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clips", default=str(data_path("video", "dev")), help="a folder of clips")
    ap.add_argument("--frames", type=int, default=32)
    ap.add_argument("--gops", type=int, nargs="+", default=[4, 8, 16, 32])
    ap.add_argument("--reference-gop", type=int, default=None, help="default: the first of --gops")
    ap.add_argument("--qualities", type=float, nargs="+", default=[1.5, 3.5, 6.0])
    ap.add_argument("--model", default=None)
    ap.add_argument("--out", default=str(ROOT / "results/gop.json"))
    args = ap.parse_args()
    ref_gop = args.reference_gop or args.gops[0]
    if ref_gop not in args.gops:
        print("bench_gop: --reference-gop must be one of --gops", file=sys.stderr)
        return 2
    clips = batch_inputs(args.clips) if Path(args.clips).is_dir() else []
    if not clips:
        print(f"bench_gop: no clips in {args.clips}", file=sys.stderr)
        return 2
    t0 = time.time()
    records, models = [], {}
    with tqdm(desc="bench-gop", unit="frame", file=sys.stderr) as bar:
        for clip in clips:
            curves = {}
            for gop in args.gops:
                a = analyze(clip, qualities=args.qualities, gop=gop, max_frames=args.frames, model=args.model,
                            with_msssim=False, progress=bar.update)
                models = a.models
                curves[gop] = [{"quality": s.setting, "kbps": s.kbps, "psnr_rgb": s.psnr_rgb} for s in a.summaries]
            ref = curves[ref_gop]
            bd = {str(g): bd_rate([p["kbps"] for p in ref], [p["psnr_rgb"] for p in ref],
                                  [p["kbps"] for p in c], [p["psnr_rgb"] for p in c]) for g, c in curves.items()}
            records.append({"clip": clip.name, "curves": {str(g): c for g, c in curves.items()},
                            f"bd_rate_vs_gop{ref_gop}": bd})
            for g, v in bd.items():
                print(f"{clip.name:>28} gop {g:>3}: BD-rate vs gop {ref_gop} {v:+.1f}%")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    result = {"device": device_description(), "seconds": round(time.time() - t0, 1), "frames_per_clip": args.frames,
              "models": models, "qualities": args.qualities, "reference_gop": ref_gop, "clips": records}
    atomic_write_bytes(out, (json.dumps(result, indent=2) + "\n").encode())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
