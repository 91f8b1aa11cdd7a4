#!/usr/bin/env python3
"""Kodak rate-distortion benchmark: TNG at several qualities vs JPEG, WebP and AVIF (Pillow).

    python tools/bench_image.py                      # all 24 Kodak images
    python tools/bench_image.py --limit 4 --no-msssim  # quick look
    python tools/bench_image.py --search-steps 30    # also TNG with encoder-side latent search
    python tools/bench_image.py --float --classics ""  # fixed-point vs float reconstruction

Writes results/kodak.json and results/kodak_rd.png (paths configurable).
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import torch

from tngvideo.analysis.image_bench import plot_rd, run_image_benchmark
from tngvideo.analysis.records import append_record, device_description
from tngvideo.datapaths import data_path
from tngvideo.fileio import atomic_write_bytes
from tngvideo.image.codec import ImageCodec
from tngvideo.image.registry import DEFAULT_MODEL, weights_path
from tngvideo.image.weights import load_weights

ROOT = Path(__file__).resolve().parents[1]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--images", default=str(data_path("kodak")), help="folder of PNGs")
    ap.add_argument("--limit", type=int, default=None, help="use only the first N images")
    ap.add_argument("--weights", default=None, help="a .safetensors file (default: the shipped model)")
    ap.add_argument("--qualities", type=float, nargs="+", default=None, help="default: every level of the model")
    ap.add_argument("--classics", default="jpeg,webp,avif")
    ap.add_argument("--no-msssim", action="store_true")
    ap.add_argument("--search-steps", type=int, default=0,
                    help="also measure TNG with this many steps of encoder-side latent search (e.g. 30)")
    ap.add_argument("--float", action="store_true", dest="with_float",
                    help="also measure TNG with the float reconstruction (format 1 files) as tng-float")
    ap.add_argument("--out", default=str(ROOT / "results/kodak.json"))
    ap.add_argument("--plot", default=None, help="default: OUT with _rd.png")
    ap.add_argument("--training-record", default=None, metavar="STATE_JSON",
                    help="append a training record (this training-state JSON + these Kodak figures) to --records")
    ap.add_argument("--records", default=str(ROOT / "results/train_image.json"))
    ap.add_argument("--note", default="", help="free text for the training record (what the run did)")
    args = ap.parse_args()

    paths = sorted(Path(args.images).glob("*.png"))[: args.limit]
    if not paths:
        print(f"bench_image: no PNG files in {args.images}", file=sys.stderr)
        return 2
    codec = ImageCodec(load_weights(args.weights or weights_path(DEFAULT_MODEL)))
    t = time.time()
    res = run_image_benchmark(codec, paths, qualities=args.qualities,
                              classics=tuple(c for c in args.classics.split(",") if c),
                              with_msssim=not args.no_msssim, search_steps=args.search_steps,
                              with_float=args.with_float)
    record = res.to_json()
    record.update({
        "dataset": str(Path(args.images).name),
        "date": time.strftime("%Y-%m-%d %H:%M"),
        "device": f"{platform.processor() or platform.machine()}, torch {torch.__version__}, "
                  f"{torch.get_num_threads()} threads",
        "wall_seconds": round(time.time() - t, 1),
    })
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(out, (json.dumps(record, indent=2) + "\n").encode())
    plot = Path(args.plot) if args.plot else out.with_name(out.stem + "_rd.png")
    plot_rd(res, plot, title=str(Path(args.images).name))
    print(f"{'codec':>6} {'setting':>7} {'bpp':>7} {'PSNR':>7} {'MS-SSIM':>8} {'enc ms':>7} {'dec ms':>7} {'est-act %':>9}")
    for name, pts in res.curves.items():
        for p in pts:
            est = f"{p.estimated_over_actual_pct:+9.3f}" if p.estimated_over_actual_pct is not None else ""
            print(f"{name:>6} {p.setting:7.2f} {p.bpp:7.4f} {p.psnr:7.2f} {p.ms_ssim:8.4f} "
                  f"{p.encode_ms:7.0f} {p.decode_ms:7.0f} {est}")
    for name, v in res.bd_rate_psnr.items():
        print(f"BD-rate (PSNR-RGB) of TNG vs {name}: {v:+.2f}%")
    for name, v in res.bd_rate_psnr_search.items():
        print(f"BD-rate (PSNR-RGB) of TNG with search {args.search_steps} vs {name}: {v:+.2f}%")
    print(f"wrote {out} and {plot}")
    if args.training_record:
        state = json.loads(Path(args.training_record).read_text())
        append_record(args.records, {
            "date": record["date"], "note": args.note, "device": device_description(),
            **state["training_state"], "config": state["config"], "weights": args.weights or "shipped",
            **{k: state[k] for k in ("gpu_runs", "entropy_fits") if k in state},
            "kodak": {"images": len(paths), "bd_rate_psnr_rgb": res.bd_rate_psnr,
                      "tng": [{"quality": p.setting, "bpp": p.bpp, "psnr": p.psnr,
                               "estimated_over_actual_pct": p.estimated_over_actual_pct}
                              for p in res.curves["tng"]]},
        })
        print(f"appended a training record to {args.records}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
