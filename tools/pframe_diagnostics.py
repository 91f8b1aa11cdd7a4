#!/usr/bin/env python3
"""Where a P-frame's bits go and how good its prediction is, frame by frame.

    python tools/pframe_diagnostics.py                       # dev clips, 9 frames, qualities 1 4 8
    python tools/pframe_diagnostics.py clip.mp4 --frames 17 --qualities 2 6

Codes each clip in closed loop (an I-frame, then P-frames with motion always coded, at the frame's quality) and, per
P-frame, reports the motion and residual bytes (hyper-latent / latent), and the PSNR-RGB of
three predictions: the reference itself (zero motion), the reference warped with the decoded
flow, and the motion-compensation network's output; also the network's mean offset from the
plain warp and its PSNR once that offset is removed, the frame before and after the loop filter,
and how well each flow estimator's uncoded flow warps the reference (the flow net's and OpenCV
DIS's). Writes results/pframe_diagnostics.json.

    python tools/pframe_diagnostics.py --shifts 5,2 0.5,0 2.25,-1.5 [clip]   # frame 0 shifted by (dx, dy)

With --shifts, each clip's first frame is also moved by each pure translation (bicubic for
sub-pixel shifts, the border cropped away) and both estimators' uncoded warps are scored.
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import sys
from pathlib import Path

import torch

from tngvideo.analysis.records import device_description
from tngvideo.datapaths import data_path
from tngvideo.fileio import atomic_write_bytes
from tngvideo.media import MediaError
from tngvideo.train.video_data import named_clips
from tngvideo.video.codec import frame_tensor, on_grid
from tngvideo.video.flow_dis import dis_flow
from tngvideo.video.model import reconstruct
from tngvideo.video.registry import load_video_codecs
from tngvideo.video.warp import backward_warp

ROOT = Path(__file__).resolve().parents[1]


def _psnr(a: torch.Tensor, b: torch.Tensor, h: int, w: int) -> float:
    mse = float(((a - b)[..., :h, :w].clamp(-1, 1) ** 2).mean())
    return 10 * math.log10(1.0 / mse) if mse > 0 else float("inf")


@torch.no_grad()
def diagnose(codecs, frames, quality: float) -> list[dict]:
    p = codecs.pframes
    forced = copy.copy(p)  # the same coder, always coding motion
    forced.mode_decision = False
    h, w = frames[0].shape[:2]
    x0 = frame_tensor(frames[0], codecs.image.device)
    _, x_hat = codecs.image.encode_tensor(x0, forced.intra_quality(codecs.image, quality), hw=(h, w))
    ref, source, rows = on_grid(x_hat), x0, []
    for i, rgb in enumerate(frames[1:], 1):
        x = frame_tensor(rgb, codecs.image.device)
        f = forced.encode(x, ref, quality, hw=(h, w), flow_ref=source, motion_offsets=(0.0,))
        motion, residual, x_hat = f.motion, f.residual, f.x_hat
        flow_hat = forced.decoded_flow(motion, ref, quality)
        warped, mc = backward_warp(ref, flow_hat), f.prediction
        res_hat = forced._decode(forced.residual, residual, ref.shape[-2:], quality, ref.device)
        unfiltered = reconstruct(mc, res_hat)
        offset = (mc - warped)[..., :h, :w].mean(dim=(0, 2, 3), keepdim=True)
        rows.append({
            "frame": i, "quality": quality,
            "motion_bytes": [len(motion.hyper), len(motion.latent)],
            "residual_bytes": [len(residual.hyper), len(residual.latent)],
            "psnr_zero_motion": _psnr(ref, x, h, w), "psnr_warp": _psnr(warped, x, h, w),
            "psnr_mc": _psnr(mc, x, h, w), "psnr_mc_offset_removed": _psnr(mc - offset, x, h, w),
            "mc_mean_offset": float(offset.mean()), "psnr_before_filter": _psnr(unfiltered.clamp(0, 1), x, h, w),
            "psnr_frame": _psnr(x_hat.clamp(0, 1), x, h, w),
            **{f"psnr_uncoded_{name}": _psnr(backward_warp(ref, net(x, source)), x, h, w)
               for name, net in (("net", p.flow_net), ("dis", dis_flow))},
        })
        ref, source = on_grid(x_hat), x
    return rows


@torch.no_grad()
def shift_test(codecs, rgb, shifts: list[tuple[float, float]]) -> list[dict]:
    """Each estimator's uncoded warp of frame `rgb` onto itself moved by (dx, dy) pixels."""
    import torch.nn.functional as F

    x = frame_tensor(rgb, codecs.image.device)
    h, w = rgb.shape[:2]
    m = 16  # border dropped after the shift
    out = []
    for dx, dy in shifts:
        ys, xs = torch.meshgrid(torch.arange(h, dtype=torch.float32), torch.arange(w, dtype=torch.float32), indexing="ij")
        grid = torch.stack([(xs - dx) / (w - 1) * 2 - 1, (ys - dy) / (h - 1) * 2 - 1], dim=-1)[None]
        moved = F.grid_sample(x[..., :h, :w], grid, mode="bicubic", align_corners=True).clamp(0, 1)
        cur, ref = moved[..., m:-m, m:-m].contiguous(), x[..., m:h - m, m:w - m].contiguous()
        row = {"dx": dx, "dy": dy}
        for name, net in (("net", codecs.pframes.flow_net), ("dis", dis_flow)):
            flow = net(cur, ref)
            row[f"psnr_warp_{name}"] = _psnr(backward_warp(ref, flow)[..., m:-m, m:-m], cur[..., m:-m, m:-m], h, w)
            row[f"mean_flow_{name}"] = [round(float(flow[:, 0].mean()), 3), round(float(flow[:, 1].mean()), 3)]
        out.append(row)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("clips", nargs="*", default=[str(data_path("video", "dev"))],
                    help="clips or folders of clips (default: the dev clips)")
    ap.add_argument("--frames", type=int, default=9)
    ap.add_argument("--qualities", type=float, nargs="+", default=[1.0, 4.0, 8.0])
    ap.add_argument("--model", default=None, help="video model (default: the newest shipped)")
    ap.add_argument("--shifts", nargs="*", default=[], metavar="DX,DY", help="pure-translation test of the estimators")
    ap.add_argument("--out", default=str(ROOT / "results/pframe_diagnostics.json"))
    args = ap.parse_args()
    try:
        codecs = load_video_codecs(args.model)
        if codecs.pframes.motion is None:
            raise ValueError(f"{codecs.name} has no motion model to diagnose")
        clips = [(n, c) for n, c in named_clips(args.clips, max_frames=args.frames, max_side=4096) if len(c) >= 2]
        if not clips:
            raise ValueError(f"no clips of two or more frames in {args.clips}")
        for q in args.qualities:
            codecs.pframes.check_quality(q)
        shifts = [tuple(float(v) for v in s.split(",")) for s in args.shifts]
        if any(len(s) != 2 for s in shifts):
            raise ValueError("a shift is DX,DY")
    except (ValueError, FileNotFoundError, MediaError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    out, shift_rows = [], []
    for name, frames in clips:
        if shifts:
            rows = shift_test(codecs, frames[0], shifts)
            shift_rows.append({"clip": name.name, "shifts": rows})
            for r in rows:
                print(f"{name.name} shift ({r['dx']:g}, {r['dy']:g}): warp PSNR net {r['psnr_warp_net']:.2f} dB, "
                      f"DIS {r['psnr_warp_dis']:.2f} dB")
        for q in args.qualities:
            rows = diagnose(codecs, frames, q)
            mean = {k: sum(r[k] for r in rows) / len(rows) for k in rows[0] if k.startswith(("psnr", "mc_"))}
            out.append({"clip": name.name, "quality": q, "mean": mean, "frames": rows})
            print(f"{name.name} q{q}: " + ", ".join(f"{k} {v:.{3 if k.endswith('offset') else 2}f}"
                                                    for k, v in mean.items()))
    record = {"models": codecs.model_ids(), "device": device_description(), "clips": args.clips,
              "frames": args.frames, "results": out, **({"shift_test": shift_rows} if shift_rows else {})}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(Path(args.out), (json.dumps(record, indent=2) + "\n").encode())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
