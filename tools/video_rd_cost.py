#!/usr/bin/env python3
"""Sequence rate-distortion cost of P-frame models on real bytes: the training objective, measured.

    python tools/video_rd_cost.py tng-video-10 runs/video/candidate.safetensors --frames 16
    python tools/video_rd_cost.py tng-video-10:float tng-video-10 --frames 8   # fixed point vs float

For each model (a shipped name or a weights file), clip and quality, the clip's first FRAMES
frames are encoded with the default encoder (GOP 16, preset medium, the shipped image model for
I-frames) and the sequence's cost J = sum over frames of lambda(q) * 255^2 * MSE * pixels + bits is
taken from the reconstructions and the packets' bytes. The first model is the reference: each
other model's J is reported relative to it, per clip and quality. A lower J at every quality is
the test a candidate passes before a full `bench_video.py` run.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch
from tqdm import tqdm

from tngvideo.metrics import psnr
from tngvideo.analysis.records import device_description
from tngvideo.datapaths import data_path
from tngvideo.fileio import atomic_write_bytes
from tngvideo.image.codec import ImageCodec
from tngvideo.image.registry import DEFAULT_MODEL as DEFAULT_IMAGE_MODEL
from tngvideo.media import read_video
from tngvideo.parallel import batch_inputs
from tngvideo.video.codec import frame_tensor
from tngvideo.video.registry import VideoCodecs, load_video_codecs, video_codecs_from_file
from tngvideo.video.sequence import SequenceEncoder

ROOT = Path(__file__).resolve().parents[1]


def codecs_for(spec: str) -> VideoCodecs:
    """A shipped model by name, or a P-frame model from a weights file (with the shipped image model);
    SPEC:float reconstructs in float (as packets before version 4) instead of fixed point."""
    name, _, mode = spec.partition(":")
    if mode not in ("", "float"):
        raise ValueError(f"unknown reconstruction {mode!r} in {spec!r} (only ':float')")
    if name.endswith(".safetensors"):
        codecs = video_codecs_from_file(name, ImageCodec.from_name(DEFAULT_IMAGE_MODEL))
    else:
        codecs = load_video_codecs(name)
    codecs.pframes.exact = mode != "float"
    return codecs


def sequence_cost(codecs: VideoCodecs, frames: list, quality: float, gop: int) -> dict:
    """J, bytes and mean PSNR-RGB of one closed-loop encode of `frames` at `quality`."""
    h, w = frames[0].shape[:2]
    enc = SequenceEncoder(codecs, width=w, height=h, quality=quality, gop=gop)
    cost, nbytes, psnrs = 0.0, 0, []
    for rgb in frames:
        out = enc.encode(rgb)
        x = frame_tensor(rgb, torch.device("cpu"))[..., :h, :w]
        x_hat = torch.from_numpy(out.rgb).permute(2, 0, 1)[None].float() / 255
        cost += codecs.pframes.rd_cost(x, x_hat, 8 * len(out.packet), quality)
        nbytes += len(out.packet)
        psnrs.append(psnr(rgb, out.rgb))
    return {"J": round(cost, 1), "bytes": nbytes, "psnr_rgb": round(sum(psnrs) / len(psnrs), 3)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("models", nargs="+", help="shipped model names or .safetensors files; the first is the reference")
    ap.add_argument("--clips", default=str(data_path("video", "dev")), help="a folder of clips")
    ap.add_argument("--frames", type=int, default=16)
    ap.add_argument("--qualities", type=float, nargs="+", default=[1.0, 2.5, 4.0, 6.0])
    ap.add_argument("--gop", type=int, default=16)
    ap.add_argument("--out", default=None, help="write the figures as JSON here")
    args = ap.parse_args()
    if args.frames < 1 or args.gop < 1:
        print("video_rd_cost: --frames and --gop must be at least 1", file=sys.stderr)
        return 2
    clips = batch_inputs(args.clips) if Path(args.clips).is_dir() else []
    if not clips:
        print(f"video_rd_cost: no clips in {args.clips}", file=sys.stderr)
        return 2
    try:
        models = [codecs_for(m) for m in args.models]
        for m in models:
            for q in args.qualities:
                m.pframes.check_quality(q)
    except (OSError, ValueError) as exc:
        print(f"video_rd_cost: {exc}", file=sys.stderr)
        return 2
    t0 = time.time()
    rows = []
    with tqdm(total=len(models) * len(clips) * len(args.qualities), desc="encode", unit="run", file=sys.stderr) as bar:
        for clip in clips:
            frames = [f.rgb for f in read_video(clip, max_frames=args.frames)]
            for q in args.qualities:
                for spec, codecs in zip(args.models, models):
                    cost = sequence_cost(codecs, frames, q, args.gop)
                    rows.append({"model": spec, "clip": clip.name, "quality": q, **cost})
                    bar.update(1)
    ref = {(r["clip"], r["quality"]): r["J"] for r in rows if r["model"] == args.models[0]}
    for r in rows:
        r["J_vs_reference_pct"] = round(100 * (r["J"] / ref[(r["clip"], r["quality"])] - 1), 3)
    for spec in args.models[1:]:
        for clip in clips:
            cells = [f"q{r['quality']:g} {r['J_vs_reference_pct']:+.2f}%" for r in rows
                     if r["model"] == spec and r["clip"] == clip.name]
            print(f"{spec} vs {args.models[0]}, {clip.name}, J: {', '.join(cells)}")
    if args.out:
        record = {"device": device_description(), "seconds": round(time.time() - t0, 1), "frames_per_clip": args.frames,
                  "gop": args.gop, "models": {s: m.model_ids() for s, m in zip(args.models, models)}, "rows": rows}
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(out, (json.dumps(record, indent=2) + "\n").encode())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
