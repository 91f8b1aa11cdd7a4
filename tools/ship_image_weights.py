#!/usr/bin/env python3
"""Ship trained image weights: fp16 weights plus integer entropy tables into the package,
with the training-state JSON beside them.

    python tools/ship_image_weights.py runs/image/latest.safetensors
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tngvideo.fileio import atomic_write_bytes  # noqa: E402
from tngvideo.image.registry import DEFAULT_MODEL, WEIGHTS_DIR  # noqa: E402
from tngvideo.image.weights import load_weights, save_weights  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("weights", help="EMA weights written by tools/train_image.py")
    ap.add_argument("--name", default=DEFAULT_MODEL)
    args = ap.parse_args()
    src = Path(args.weights)
    loaded = load_weights(src)
    dst = WEIGHTS_DIR / f"{args.name}.safetensors"
    save_weights(loaded.model, dst, name=args.name, tables=None, half=True)
    state = src.with_suffix(".json")
    if state.exists():
        record = json.loads(state.read_text())
        record["shipped_as"] = "fp16"
        atomic_write_bytes(dst.with_suffix(".json"), (json.dumps(record, indent=2) + "\n").encode())
    print(f"shipped {dst} ({dst.stat().st_size / 1e6:.1f} MB)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
