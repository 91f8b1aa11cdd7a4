#!/usr/bin/env python3
"""Ship trained weights into the package: fp16 weights plus the integer entropy tables built
from exactly those fp16 weights, with the training-state JSON beside them.

    python tools/ship_weights.py runs/image/latest.safetensors                 # -> image/weights/<default model>
    python tools/ship_weights.py --video runs/video/latest.safetensors         # -> video/weights/<default model>
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from tngvideo.fileio import atomic_write_bytes
from tngvideo.image import registry as image_registry
from tngvideo.image.weights import load_weights, save_weights
from tngvideo.video import registry as video_registry
from tngvideo.video.weights import load_video_weights, save_video_weights


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("weights", help="weights written by tools/train_image.py or tools/train_video.py")
    ap.add_argument("--video", action="store_true", help="P-frame model weights (default: image model)")
    ap.add_argument("--name", default=None,
                    help=f"default: {image_registry.DEFAULT_MODEL} (image) or {video_registry.default_video_model()} (video), "
                         "the models the codec uses by default")
    args = ap.parse_args()
    src = Path(args.weights)
    if args.video:
        name = args.name or video_registry.default_video_model()
        dst = video_registry.WEIGHTS_DIR / f"{name}.safetensors"
        dst.parent.mkdir(parents=True, exist_ok=True)
        save_video_weights(load_video_weights(src).model, dst, name=name, half=True)
    else:
        name = args.name or image_registry.DEFAULT_MODEL
        dst = image_registry.WEIGHTS_DIR / f"{name}.safetensors"
        dst.parent.mkdir(parents=True, exist_ok=True)
        save_weights(load_weights(src).model, dst, name=name, tables=None, half=True)
    state = src.with_suffix(".json")
    if state.exists():
        record = json.loads(state.read_text())
        record["shipped_as"] = "fp16"
        atomic_write_bytes(dst.with_suffix(".json"), (json.dumps(record, indent=2) + "\n").encode())
    print(f"shipped {dst} ({dst.stat().st_size / 1e6:.1f} MB)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
