#!/usr/bin/env python3
"""Fit the entropy model of trained image weights with the transforms frozen (rate only).

    python tools/train_entropy.py --context --minutes 90 --out runs/image/ctx.safetensors

--context adds the checkerboard context model to weights that have none (it starts as the
plain hyperprior). g_a runs once per training photo and orientation; the steps then train the
hyperprior and context networks on crops of those latents (tngvideo.train.entropy_fit).
Writes fp32 weights with entropy tables and, beside them, the init's training JSON with this
fit appended under "entropy_fits". Stop early with SIGTERM or the --stop-file.
"""

from __future__ import annotations

import argparse
import json
import platform
import signal
import sys
from dataclasses import asdict
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tngvideo.fileio import atomic_write_bytes  # noqa: E402
from tngvideo.image.model import with_context  # noqa: E402
from tngvideo.image.registry import DEFAULT_MODEL, WEIGHTS_DIR  # noqa: E402
from tngvideo.image.weights import build_tables, load_weights, save_weights  # noqa: E402
from tngvideo.train.data import list_images  # noqa: E402
from tngvideo.train.entropy_fit import EntropyFitConfig, fit_entropy_model, image_latents  # noqa: E402
from tngvideo.train.overrides import parse_overrides  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--init", default=str(WEIGHTS_DIR / f"{DEFAULT_MODEL}.safetensors"))
    ap.add_argument("--context", action="store_true", help="add a checkerboard context model first")
    ap.add_argument("--out", default=str(ROOT / "runs/image/entropy.safetensors"))
    ap.add_argument("--name", default=DEFAULT_MODEL)
    ap.add_argument("--minutes", type=float, default=60.0)
    ap.add_argument("--eval", nargs="*", default=[str(ROOT.parent / "shared/data/kodak")],
                    help="folders whose estimated rate is logged during the fit (default Kodak)")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--stop-file", default=None)
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a config entry (YAML value)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        cfg = EntropyFitConfig(**{**asdict(EntropyFitConfig()), **parse_overrides(args.set)})
    except TypeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    init = Path(args.init)
    model = load_weights(init).model
    if args.context:
        if model.config.context:
            print("error: these weights already have a context model", file=sys.stderr)
            return 2
        model = with_context(model)
    paths = list_images(cfg.data)
    if not paths:
        print(f"error: no images in {cfg.data}", file=sys.stderr)
        return 2
    latents = image_latents(model, paths, orientations=cfg.orientations)
    eval_paths = list_images(args.eval) if args.eval else []
    eval_latents = image_latents(model, eval_paths) if eval_paths else None

    stop = {"flag": False}
    signal.signal(signal.SIGTERM, lambda *_: stop.update(flag=True))
    stop_file = Path(args.stop_file) if args.stop_file else None
    res = fit_entropy_model(model, latents, cfg, minutes=args.minutes, eval_latents=eval_latents,
                            should_stop=lambda: stop["flag"] or bool(stop_file and stop_file.exists()))
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    save_weights(model, out, name=args.name, tables=build_tables(model))
    meta = init.with_suffix(".json")
    record = json.loads(meta.read_text()) if meta.exists() else {}
    record.pop("shipped_as", None)
    record.setdefault("entropy_fits", []).append({
        "init": init.stem, "context_added": args.context, "config": asdict(cfg), "steps": res.steps,
        "crops_seen": res.crops_seen, "wall_seconds": round(res.wall_seconds), "latents": len(latents),
        "device": f"{platform.machine()} CPU, {torch.get_num_threads()} threads",
        "eval": [r for r in res.log if "eval_bpp" in r],
    })
    atomic_write_bytes(out.with_suffix(".json"), (json.dumps(record, indent=2) + "\n").encode())
    print(json.dumps({"steps": res.steps, "wall_seconds": round(res.wall_seconds), "out": str(out)}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
