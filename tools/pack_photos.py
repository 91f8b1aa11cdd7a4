#!/usr/bin/env python3
"""Pack training photos as lossless WebP (about 78% of the PNG bytes) up to a size budget: a
random subset, seeded, that fits where the whole folder does not (a training machine reached
through a size-limited copy, say). Disjoint subsets of the same shuffled order come from --skip.

    python tools/pack_photos.py ../shared/data/images/train -o runs/photos --max-mb 30
    python tools/pack_photos.py ../shared/data/images/train -o runs/photos2 --max-mb 30 --skip 80

Train on the result with `--set "data=[runs/photos]"`. Pixels are unchanged (lossless), so
only the choice of photos differs from training on the folder. The output folder appears
complete or not at all.
"""

from __future__ import annotations

import argparse
import random
import sys
from pathlib import Path

from PIL import Image
from tqdm import tqdm

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tngvideo.fileio import atomic_folder  # noqa: E402
from tngvideo.train.data import list_images  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("roots", nargs="+", help="folders of photos")
    ap.add_argument("-o", "--out", required=True)
    ap.add_argument("--max-mb", type=float, required=True, help="stop before the packed photos exceed this")
    ap.add_argument("--seed", type=int, default=22, help="order in which photos are taken")
    ap.add_argument("--skip", type=int, default=0, help="leave out the first N photos of that order")
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
    budget = args.max_mb * 1e6
    total, count = 0, 0
    try:
        with atomic_folder(out) as tmp:
            for src in tqdm(photos, desc="pack", unit="photo"):
                dst = tmp / f"{src.parent.name}_{src.stem}.webp"
                Image.open(src).convert("RGB").save(dst, "WEBP", lossless=True, method=4)
                size = dst.stat().st_size
                if total + size > budget:
                    dst.unlink()
                    break
                total, count = total + size, count + 1
            if count == 0:
                raise ValueError(f"the first photo alone is over {args.max_mb} MB")
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"packed {count} of {len(photos)} photos into {out} ({total / 1e6:.1f} MB); "
          f"--skip {args.skip + count} takes the next ones")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
