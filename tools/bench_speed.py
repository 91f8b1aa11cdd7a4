#!/usr/bin/env python3
"""Encode and decode speed of tngvideo against x264 (preset medium) in the same run, as ratios,
and how far decoded pixels depend on the thread count (and, where CUDA is present, the device).

    python tools/bench_speed.py                       # CIF 12 frames, 1080p 3 frames -> results/speed.json
    python tools/bench_speed.py --sizes 352x288 --frames 24

The frames are the first frames of a real clip (default: the bikes dev clip), resized to each
size. tngvideo encodes with the shipped models at --quality (GOP 16: one I-frame, then
P-frames); x264 codes the same frames at crf 23, yuv420p, through PyAV, and its decode time
includes the conversion to RGB, as tngvideo's does. Threads: torch's default (all cores) unless
--threads (x264 gets as many). Pixel identity: the file is decoded again at another thread
count (1, or 2 when the run uses 1) and on CUDA, where present, and compared with the first
decode, value by value. The same is measured for the float reconstruction of the earlier formats
(`tng_float`), the speed baseline of the fixed-point one.
"""

from __future__ import annotations

import argparse
import datetime
import json
import platform
import sys
import tempfile
import time
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import torch

from tngvideo.analysis.records import device_description
from tngvideo.datapaths import data_path
from tngvideo.fileio import atomic_write_bytes
from tngvideo.heap import keep_freed_memory
from tngvideo.errors import MediaError
from tngvideo.media import VideoFrame, read_resized
from tngvideo.video.registry import load_video_codecs
from tngvideo.videofile import decode_frames, encode_sequence

ROOT = Path(__file__).resolve().parents[1]


def x264_speed(frames: list[np.ndarray], path: Path, threads: int) -> dict:
    h, w = frames[0].shape[:2]
    t0 = time.perf_counter()
    with av.open(str(path), "w") as out:
        s = out.add_stream("libx264", rate=25, options={"crf": "23", "preset": "medium", "threads": str(threads)})
        s.width, s.height, s.pix_fmt = w, h, "yuv420p"
        for x in frames:
            for p in s.encode(av.VideoFrame.from_ndarray(x, format="rgb24").reformat(format="yuv420p")):
                out.mux(p)
        for p in s.encode():
            out.mux(p)
    enc = time.perf_counter() - t0
    t0 = time.perf_counter()
    with av.open(str(path)) as inp:
        inp.streams.video[0].thread_count = threads
        n = sum(1 for f in inp.decode(video=0) if f.to_ndarray(format="rgb24") is not None)
    dec = time.perf_counter() - t0
    return {"encode_fps": round(len(frames) / enc, 3), "decode_fps": round(n / dec, 3), "bytes": path.stat().st_size}


def tng_decode(path: Path, codecs) -> tuple[list[np.ndarray], float]:
    t0 = time.perf_counter()
    _, it = decode_frames(path, codecs=codecs)
    rgb = [f.rgb for f in it]
    return rgb, time.perf_counter() - t0


def differing(a: list[np.ndarray], b: list[np.ndarray]) -> list[int]:
    return [int(np.count_nonzero(x != y)) for x, y in zip(a, b)]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clip", default=str(data_path("video", "dev", "bikes_640x272.mp4")))
    ap.add_argument("--sizes", nargs="+", default=["352x288", "1920x1080"])
    ap.add_argument("--frames", nargs="+", type=int, default=[12, 3], help="frames per size (one value: for all)")
    ap.add_argument("--quality", type=float, default=4.0)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--out", default=str(ROOT / "results/speed.json"))
    args = ap.parse_args()
    keep_freed_memory()  # as the tngvideo command does
    if args.threads:
        torch.set_num_threads(args.threads)
    threads = torch.get_num_threads()
    counts = args.frames if len(args.frames) == len(args.sizes) else [args.frames[0]] * len(args.sizes)
    codecs = load_video_codecs()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for size_text, n in zip(args.sizes, counts):
            w, h = map(int, size_text.split("x"))
            try:
                frames = read_resized(args.clip, w, h, n)
            except MediaError as exc:
                raise SystemExit(f"error: {exc}") from None
            vf = [VideoFrame(x, i, 1) for i, x in enumerate(frames)]
            row = {"size": size_text, "frames": n, "quality": args.quality, "threads": threads}
            other = 2 if threads == 1 else 1
            for key, exact in (("tng_float", False), ("tng", True)):  # the fixed-point one last: its file stays
                codecs.pframes.exact = exact
                t0 = time.perf_counter()
                seq = encode_sequence(vf, codecs, width=w, height=h, time_base=Fraction(1, 25),
                                      frame_rate=Fraction(25), quality=args.quality, gop=16)
                enc = time.perf_counter() - t0
                path = Path(tmp) / f"{size_text}.tngv"
                seq.write(path)
                rgb, dec = tng_decode(path, codecs)
                torch.set_num_threads(other)
                again, _ = tng_decode(path, codecs)
                torch.set_num_threads(threads)
                row[key] = {"encode_fps": round(n / enc, 3), "decode_fps": round(n / dec, 3),
                            "bytes": path.stat().st_size, "psnr": round(float(np.mean(seq.psnr)), 2),
                            f"differing_values_{other}_threads_vs_{threads}": differing(rgb, again)}
            row["x264_medium"] = x264_speed(frames, Path(tmp) / f"{size_text}.mp4", threads)
            row["decode_fps_ratio_vs_x264"] = round(row["tng"]["decode_fps"] / row["x264_medium"]["decode_fps"], 5)
            row["encode_fps_ratio_vs_x264"] = round(row["tng"]["encode_fps"] / row["x264_medium"]["encode_fps"], 5)
            row["decode_time_fixed_vs_float"] = round(row["tng_float"]["decode_fps"] / row["tng"]["decode_fps"], 3)
            if torch.cuda.is_available():
                try:
                    gpu_codecs = load_video_codecs(device="cuda")
                    tng_decode(path, gpu_codecs)  # warm-up
                    torch.cuda.synchronize()
                    on_gpu, gdec = tng_decode(path, gpu_codecs)
                    row["cuda"] = {"decode_fps": round(n / gdec, 3), "differing_values_vs_cpu": differing(rgb, on_gpu),
                                   "device": device_description("cuda")}
                except Exception as exc:  # a figure missing, not a run lost
                    row["cuda"] = {"error": f"{type(exc).__name__}: {exc}"}
            rows.append(row)
            print(json.dumps(row))
    record = {"date": datetime.datetime.now().strftime("%Y-%m-%d %H:%M"), "command": " ".join(sys.argv),
              "machine": f"{platform.machine()} CPU, {threads} threads, torch {torch.__version__}",
              "model": codecs.name, "clip": Path(args.clip).name, "rows": rows}
    atomic_write_bytes(Path(args.out), (json.dumps(record, indent=1) + "\n").encode())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
