#!/usr/bin/env python3
"""From-scratch speed run: train the shipped image architecture for a fixed wall-clock budget,
then measure it on Kodak with real files at 6 qualities against JPEG (Pillow), and append the
record (recipe, steps, crops, wall time, device, RD points, BD-rate) to results/speedrun.json.

    python tools/speedrun.py --minutes 60 --label baseline
    python tools/speedrun.py --minutes 60 --label no-ema --set ema_decay=0.0
    python tools/speedrun.py --minutes 60 --label no-shortcuts --model-set shortcuts=false

The learning-rate schedule follows the wall-clock budget (schedule_by=time), so every budget
ends with the decayed learning rate.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import asdict
from pathlib import Path

import torch
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tngvideo.analysis.image_bench import model_qualities, run_image_benchmark  # noqa: E402
from tngvideo.analysis.records import append_record, device_description  # noqa: E402
from tngvideo.image.codec import ImageCodec  # noqa: E402
from tngvideo.image.model import ModelConfig, TNGImageModel  # noqa: E402
from tngvideo.image.weights import load_weights  # noqa: E402
from tngvideo.train.loop import TrainConfig, TrainState, train  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--minutes", type=float, default=60.0)
    ap.add_argument("--label", default="recipe")
    ap.add_argument("--config", default=str(ROOT / "configs/image_default.yaml"))
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="training option")
    ap.add_argument("--model-set", action="append", default=[], metavar="KEY=VALUE",
                    help="architecture option (ModelConfig: channels, latent_channels, shortcuts)")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--kodak", default=str(ROOT.parent / "shared/data/kodak"))
    ap.add_argument("--out", default=str(ROOT / "results/speedrun.json"))
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    raw = yaml.safe_load(Path(args.config).read_text()) or {}
    for item in args.set:
        key, _, value = item.partition("=")
        raw[key] = yaml.safe_load(value)
    raw["schedule_by"] = "time"
    raw["seed"] = args.seed
    cfg = TrainConfig.from_dict(raw)
    arch = {}
    for item in args.model_set:
        key, _, value = item.partition("=")
        if key not in ModelConfig.__dataclass_fields__ or key == "lambdas":
            ap.error(f"unknown architecture option '{key}'")
        arch[key] = yaml.safe_load(value)
    model_config = ModelConfig(**arch, **({"lambdas": tuple(cfg.lambdas)} if cfg.lambdas else {}))

    run_dir = ROOT / "runs/speedrun"
    run_dir.mkdir(parents=True, exist_ok=True)
    weights = run_dir / f"{args.label}.safetensors"
    torch.manual_seed(args.seed)
    state = train(cfg, model=TNGImageModel(model_config), state=TrainState(), out=weights, name=f"speedrun-{args.label}",
                  minutes=args.minutes, device=torch.device(args.device), log_path=run_dir / f"{args.label}.log.jsonl")

    codec = ImageCodec(load_weights(weights))
    paths = sorted(Path(args.kodak).glob("*.png"))
    res = run_image_benchmark(codec, paths, qualities=model_qualities(codec, 6), classics=("jpeg",), with_msssim=False)
    tng = res.curves["tng"]
    record = {
        "label": args.label,
        "date": time.strftime("%Y-%m-%d %H:%M"),
        "budget_minutes": args.minutes,
        "device": device_description(args.device),
        "recipe": asdict(cfg),
        "model": {k: v for k, v in asdict(model_config).items() if k != "lambdas"},
        "steps": state.steps,
        "crops_seen": state.crops_seen,
        "wall_seconds": round(state.wall_seconds, 1),
        "kodak_images": len(paths),
        "rd_points": [{"quality": p.setting, "bpp": p.bpp, "psnr": p.psnr} for p in tng],
        "jpeg_points": [{"quality": p.setting, "bpp": p.bpp, "psnr": p.psnr} for p in res.curves["jpeg"]],
        "bd_rate_vs_jpeg_psnr": res.bd_rate_psnr["jpeg"],
    }
    append_record(args.out, record)
    print(f"{args.label}: {state.steps} steps, BD-rate vs JPEG {res.bd_rate_psnr['jpeg']:+.2f}%")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
