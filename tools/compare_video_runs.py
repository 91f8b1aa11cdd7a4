#!/usr/bin/env python3
"""BD-rate (PSNR-RGB) of tngvideo in one bench_video run against tngvideo in another, per clip:
how much an encoder setting or a model changes the bits at equal quality.

    python tools/compare_video_runs.py results/video_controls/plain.json results/video_controls/search.json

Both runs must cover the same clips; BD-rate is over the PSNR range the two curves share.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from tngvideo.analysis.bdrate import bd_rate


def tng_curves(path: Path) -> dict[str, tuple[list[float], list[float], list[float]]]:
    """clip -> (bpp, PSNR-RGB, encode fps) of the tngvideo rows of a bench_video record."""
    out = {}
    for clip in json.loads(path.read_text())["clips"]:
        rows = sorted((s for s in clip["summaries"] if s["codec"] == "tngvideo"), key=lambda s: s["bpp"])
        out[clip["clip"]] = ([s["bpp"] for s in rows], [s["psnr_rgb"] for s in rows], [s["encode_fps"] for s in rows])
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("reference", type=Path, help="bench_video JSON of the reference run")
    ap.add_argument("test", type=Path, help="bench_video JSON of the run to compare")
    args = ap.parse_args()
    try:
        ref, test = tng_curves(args.reference), tng_curves(args.test)
    except (OSError, ValueError, KeyError) as exc:
        print(f"compare_video_runs: cannot read the runs: {exc}", file=sys.stderr)
        return 2
    common = [c for c in ref if c in test]
    if not common:
        print("compare_video_runs: the runs share no clip", file=sys.stderr)
        return 2
    for clip in common:
        (rb, rp, rf), (tb, tp, tf) = ref[clip], test[clip]
        print(f"{clip}: BD-rate {bd_rate(rb, rp, tb, tp):+.1f}%, encode {min(tf):.2f}-{max(tf):.2f} fps "
              f"(reference {min(rf):.2f}-{max(rf):.2f})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
