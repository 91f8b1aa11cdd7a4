#!/usr/bin/env python3
"""How far the image model's transforms can go: PSNR of the synthesis transform applied to the
analysis transform's output with no quantization at all, against the coded PSNR.

    python tools/image_ceiling.py                          # Kodak, qualities 4.6 and 10
    python tools/image_ceiling.py photos/ --qualities 8 10 --model tng-image-12

At low qualities quantization decides the picture; at the top of the range the transforms do:
where the coded PSNR nears this ceiling, more rate buys little and only a model with more
capacity (more latent channels) goes higher. Writes results/image_ceiling.json.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from tngvideo.metrics import psnr
from tngvideo.analysis.records import device_description
from tngvideo.datapaths import data_path
from tngvideo.fileio import atomic_write_bytes
from tngvideo.image.codec import ImageCodec, rgb8_from_tensor, tensor_from_rgb8
from tngvideo.image.registry import DEFAULT_MODEL
from tngvideo.media import MediaError, read_image
from tngvideo.train.data import list_images

ROOT = Path(__file__).resolve().parents[1]


@torch.no_grad()
def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("images", nargs="?", default=str(data_path("kodak")), help="a folder of images")
    ap.add_argument("--qualities", type=float, nargs="+", default=[4.6, 10.0])
    ap.add_argument("--model", default=DEFAULT_MODEL)
    ap.add_argument("--out", default=str(ROOT / "results/image_ceiling.json"))
    args = ap.parse_args()
    paths = list_images([args.images])
    if not paths:
        print(f"image_ceiling: no images in {args.images}", file=sys.stderr)
        return 2
    codec = ImageCodec.from_name(args.model)
    model = codec.model.eval()
    try:
        for q in args.qualities:
            codec.check_quality(q)
    except ValueError as exc:
        print(f"image_ceiling: {exc}", file=sys.stderr)
        return 2
    rows = {q: {"ceiling": [], "coded": [], "bpp": []} for q in args.qualities}
    for path in tqdm(paths, desc="ceiling", unit="image", file=sys.stderr):
        try:
            rgb = read_image(path)
        except MediaError as exc:
            print(f"image_ceiling: {exc}", file=sys.stderr)
            return 2
        h, w = rgb.shape[:2]
        y = model.g_a(tensor_from_rgb8(rgb))
        for q in args.qualities:
            gain, inv_gain = model.gains(torch.tensor([q]))
            rows[q]["ceiling"].append(psnr(rgb, rgb8_from_tensor(model.g_s(y * gain * inv_gain), h, w)))
            coded = codec.compress_with_info(rgb, q)
            rows[q]["coded"].append(psnr(rgb, coded.reconstruction))
            rows[q]["bpp"].append(len(coded.data) * 8 / (h * w))
    summary = [{"quality": q, "bpp": float(np.mean(r["bpp"])), "coded_psnr": float(np.mean(r["coded"])),
                "ceiling_psnr": float(np.mean(r["ceiling"])), "ceiling_psnr_min": float(min(r["ceiling"])),
                "ceiling_psnr_per_image": [round(v, 3) for v in r["ceiling"]]} for q, r in rows.items()]
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    record = {"model": f"{codec.name}:{codec.weights_hash.hex()[:16]}", "images": Path(args.images).name,
              "count": len(paths), "device": device_description(), "qualities": summary}
    atomic_write_bytes(out, (json.dumps(record, indent=2) + "\n").encode())
    for s in summary:
        gap = s["ceiling_psnr"] - s["coded_psnr"]
        print(f"quality {s['quality']:g}: {s['bpp']:.3f} bpp, coded {s['coded_psnr']:.2f} dB, ceiling "
              f"{s['ceiling_psnr']:.2f} dB (min {s['ceiling_psnr_min']:.2f}), {gap:.2f} dB left to quantization"
              + ("" if math.isfinite(gap) else " (lossless)"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
