#!/usr/bin/env python3
"""A/B of video encoder options on real clips: what each encoder-side lever is worth.

    python tools/bench_encoder.py --variant base='{}' --variant i1='{"intra_offset": 1}'
    python tools/bench_encoder.py --variant dis='{"motion_estimators": ["net", "dis"]}' --out results/encoder_ab.json

Each variant is a name and a JSON object of `tngvideo.video.EncoderOptions` fields (lists become
tuples). For every clip, quality and variant the clip's first FRAMES frames are encoded (closed
loop, the default models; the encoder's reconstruction is what a decoder outputs) and the rate is
taken from the packets' bytes (the container's fixed overhead, the same for every variant, left
out). Rows accumulate in --out across runs (a variant already measured with the same clips,
frames and qualities is not encoded again), so variants can be measured one process at a time.
With --crop WxH each clip is cut to its centre WxH (native scale and motion, fewer pixels: a
quicker proxy for choosing between variants; confirm the choice on whole frames with
tools/bench_video.py). The first variant named in the record is the reference: BD-rate (PSNR-RGB, PCHIP) of every
other variant against it, per clip and as the mean over clips, and the encode-time ratio.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import replace
from fractions import Fraction
from pathlib import Path

import torch
from tqdm import tqdm

from tngvideo.analysis.bdrate import bd_rate
from tngvideo.analysis.records import device_description
from tngvideo.datapaths import data_path
from tngvideo.fileio import atomic_write_bytes
from tngvideo.media import VideoFrame, read_video
from tngvideo.video import DEFAULT_GOP, EncoderOptions
from tngvideo.video.registry import load_video_codecs
from tngvideo.videofile import encode_sequence

ROOT = Path(__file__).resolve().parents[1]

DATA = data_path("video")
# the dev clips and two train2 clips held out of training (configs/video_finetune_train2.yaml)
DEFAULT_CLIPS = [DATA / "dev/bikes_640x272.mp4", DATA / "dev/gymbasketball_426x240.mp4",
                 DATA / "train2/party_640x480.mp4", DATA / "train2/tearsofsteel_640x360.mp4"]


def parse_variant(text: str) -> tuple[str, dict]:
    name, sep, spec = text.partition("=")
    if not sep or not name:
        raise ValueError(f"a variant is NAME=JSON, not {text!r}")
    fields = json.loads(spec)
    if not isinstance(fields, dict):
        raise ValueError(f"variant {name}: the options must be a JSON object")
    EncoderOptions(**{k: tuple(v) if isinstance(v, list) else v for k, v in fields.items()})  # validate now
    return name, fields


def centre(frame: VideoFrame, crop: tuple[int, int] | None) -> VideoFrame:
    """The centre crop (w, h) of a frame (the whole frame where it is smaller)."""
    if crop is None:
        return frame
    h, w = frame.rgb.shape[:2]
    cw, ch = min(w, crop[0]), min(h, crop[1])
    y, x = (h - ch) // 2, (w - cw) // 2
    return replace(frame, rgb=frame.rgb[y:y + ch, x:x + cw].copy())


def encode_clip(codecs, frames: list[VideoFrame], quality: float, gop: int, options: EncoderOptions) -> dict:
    h, w = frames[0].rgb.shape[:2]
    seq = encode_sequence(frames, codecs, width=w, height=h, time_base=Fraction(1, 25), frame_rate=Fraction(25),
                          quality=quality, gop=gop, options=options)
    nbytes = sum(len(p[0]) for p in seq.packets)
    return {"bytes": nbytes, "bpp": 8 * nbytes / (w * h * len(frames)), "psnr_rgb": sum(seq.psnr) / len(seq.psnr),
            "encode_seconds": round(sum(seq.encode_ms) / 1000, 2), "frame_psnr": [round(v, 3) for v in seq.psnr],
            "types": "".join(st.frame_type.name for st in seq.stats)}


def summarise(record: dict) -> dict:
    """BD-rate and encode-time ratio of each variant against the first, per clip and mean."""
    rows, names = record["rows"], list(record["variants"])
    ref, out = names[0], {}
    for name in names[1:]:
        per_clip, time_ratio = {}, []
        for clip in record["clips"]:
            a = sorted((r for r in rows if r["variant"] == ref and r["clip"] == clip), key=lambda r: r["quality"])
            b = sorted((r for r in rows if r["variant"] == name and r["clip"] == clip), key=lambda r: r["quality"])
            if len(a) < 2 or len(a) != len(b):
                continue
            per_clip[clip] = round(bd_rate([r["bpp"] for r in a], [r["psnr_rgb"] for r in a],
                                           [r["bpp"] for r in b], [r["psnr_rgb"] for r in b]), 2)
            time_ratio.append(sum(r["encode_seconds"] for r in b) / max(1e-9, sum(r["encode_seconds"] for r in a)))
        if per_clip:
            out[name] = {"vs": ref, "bd_rate_pct": per_clip,
                         "mean_bd_rate_pct": round(sum(per_clip.values()) / len(per_clip), 2),
                         "encode_time_ratio": round(sum(time_ratio) / len(time_ratio), 3)}
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--variant", action="append", default=[], metavar="NAME=JSON", required=True)
    ap.add_argument("--clips", nargs="+", default=[str(c) for c in DEFAULT_CLIPS])
    ap.add_argument("--frames", type=int, default=16)
    ap.add_argument("--qualities", type=float, nargs="+", default=[1.0, 2.5, 4.0, 6.0])
    ap.add_argument("--gop", type=int, default=DEFAULT_GOP)
    ap.add_argument("--crop", default=None, metavar="WxH", help="code the centre WxH of each clip")
    ap.add_argument("--model", default=None, help="video model (default: the newest shipped)")
    ap.add_argument("--out", default=str(ROOT / "results/encoder_ab.json"))
    args = ap.parse_args()
    try:
        variants = dict(parse_variant(v) for v in args.variant)
        codecs = load_video_codecs(args.model)
        for q in args.qualities:
            codecs.pframes.check_quality(q)
    except (OSError, ValueError) as exc:
        print(f"bench_encoder: {exc}", file=sys.stderr)
        return 2
    clips = [Path(c) for c in args.clips]
    missing = [str(c) for c in clips if not c.is_file()]
    if missing or args.frames < 1:
        print(f"bench_encoder: missing clips {missing}" if missing else "bench_encoder: --frames must be >= 1",
              file=sys.stderr)
        return 2
    out = Path(args.out)
    crop = tuple(int(v) for v in args.crop.lower().split("x")) if args.crop else None
    setup = {"frames_per_clip": args.frames, "crop": args.crop, "gop": args.gop, "qualities": args.qualities,
             "models": codecs.model_ids(), "clips": [c.name for c in clips]}
    record = json.loads(out.read_text()) if out.exists() else {}
    if any(record.get(k) != v for k, v in setup.items()):
        record = {**setup, "variants": {}, "rows": []}  # another setup: start over
    record["device"] = device_description()
    todo = {n: v for n, v in variants.items() if record["variants"].get(n) != v}
    record["rows"] = [r for r in record["rows"] if r["variant"] not in todo]
    record["variants"].update(todo)
    with tqdm(total=len(todo) * len(clips) * len(args.qualities), desc="encode", unit="run", file=sys.stderr) as bar:
        for clip in clips:
            frames = [centre(f, crop) for f in read_video(clip, max_frames=args.frames)] if todo else []
            for name, fields in todo.items():
                options = EncoderOptions(**{k: tuple(v) if isinstance(v, list) else v for k, v in fields.items()})
                for q in args.qualities:
                    row = encode_clip(codecs, frames, q, args.gop, options)
                    record["rows"].append({"variant": name, "clip": clip.name, "quality": q, **row})
                    bar.update(1)
                    bar.set_postfix(variant=name, clip=clip.stem, q=q)
                    record["summary"] = summarise(record)
                    out.parent.mkdir(parents=True, exist_ok=True)
                    atomic_write_bytes(out, (json.dumps(record, indent=1) + "\n").encode())
    record["summary"] = summarise(record)
    atomic_write_bytes(out, (json.dumps(record, indent=1) + "\n").encode())
    for name, s in record["summary"].items():
        cells = ", ".join(f"{c.split('_')[0]} {v:+.2f}%" for c, v in s["bd_rate_pct"].items())
        print(f"{name} vs {s['vs']}: mean {s['mean_bd_rate_pct']:+.2f}% ({cells}); encode time x{s['encode_time_ratio']}")
    return 0


if __name__ == "__main__":
    torch.set_grad_enabled(False)
    raise SystemExit(main())
