#!/usr/bin/env python3
"""Fit the entropy model of trained image weights with the transforms frozen (rate only).

    python tools/train_entropy.py --context --minutes 90 --out runs/image/ctx.safetensors
    python tools/train_entropy.py --video --context --minutes 60 --out runs/video/ctx.safetensors

--context adds the checkerboard context model to weights that have none (it starts as the
plain hyperprior); --channel-slices N adds a channel-wise context over N latent slices on top of
it (it starts as the checkerboard model). g_a runs once per training photo and orientation; the steps then train the
hyperprior and context networks on crops of those latents (tngvideo.train.entropy_fit).
--video fits the P-frame model's residual and motion coders instead, on the latents they code
when the training clips are coded in closed loop at several qualities
(tngvideo.train.video_latents).
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

from tngvideo.analysis.records import append_record
from tngvideo.datapaths import data_path
from tngvideo.fileio import atomic_write_bytes
from tngvideo.image.codec import ImageCodec
from tngvideo.image.registry import DEFAULT_MODEL, WEIGHTS_DIR
from tngvideo.image.weights import load_weights, save_weights
from tngvideo.latent.model import with_channel_context, with_context
from tngvideo.latent.weights import build_tables
from tngvideo.train.data import list_images
from tngvideo.train.entropy_fit import EntropyFitConfig, FitResult, fit_entropy_model, image_latents
from tngvideo.train.overrides import parse_overrides
from tngvideo.train.video_data import read_clips
from tngvideo.train.video_latents import pframe_latents
from tngvideo.video.codec import PFrameCoder
from tngvideo.video.model import CODER_ROLES, with_video_context
from tngvideo.video.registry import WEIGHTS_DIR as VIDEO_WEIGHTS_DIR, default_video_model
from tngvideo.video.weights import load_video_weights, save_video_weights

ROOT = Path(__file__).resolve().parents[1]



def fit_video(args, cfg: EntropyFitConfig, should_stop) -> tuple[Path, dict]:
    """Capture the coded latents of the training clips, then fit the residual coder and the
    motion coder in turn (`--motion-share` of the time on motion)."""
    init = Path(args.init or VIDEO_WEIGHTS_DIR / f"{default_video_model()}.safetensors")
    model = load_video_weights(init).model
    if args.context or args.channel_slices:
        model = with_video_context(model, channel_slices=args.channel_slices)
    image = ImageCodec.from_name(DEFAULT_MODEL)

    def capture(roots: list[str], frames: int, qualities: list[float]):
        clips = [c for c in read_clips(roots, max_frames=frames, max_side=720) if len(c) >= 2]
        if not clips:
            raise ValueError(f"no clips of two or more frames in {roots}")
        pframes = PFrameCoder.for_model(model, {role: build_tables(getattr(model, role)) for role in CODER_ROLES})
        return pframe_latents(image, pframes, clips, qualities, gop=args.gop, should_stop=should_stop)

    train = capture(args.clips, args.frames, args.qualities)
    held_out = capture(args.eval, 9, [1.0, 5.5, 10.0]) if args.eval else None
    fits = {}
    for role in ("residual", "motion"):
        share = args.motion_share if role == "motion" else 1.0 - args.motion_share
        data = train[role]
        res: FitResult = fit_entropy_model(
            getattr(model, role), data.latents, cfg, minutes=args.minutes * share, qualities=data.qualities,
            eval_sets=held_out[role].by_quality() if held_out else None, should_stop=should_stop)
        fits[role] = {"steps": res.steps, "crops_seen": res.crops_seen, "wall_seconds": round(res.wall_seconds),
                      "latents": len(data.latents), "eval": [r for r in res.log if "eval_bpp" in r]}
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    save_video_weights(model, out, name=args.name or default_video_model())
    return init, {"init": init.stem, "context_added": list(CODER_ROLES) if args.context else [],
                  "channel_slices_added": args.channel_slices,
                  "config": asdict(cfg), "clips": args.clips, "qualities": args.qualities, "frames": args.frames,
                  "coders": fits, "device": f"{platform.machine()} CPU, {torch.get_num_threads()} threads"}


def fit_image(args, cfg: EntropyFitConfig, should_stop) -> tuple[Path, dict]:
    init = Path(args.init or WEIGHTS_DIR / f"{DEFAULT_MODEL}.safetensors")
    model = load_weights(init).model
    if args.context:
        if model.config.context:
            raise ValueError("these weights already have a context model")
        model = with_context(model)
    if args.channel_slices:
        model = with_channel_context(model, args.channel_slices)
    paths = list_images(cfg.data)
    if not paths:
        raise ValueError(f"no images in {cfg.data}")
    latents = image_latents(model, paths, orientations=cfg.orientations)
    eval_paths = list_images(args.eval) if args.eval else []
    eval_latents = image_latents(model, eval_paths) if eval_paths else None
    eval_sets = {q: eval_latents for q in (1.0, 4.0, 7.0, 10.0)} if eval_latents else None
    res = fit_entropy_model(model, latents, cfg, minutes=args.minutes, eval_sets=eval_sets, should_stop=should_stop)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    save_weights(model, out, name=args.name or DEFAULT_MODEL, tables=build_tables(model))
    return init, {"init": init.stem, "context_added": args.context, "channel_slices_added": args.channel_slices,
                  "config": asdict(cfg), "steps": res.steps,
                  "crops_seen": res.crops_seen, "wall_seconds": round(res.wall_seconds), "latents": len(latents),
                  "device": f"{platform.machine()} CPU, {torch.get_num_threads()} threads",
                  "eval": [r for r in res.log if "eval_bpp" in r]}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--video", action="store_true", help="fit the P-frame model's coders (default: the image model)")
    ap.add_argument("--init", default=None, help="weights to start from (default: the shipped image / newest video model)")
    ap.add_argument("--context", action="store_true", help="add a checkerboard context model first")
    ap.add_argument("--channel-slices", type=int, default=0,
                    help="add a channel-wise context over this many latent slices first (and with --video, "
                         "the checkerboard context where a coder has none)")
    ap.add_argument("--out", default=str(ROOT / "runs/image/entropy.safetensors"))
    ap.add_argument("--name", default=None)
    ap.add_argument("--minutes", type=float, default=60.0)
    ap.add_argument("--eval", nargs="*", default=None,
                    help="images (or with --video, clips) whose estimated rate is logged during the fit "
                         "(default: Kodak, or the dev clips)")
    ap.add_argument("--clips", nargs="*", default=[str(data_path("video", "train"))], help="--video: training clips")
    ap.add_argument("--frames", type=int, default=17, help="--video: frames coded per clip and quality")
    ap.add_argument("--qualities", type=float, nargs="+", default=[1.0, 3.0, 5.5, 8.0, 10.0],
                    help="--video: qualities the clips are coded at")
    ap.add_argument("--gop", type=int, default=16, help="--video: intra period while capturing")
    ap.add_argument("--motion-share", type=float, default=0.25, help="--video: share of the time spent on motion")
    ap.add_argument("--records", default=str(ROOT / "results/train_video.json"),
                    help="--video: append this fit's record here ('none' to skip)")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--stop-file", default=None)
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a config entry (YAML value)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.eval is None:
        args.eval = [str(data_path("video", "dev") if args.video else data_path("kodak"))]
    try:
        cfg = EntropyFitConfig(**{**asdict(EntropyFitConfig()), **parse_overrides(args.set)})
    except TypeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    stop = {"flag": False}
    signal.signal(signal.SIGTERM, lambda *_: stop.update(flag=True))
    stop_file = Path(args.stop_file) if args.stop_file else None
    should_stop = lambda: stop["flag"] or bool(stop_file and stop_file.exists())  # noqa: E731
    try:
        init, fit = (fit_video if args.video else fit_image)(args, cfg, should_stop)
    except (ValueError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    out = Path(args.out)
    meta = init.with_suffix(".json")
    record = json.loads(meta.read_text()) if meta.exists() else {}
    record.pop("shipped_as", None)
    record.setdefault("entropy_fits", []).append(fit)
    atomic_write_bytes(out.with_suffix(".json"), (json.dumps(record, indent=2) + "\n").encode())
    if args.video and args.records.lower() != "none":
        append_record(args.records, {"stage": "entropy-fit", "weights": str(out), **fit})
    print(json.dumps({"out": str(out), "fit": {k: v for k, v in fit.items() if k in ("steps", "wall_seconds", "coders")}},
                     default=str)[:2000])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
