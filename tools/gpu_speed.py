#!/usr/bin/env python3
"""Decode and encode speed on a lent GPU machine, and pixel identity between it and this CPU both
ways: CPU-coded packets decoded on the GPU, GPU-coded packets decoded on the CPU. The GPU machine
has no PyAV, so nothing there touches a container or a clip: the frames and packets travel as
NumPy arrays in .gpu/speed/ (about 3 MB; .gpu/ is ignored by git).

    python tools/gpu_speed.py prepare               # here: frames (as tools/bench_speed.py takes
                                                    # them) and their CPU-coded packets -> .gpu/speed/
    python tools/gpu_speed.py run                   # there, with .gpu carried: -> $OUT (or gpu-speed/)
    python tools/gpu_speed.py compare DIR           # here, on what came back -> results/speed_gpu.json

`run --device cpu --threads 1` rehearses the GPU side on this machine. Each timed pass follows an
untimed one (CUDA start-up, kernel selection). The models must be the same on both sides (their
weights hashes are checked).
"""

from __future__ import annotations

import argparse
import datetime
import hashlib
import json
import os
import time
from pathlib import Path

import numpy as np
import torch

from tngvideo.analysis.records import device_description
from tngvideo.fileio import atomic_write_bytes
from tngvideo.heap import keep_freed_memory
from tngvideo.video.codec import VideoDecoder, VideoEncoder
from tngvideo.video.registry import load_video_codecs

ROOT = Path(__file__).resolve().parents[1]
STAGE = ROOT / ".gpu" / "speed"
GOP = 16


def digest(rgb: np.ndarray) -> bytes:
    return hashlib.sha1(np.ascontiguousarray(rgb).tobytes()).hexdigest().encode()


def pack(packets: list[bytes]) -> dict[str, np.ndarray]:
    return {"packets": np.frombuffer(b"".join(packets), dtype=np.uint8),
            "lengths": np.array([len(p) for p in packets], dtype=np.int64)}


def unpack(z) -> list[bytes]:
    data, ends = z["packets"].tobytes(), np.cumsum(z["lengths"])
    return [data[e - n:e] for e, n in zip(ends, z["lengths"])]


def decode_all(codecs, packets: list[bytes], w: int, h: int) -> tuple[list[np.ndarray], float]:
    dec = VideoDecoder(codecs.image, codecs.pframes, width=w, height=h)
    t0 = time.perf_counter()
    out = [dec.decode(p)[1] for p in packets]
    return out, time.perf_counter() - t0


def encode_all(codecs, frames: np.ndarray, quality: float) -> tuple[list[bytes], list[np.ndarray], float]:
    h, w = frames.shape[1:3]
    enc = VideoEncoder(codecs.image, codecs.pframes, width=w, height=h, quality=quality, gop=GOP)
    t0 = time.perf_counter()
    coded = [enc.encode(x) for x in frames]
    return [c.packet for c in coded], [c.reconstruction for c in coded], time.perf_counter() - t0


def prepare(args) -> int:
    from tngvideo.datapaths import data_path
    from tngvideo.errors import MediaError
    from tngvideo.media import read_resized  # PyAV and OpenCV: this side only

    clip = Path(args.clip or data_path("video", "dev", "bikes_640x272.mp4"))
    codecs = load_video_codecs()
    STAGE.mkdir(parents=True, exist_ok=True)
    meta = {"clip": clip.name, "quality": args.quality, "gop": GOP, "models": codecs.model_ids(),
            "cpu": device_description("cpu"), "sizes": []}
    for size, n in zip(args.sizes, args.frames):
        w, h = map(int, size.split("x"))
        try:
            frames = np.stack(read_resized(clip, w, h, n))
        except MediaError as exc:
            raise SystemExit(f"error: {exc}") from None
        packets, recon, enc = encode_all(codecs, frames, args.quality)
        np.savez_compressed(STAGE / f"{size}.npz", frames=frames, cpu_recon=np.array([digest(r) for r in recon]),
                            **pack(packets))
        meta["sizes"].append({"size": size, "frames": n, "cpu_encode_fps": round(n / enc, 3),
                              "bytes": sum(map(len, packets))})
        print(json.dumps(meta["sizes"][-1]))
    atomic_write_bytes(STAGE / "meta.json", (json.dumps(meta, indent=1) + "\n").encode())
    print(f"gpu_speed: {sum(f.stat().st_size for f in STAGE.iterdir()) / 1e6:.1f} MB in {STAGE}")
    return 0


def run(args) -> int:
    out = Path(os.environ.get("OUT") or args.out)
    out.mkdir(parents=True, exist_ok=True)
    if args.threads:
        torch.set_num_threads(args.threads)
    meta = json.loads((STAGE / "meta.json").read_text())
    codecs = load_video_codecs(device=args.device)
    if codecs.model_ids() != meta["models"]:
        raise SystemExit(f"error: models {codecs.model_ids()} here, {meta['models']} in {STAGE}")
    report = {"device": device_description(args.device), "rows": []}
    for entry in meta["sizes"]:
        size, n = entry["size"], entry["frames"]
        z = np.load(STAGE / f"{size}.npz")
        frames, packets = z["frames"], unpack(z)
        h, w = frames.shape[1:3]
        decode_all(codecs, packets, w, h)  # untimed pass
        decoded, dec = decode_all(codecs, packets, w, h)
        same = [digest(x) == r for x, r in zip(decoded, z["cpu_recon"])]
        encode_all(codecs, frames[:1], meta["quality"])  # untimed pass
        gpu_packets, recon, enc = encode_all(codecs, frames, meta["quality"])
        saved = {"decoded": np.stack(decoded)} if not all(same) else {}  # for counting values in compare
        np.savez_compressed(out / f"{size}.npz", gpu_recon=np.array([digest(r) for r in recon]),
                            **pack(gpu_packets), **saved)
        row = {"size": size, "frames": n, "decode_fps": round(n / dec, 3), "encode_fps": round(n / enc, 3),
               "bytes": sum(map(len, gpu_packets)), "cpu_packets_identical_frames": int(sum(same))}
        report["rows"].append(row)
        print(json.dumps(row), flush=True)
    atomic_write_bytes(out / "gpu_speed.json", (json.dumps(report, indent=1) + "\n").encode())
    return 0


def compare(args) -> int:
    back = Path(args.dir)
    meta = json.loads((STAGE / "meta.json").read_text())
    report = json.loads((back / "gpu_speed.json").read_text())
    codecs = load_video_codecs()
    rows = []
    for entry, gpu in zip(meta["sizes"], report["rows"]):
        size = entry["size"]
        cpu_z, gpu_z = np.load(STAGE / f"{size}.npz"), np.load(back / f"{size}.npz")
        h, w = cpu_z["frames"].shape[1:3]
        on_cpu, dec = decode_all(codecs, unpack(gpu_z), w, h)
        row = {**gpu, "cpu_encode_fps": entry["cpu_encode_fps"], "cpu_bytes": entry["bytes"],
               "gpu_packets_on_cpu_identical_frames": sum(digest(x) == r for x, r in zip(on_cpu, gpu_z["gpu_recon"])),
               "cpu_decode_fps": round(entry["frames"] / dec, 3)}
        if "decoded" in gpu_z.files:  # the GPU's decode of the CPU packets differed: by how much
            cpu_dec, _ = decode_all(codecs, unpack(cpu_z), w, h)
            row["cpu_packets_differing_values"] = [int(np.count_nonzero(a != b))
                                                   for a, b in zip(gpu_z["decoded"], cpu_dec)]
        rows.append(row)
        print(json.dumps(row))
    record = {"date": datetime.datetime.now().strftime("%Y-%m-%d %H:%M"), "command": "tools/gpu_speed.py",
              "gpu": report["device"], "cpu": device_description("cpu"), "clip": meta["clip"],
              "quality": meta["quality"], "gop": meta["gop"], "models": meta["models"], "rows": rows}
    atomic_write_bytes(Path(args.out), (json.dumps(record, indent=1) + "\n").encode())
    return 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("prepare")
    p.add_argument("--clip", default=None, help="default: the bikes dev clip")
    p.add_argument("--sizes", nargs="+", default=["352x288", "1920x1080"])
    p.add_argument("--frames", nargs="+", type=int, default=[12, 3])
    p.add_argument("--quality", type=float, default=4.0)
    r = sub.add_parser("run")
    r.add_argument("--device", default="cuda")
    r.add_argument("--threads", type=int, default=None)
    r.add_argument("--out", default="gpu-speed", help="where results go when $OUT is not set")
    c = sub.add_parser("compare")
    c.add_argument("dir")
    c.add_argument("--out", default=str(ROOT / "results/speed_gpu.json"))
    args = ap.parse_args()
    if args.cmd == "prepare" and len(args.frames) != len(args.sizes):
        ap.error("--frames needs one count per size")
    keep_freed_memory()  # for the CPU's work, as the tngvideo command does
    return {"prepare": prepare, "run": run, "compare": compare}[args.cmd](args)


if __name__ == "__main__":
    raise SystemExit(main())
