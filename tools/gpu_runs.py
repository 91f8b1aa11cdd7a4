#!/usr/bin/env python3
"""Record a run of tools/gpu_session.sh (on a lent GPU, or the CPU rehearsal) in
results/gpu_runs.json: throughput of the image and the video step (samples/s, steps/s, TFLOP/s
from the operations the loops count), the packing of the data that travelled, and the ratio to
the best earlier GPU runs of results/train_image.json and results/train_video.json (their
TFLOP/s estimated from the operations of their configuration, counted here).

    python tools/gpu_runs.py gpu-out --kind gpu --command "bash tools/gpu_session.sh train 8"
    python tools/gpu_runs.py /tmp/gpu-rehearsal/out2 --kind cpu-rehearsal --command "bash tools/gpu_session.sh rehearse"
"""

from __future__ import annotations

import argparse
import datetime
import json
from pathlib import Path

import torch

from tngvideo.analysis.records import append_record

ROOT = Path(__file__).resolve().parents[1]


def run_figures(log: Path) -> dict | None:
    """The first (set-up) and last (summary) rows of a training log of one call."""
    if not log.exists():
        return None
    rows = [json.loads(line) for line in log.read_text().splitlines() if line.strip()]
    setup = next((r for r in reversed(rows) if "data_mb" in r), {})
    summary = rows[-1] if rows and "run_steps" in rows[-1] else {}
    return {k: v for k, v in {**setup, **summary}.items() if k != "step"} | {"last_step": rows[-1]["step"] if rows else 0}


def flops_per_sample(kind: str, crop: int, rollout: int, synthetic_fraction: float) -> float:
    """Operations of one sample's forward and backward pass at a configuration (counted on the CPU)."""
    from tngvideo.image.registry import weights_path
    from tngvideo.image.weights import load_weights
    from tngvideo.train.loop import rd_loss
    from tngvideo.train.throughput import count_flops
    from tngvideo.train.video_loop import rollout_loss
    from tngvideo.video.registry import WEIGHTS_DIR, default_video_model
    from tngvideo.video.weights import load_video_weights

    image = load_weights(weights_path()).model.train()
    x = [torch.rand(1, 3, crop, crop) for _ in range(rollout + 1)]
    q = torch.tensor([4.0])
    if kind == "image":
        return count_flops(lambda: rd_loss(image, x[0], q, True)[0])
    video = load_video_weights(WEIGHTS_DIR / f"{default_video_model()}.safetensors").model.train()
    clip = count_flops(lambda: rollout_loss(video, image, x, q, amp=True)[0])
    pair = count_flops(lambda: rollout_loss(video, image, x[:2], q, amp=True)[0])
    return synthetic_fraction * pair + (1 - synthetic_fraction) * clip


# The image records of the earlier H200 runs state their speed in a note only ("tng-image-2
# resumed on an H200 for 17,813 steps of 32x256x256 crops (11 min)", results/train_image.json).
NOTED = {"image": {"device": "NVIDIA H200 (from the note of results/train_image.json, 2026-11-26 02:03)",
                   "run_steps": 17813, "run_minutes": 11, "config": {"batch": 32, "crop": 256}}}


def baseline(kind: str) -> dict | None:
    """The fastest earlier run on an H200 in results/train_<kind>.json, in samples/s and TFLOP/s."""
    path = ROOT / f"results/train_{kind}.json"
    records = (json.loads(path.read_text()) if path.exists() else []) + ([NOTED[kind]] if kind in NOTED else [])
    best = None
    for r in records:
        cfg = r.get("config", {})
        if "H200" not in str(r.get("device", "")) or not r.get("run_steps") or not r.get("run_minutes"):
            continue
        rate = r["run_steps"] * cfg.get("batch", 0) / (r["run_minutes"] * 60)
        if best is None or rate > best[0]:
            best = (rate, r)
    if best is None:
        return None
    rate, r = best
    cfg = r["config"]
    flops = flops_per_sample(kind, cfg.get("crop", 256), cfg.get("rollout", 1), cfg.get("synthetic_fraction", 0.0))
    return {"samples_per_s": round(rate, 1), "steps_per_s": round(rate / cfg["batch"], 2), "batch": cfg["batch"],
            "crop": cfg.get("crop"), "rollout": cfg.get("rollout"), "gflop_per_sample": round(flops / 1e9, 1),
            "tflops": round(rate * flops / 1e12, 2), "device": r["device"], "steps": r["run_steps"],
            "minutes": r["run_minutes"]}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("folder", help="what a gpu_session.sh train call left in $OUT")
    ap.add_argument("--kind", required=True, choices=["gpu", "cpu-rehearsal"])
    ap.add_argument("--command", required=True, help="the command that made the run")
    ap.add_argument("--out", default=str(ROOT / "results/gpu_runs.json"))
    args = ap.parse_args()
    folder = Path(args.folder)
    record: dict = {"date": datetime.date.today().isoformat(), "kind": args.kind, "command": args.command}
    for model in ("image", "video"):
        figures = run_figures(folder / f"{model}.log.jsonl")
        if figures is None:
            continue
        record[model] = figures
        base = baseline(model)
        if base:
            record[model]["baseline"] = base
            if figures.get("samples_per_s"):
                record[model]["samples_per_s_vs_baseline"] = round(figures["samples_per_s"] / base["samples_per_s"], 4)
    for name in ("clips", "photos"):
        packing = ROOT / ".gpu" / name / "packing.json"
        if packing.exists():
            record.setdefault("packing", {})[name] = {k: v for k, v in json.loads(packing.read_text()).items()
                                                      if k != "per_clip"}
    append_record(args.out, record)
    print(json.dumps(record, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
