#!/usr/bin/env python3
"""Train (or resume training) the variable-rate TNG image model.

    python tools/train_image.py --config configs/image_default.yaml --minutes 60
    torchrun --nproc_per_node 2 tools/train_image.py --minutes 60   # data-parallel (gloo / nccl)

Resumes from --init (default: the shipped weights) and its training-state JSON, writes EMA
weights with entropy tables to --out every `save_every` steps and at the end. Stop early with
SIGTERM or by creating the --stop-file; the weights are saved either way.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

from tngvideo.analysis.records import carry_history
from tngvideo.image.model import TNGImageModel
from tngvideo.image.registry import DEFAULT_MODEL, WEIGHTS_DIR
from tngvideo.image.weights import load_weights
from tngvideo.latent.model import ModelConfig, with_lambdas
from tngvideo.train.loop import TrainConfig, TrainState, train
from tngvideo.train.overrides import load_config

ROOT = Path(__file__).resolve().parents[1]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", default=str(ROOT / "configs/image_default.yaml"))
    ap.add_argument("--init", default=None, help="weights to resume from (default: shipped; 'none' = scratch)")
    ap.add_argument("--out", default=str(ROOT / "runs/image/latest.safetensors"))
    ap.add_argument("--name", default=DEFAULT_MODEL)
    ap.add_argument("--minutes", type=float, default=60.0)
    ap.add_argument("--steps", type=int, default=None, help="stop after this many steps of this run")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--log-file", default=None, help="JSON-lines training log (default: beside --out)")
    ap.add_argument("--stop-file", default=None)
    ap.add_argument("--until", type=float, default=None, metavar="EPOCH",
                    help="also stop at this wall-clock time (seconds since the epoch): a run that must fit a slot")
    ap.add_argument("--half", action="store_true", help="save fp16 weights (half the bytes to carry back)")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a config entry (YAML value)")
    args = ap.parse_args()

    raw = load_config(args.config, args.set)
    cfg = TrainConfig.from_dict(raw)

    init = args.init if args.init is not None else str(WEIGHTS_DIR / f"{DEFAULT_MODEL}.safetensors")
    state = TrainState()
    if init.lower() != "none" and Path(init).exists():
        model = load_weights(init).model
        meta = Path(init).with_suffix(".json")
        if meta.exists():
            state = TrainState(**json.loads(meta.read_text())["training_state"])
        print(f"resuming from {init} at step {state.steps}", file=sys.stderr)
        if cfg.lambdas and tuple(cfg.lambdas) != model.config.lambdas:
            model = with_lambdas(model, tuple(cfg.lambdas))
            print(f"gains re-mapped to the lambda table {cfg.lambdas}", file=sys.stderr)
    else:
        model = TNGImageModel(ModelConfig(lambdas=tuple(cfg.lambdas)) if cfg.lambdas else ModelConfig())
        print("training from scratch", file=sys.stderr)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    log = Path(args.log_file) if args.log_file else out.with_suffix(".log.jsonl")
    state = train(
        cfg, model=model, state=state, out=out, name=args.name, minutes=args.minutes,
        device=torch.device(args.device), log_path=log,
        stop_file=Path(args.stop_file) if args.stop_file else None, max_steps=args.steps,
        deadline=args.until, half=args.half,
    )
    if init.lower() != "none":
        carry_history(Path(init).with_suffix(".json"), out.with_suffix(".json"))
    print(json.dumps({"steps": state.steps, "crops_seen": state.crops_seen, "wall_seconds": round(state.wall_seconds)}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
