#!/usr/bin/env python3
"""Train the P-frame model stage by stage (see tngvideo/train/video_loop.py).

    python tools/train_video.py --stage flow --minutes 30      # flow pretraining, synthetic motion
    python tools/train_video.py --stage joint --minutes 60     # rate-distortion, all components
    python tools/train_video.py --stage motion --flow-estimator dis --minutes 40   # motion coder for DIS flow
    python tools/train_video.py --stage joint --loop-filter --set filter_lr_scale=30   # add a loop filter
    python tools/train_video.py --conditional --motion-context --stage conditional --set peak_lr=2e-4   # contexts

Starts from --init (video weights; 'none' = a new model whose residual coder copies the image
model), writes weights with entropy tables to --out. Stop early with SIGTERM or --stop-file.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import replace
from pathlib import Path

import torch

from tngvideo.analysis.records import append_record, carry_history, device_description
from tngvideo.image.registry import DEFAULT_MODEL, weights_path
from tngvideo.image.weights import load_weights
from tngvideo.train.loop import TrainState
from tngvideo.train.video_loop import STAGES, VideoTrainConfig, train_video
from tngvideo.video.model import FLOW_ESTIMATORS, PFrameModel, with_conditional, with_loop_filter, with_motion_context
from tngvideo.video.registry import default_video_model
from tngvideo.video.weights import load_video_weights
from tngvideo.train.overrides import load_config

ROOT = Path(__file__).resolve().parents[1]


def recent_means(log_path: Path, after_step: int, window: int = 200) -> dict[str, float]:
    """Mean of each logged metric over this run's last `window` steps."""
    rows = [json.loads(line) for line in log_path.read_text().splitlines() if line.strip()] if log_path.exists() else []
    rows = [r for r in rows if r["step"] > after_step]
    rows = [r for r in rows if r["step"] > rows[-1]["step"] - window] if rows else []
    keys = sorted({k for r in rows for k in r} - {"step", "lr"})
    return {k: round(sum(r[k] for r in rows if k in r) / max(1, sum(k in r for r in rows)), 4) for k in keys}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", default=str(ROOT / "configs/video_default.yaml"))
    ap.add_argument("--stage", choices=STAGES, default=None, help="overrides the config")
    ap.add_argument("--flow-estimator", choices=FLOW_ESTIMATORS, default=None,
                    help="switch the model's encoder-side flow estimator (then train with --stage motion)")
    ap.add_argument("--loop-filter", action="store_true",
                    help="add a loop filter to the model (zero-initialised: it codes as before until trained)")
    ap.add_argument("--conditional", action="store_true",
                    help="condition the residual coder on the prediction (zero-initialised; then --stage conditional)")
    ap.add_argument("--motion-context", action="store_true",
                    help="condition the motion coder on the previous decoded flow (zero-initialised; then --stage conditional)")
    ap.add_argument("--init", default="runs/video/latest.safetensors")
    ap.add_argument("--image-weights", default=None, help="default: the shipped image model")
    ap.add_argument("--out", default=str(ROOT / "runs/video/latest.safetensors"))
    ap.add_argument("--name", default=default_video_model())
    ap.add_argument("--minutes", type=float, default=30.0)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--stop-file", default=None)
    ap.add_argument("--until", type=float, default=None, metavar="EPOCH",
                    help="also stop at this wall-clock time (seconds since the epoch): a run that must fit a slot")
    ap.add_argument("--half", action="store_true", help="save fp16 weights (half the bytes to carry back)")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    ap.add_argument("--records", default=str(ROOT / "results/train_video.json"),
                    help="append this run's record here ('none' to skip)")
    args = ap.parse_args()

    raw = load_config(args.config, args.set)
    if args.stage:
        raw["stage"] = args.stage
    cfg = VideoTrainConfig.from_dict(raw)

    image_model = load_weights(args.image_weights or weights_path(DEFAULT_MODEL)).model
    state = TrainState()
    init = Path(args.init)
    if args.init.lower() != "none" and init.exists():
        model = load_video_weights(init).model
        meta = init.with_suffix(".json")
        if meta.exists():
            state = TrainState(**json.loads(meta.read_text())["training_state"])
        print(f"resuming from {init} at step {state.steps}", file=sys.stderr)
    else:
        model = PFrameModel()
        # the residual coder has no context model: an image model's context networks stay behind
        model.residual.load_state_dict({k: v for k, v in image_model.state_dict().items()
                                        if not k.startswith(("ctx_s.", "ctx_m."))})
        print("new P-frame model; residual coder initialised from the image model", file=sys.stderr)
    if args.loop_filter:
        model = with_loop_filter(model)
    if args.conditional and not model.config.conditional:
        model = with_conditional(model)
    if args.motion_context and not model.config.motion_context:
        model = with_motion_context(model)
    if args.flow_estimator:
        model.config = replace(model.config, flow_estimator=args.flow_estimator)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    steps_before = state.steps
    log_path = out.with_suffix(".log.jsonl")
    state = train_video(cfg, model=model, image_model=image_model, state=state, out=out, name=args.name,
                        minutes=args.minutes, device=torch.device(args.device),
                        log_path=log_path,
                        stop_file=Path(args.stop_file) if args.stop_file else None,
                        deadline=args.until, half=args.half)
    if args.init.lower() != "none":
        carry_history(init.with_suffix(".json"), out.with_suffix(".json"))
    record = {"stage": cfg.stage, "weights": str(out), "steps": state.steps, "run_steps": state.steps - steps_before,
              "crops_seen": state.crops_seen, "wall_seconds": round(state.wall_seconds),
              "run_minutes": args.minutes, "device": device_description(args.device),
              "config": {k: v for k, v in vars(cfg).items() if k not in ("photos", "clips")},
              "last_200_steps": recent_means(log_path, steps_before)}
    if args.records.lower() != "none":
        append_record(args.records, record)
    print(json.dumps({"steps": state.steps, "crops_seen": state.crops_seen, "wall_seconds": round(state.wall_seconds)}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
