#!/usr/bin/env python3
"""From-scratch speed run: train the shipped image architecture for a fixed wall-clock budget,
then measure it on Kodak with real files at 6 qualities against JPEG (Pillow), and append the
record (recipe, steps, crops, wall time, device, RD points, BD-rate) to results/speedrun.json.

    python tools/speedrun.py --minutes 60 --label baseline
    python tools/speedrun.py --minutes 60 --label peak-lr-4e-4 --set peak_lr=0.0004
    python tools/speedrun.py --minutes 60 --label no-shortcuts --model-set shortcuts=false
    python tools/speedrun.py --minutes 60 --label ema --set ema_decay=0.999 --eval-raw  # EMA and raw weights of one run
    python tools/speedrun.py --plot-only     # redraw results/speedrun_rd.png from results/speedrun.json

The learning-rate schedule follows the wall-clock budget (schedule_by=time), so every budget
ends with the decayed learning rate.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import asdict
from pathlib import Path

import torch

from tngvideo.analysis.image_bench import model_qualities, run_image_benchmark
from tngvideo.analysis.records import append_record, device_description
from tngvideo.datapaths import data_path
from tngvideo.fileio import atomic_output
from tngvideo.image.codec import ImageCodec
from tngvideo.image.model import TNGImageModel
from tngvideo.image.weights import load_weights, save_weights
from tngvideo.latent.model import ModelConfig
from tngvideo.latent.weights import build_tables
from tngvideo.train.loop import TrainConfig, TrainState, train
from tngvideo.train.overrides import load_config, parse_overrides

ROOT = Path(__file__).resolve().parents[1]


def plot(records: list[dict], path: Path) -> None:
    """Kodak RD curves of every speed run, with the JPEG curve of the latest one."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    jpeg = records[-1]["jpeg_points"]
    ax.plot([p["bpp"] for p in jpeg], [p["psnr"] for p in jpeg], "k--", marker=".", label="JPEG (Pillow)")
    for r in records:
        pts = r["rd_points"]
        ax.plot([p["bpp"] for p in pts], [p["psnr"] for p in pts], marker="o",
                label=f"{r['label']}: {r['steps']:,} steps, {r['bd_rate_vs_jpeg_psnr']:+.1f}% vs JPEG")
    ax.set(xlabel="bpp (file bytes)", ylabel="PSNR-RGB (dB)", xlim=(0, 2.0),
           title=f"Kodak after {records[-1]['budget_minutes']:g}-minute from-scratch speed runs")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    with atomic_output(path) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--minutes", type=float, default=60.0)
    ap.add_argument("--label", default="recipe")
    ap.add_argument("--config", default=str(ROOT / "configs/image_default.yaml"))
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="training option")
    ap.add_argument("--model-set", action="append", default=[], metavar="KEY=VALUE",
                    help="architecture option (ModelConfig: channels, latent_channels, shortcuts)")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--kodak", default=str(data_path("kodak")))
    ap.add_argument("--out", default=str(ROOT / "results/speedrun.json"))
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--eval-raw", action="store_true",
                    help="also measure the trained weights without weight averaging (EMA), from the same "
                         "run, as a second record labelled LABEL/raw")
    ap.add_argument("--plot-only", action="store_true", help="only redraw the plot from --out")
    args = ap.parse_args()
    plot_path = Path(args.out).with_name(Path(args.out).stem + "_rd.png")
    if args.plot_only:
        plot(json.loads(Path(args.out).read_text()), plot_path)
        return 0

    raw = load_config(args.config, args.set)
    raw["schedule_by"] = "time"
    raw["seed"] = args.seed
    cfg = TrainConfig.from_dict(raw)
    if args.eval_raw and not cfg.ema_decay:
        ap.error("--eval-raw compares averaged and raw weights: it needs ema_decay > 0")
    arch = parse_overrides(args.model_set)
    for key in arch:
        if key not in ModelConfig.__dataclass_fields__ or key == "lambdas":
            ap.error(f"unknown architecture option '{key}'")
    model_config = ModelConfig(**arch, **({"lambdas": tuple(cfg.lambdas)} if cfg.lambdas else {}))

    run_dir = ROOT / "runs/speedrun"
    run_dir.mkdir(parents=True, exist_ok=True)
    weights = run_dir / f"{args.label}.safetensors"
    torch.manual_seed(args.seed)
    model = TNGImageModel(model_config)
    state = train(cfg, model=model, state=TrainState(), out=weights, name=f"speedrun-{args.label}",
                  minutes=args.minutes, device=torch.device(args.device), log_path=run_dir / f"{args.label}.log.jsonl")

    runs = [(args.label, weights, asdict(cfg))]
    if args.eval_raw:
        raw_weights = run_dir / f"{args.label}-raw.safetensors"
        trained = model.cpu().eval().to(memory_format=torch.contiguous_format)
        save_weights(trained, raw_weights, name=f"speedrun-{args.label}-raw", tables=build_tables(trained))
        runs.append((f"{args.label}/raw", raw_weights, {**asdict(cfg), "ema_decay": 0.0}))
    paths = sorted(Path(args.kodak).glob("*.png"))
    for label, path, recipe in runs:
        codec = ImageCodec(load_weights(path))
        res = run_image_benchmark(codec, paths, qualities=model_qualities(codec, 6), classics=("jpeg",),
                                  with_msssim=False)
        record = {
            "label": label,
            "date": time.strftime("%Y-%m-%d %H:%M"),
            "budget_minutes": args.minutes,
            "device": device_description(args.device),
            "recipe": recipe,
            "model": {k: v for k, v in asdict(model_config).items() if k != "lambdas"},
            "steps": state.steps,
            "crops_seen": state.crops_seen,
            "wall_seconds": round(state.wall_seconds, 1),
            "kodak_images": len(paths),
            "rd_points": [{"quality": p.setting, "bpp": p.bpp, "psnr": p.psnr} for p in res.curves["tng"]],
            "jpeg_points": [{"quality": p.setting, "bpp": p.bpp, "psnr": p.psnr} for p in res.curves["jpeg"]],
            "bd_rate_vs_jpeg_psnr": res.bd_rate_psnr["jpeg"],
        }
        if label != args.label:
            record["note"] = (f"the weights of run '{args.label}' without weight averaging: same training "
                              "steps, EMA only left out at the end")
        append_record(args.out, record)
        plot(json.loads(Path(args.out).read_text()), plot_path)
        print(f"{label}: {state.steps} steps, BD-rate vs JPEG {res.bd_rate_psnr['jpeg']:+.2f}%")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
