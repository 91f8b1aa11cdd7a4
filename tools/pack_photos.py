#!/usr/bin/env python3
"""Pack training photos up to a size budget, as lossless WebP (about 78% of the PNG bytes) or,
with --quality, as JPEG with full-resolution colour (4:4:4; at 95 about half the bytes of
lossless WebP at 41 dB): a random subset, seeded, that fits where the whole folder does not
(a training machine reached through a size-limited copy, say). Disjoint subsets of the same
shuffled order come from --skip.

    python tools/pack_photos.py ../shared/data/images/train -o runs/photos --max-mb 30
    python tools/pack_photos.py ../shared/data/images/train -o runs/photos --max-mb 10 --quality 95
    python tools/pack_photos.py ../shared/data/images/train -o runs/photos2 --max-mb 30 --skip 80

Train on the result with `--set "data=[runs/photos]"`. Lossy packing prints the PSNR of the
packed photos against the sources and writes it to <out>/packing.json. The output folder
appears complete or not at all.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import sys
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm import tqdm

from tngvideo.fileio import atomic_folder
from tngvideo.train.data import list_images


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("roots", nargs="+", help="folders of photos")
    ap.add_argument("-o", "--out", required=True)
    ap.add_argument("--max-mb", type=float, required=True, help="stop before the packed photos exceed this")
    ap.add_argument("--seed", type=int, default=22, help="order in which photos are taken")
    ap.add_argument("--skip", type=int, default=0, help="leave out the first N photos of that order")
    ap.add_argument("--quality", type=int, default=None, help="JPEG 4:4:4 at this quality (default: lossless WebP)")
    args = ap.parse_args()
    out = Path(args.out)
    if out.exists():
        print(f"error: {out} exists", file=sys.stderr)
        return 2
    missing = [r for r in args.roots if not Path(r).is_dir()]
    if missing:
        print(f"error: {missing[0]} is not a folder", file=sys.stderr)
        return 2
    photos = list_images(args.roots)
    random.Random(args.seed).shuffle(photos)
    photos = photos[args.skip:]
    if not photos:
        print("error: no photos left to pack", file=sys.stderr)
        return 2
    if args.quality is not None and not 1 <= args.quality <= 100:
        print("error: --quality must be between 1 and 100", file=sys.stderr)
        return 2
    budget = args.max_mb * 1e6
    total, count, errors, pixels = 0, 0, [], 0
    try:
        with atomic_folder(out) as tmp:
            for src in tqdm(photos, desc="pack", unit="photo"):
                rgb = Image.open(src).convert("RGB")
                if args.quality is None:
                    dst = tmp / f"{src.parent.name}_{src.stem}.webp"
                    rgb.save(dst, "WEBP", lossless=True, method=4)
                else:
                    dst = tmp / f"{src.parent.name}_{src.stem}.jpg"
                    rgb.save(dst, "JPEG", quality=args.quality, subsampling=0)
                size = dst.stat().st_size
                if total + size > budget:
                    dst.unlink()
                    break
                total, count = total + size, count + 1
                pixels += rgb.width * rgb.height
                if args.quality is not None:
                    a = np.asarray(rgb, dtype=np.float64)
                    errors.append(float(np.mean((a - np.asarray(Image.open(dst).convert("RGB"), dtype=np.float64)) ** 2)))
            if count == 0:
                raise ValueError(f"the first photo alone is over {args.max_mb} MB")
            if errors:
                psnrs = [10 * math.log10(255**2 / max(e, 1e-12)) for e in errors]
                summary = {"photos": count, "mb": round(total / 1e6, 2), "quality": args.quality,
                           "megapixels": round(pixels / 1e6, 1), "psnr_mean": round(float(np.mean(psnrs)), 2),
                           "psnr_min": round(min(psnrs), 2)}
                (tmp / "packing.json").write_text(json.dumps(summary, indent=1) + "\n")
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    quality = f"; packed vs source PSNR mean {summary['psnr_mean']} dB, lowest {summary['psnr_min']} dB" if errors else ""
    print(f"packed {count} of {len(photos)} photos, {pixels / 1e6:.1f} megapixels, into {out} "
          f"({total / 1e6:.1f} MB){quality}; --skip {args.skip + count} takes the next ones")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
