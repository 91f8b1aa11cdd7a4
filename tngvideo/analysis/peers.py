"""Classic video codecs through PyAV's FFmpeg, measured the same way as tngvideo:
bytes per frame from the encoder's packets, file size from the muxed file, metrics on the
decoded RGB frames."""

from __future__ import annotations

import os
import tempfile
import time
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

os.environ.setdefault("SVT_LOG", "1")  # SVT-AV1: errors only

# name -> (encoder, options ("{gop}" is replaced by tngvideo's intra period), rate knob, swept values)
PEERS: dict[str, tuple[str, dict[str, str], str, list[int]]] = {
    "x264": ("libx264", {"preset": "medium"}, "crf", [18, 23, 28, 33, 38]),
    # low-delay P: no B-frames, an I-frame every `gop` frames exactly like tngvideo's
    "x264-lowdelay": ("libx264", {"preset": "medium", "x264-params": "bframes=0:keyint={gop}:min-keyint={gop}:scenecut=0"},
                      "crf", [18, 23, 28, 33, 38]),
    "x265": ("libx265", {"preset": "medium", "x265-params": "log-level=error"}, "crf", [20, 25, 30, 35, 40]),
    "svtav1": ("libsvtav1", {"preset": "8"}, "crf", [25, 35, 45, 55, 63]),
}


@dataclass(frozen=True)
class PeerRun:
    codec: str
    setting: int
    file_bytes: int
    frame_bytes: list[int]  # in presentation order
    decoded: list[np.ndarray]
    encode_seconds: float
    decode_seconds: float


def run_peer(name: str, frames: list[np.ndarray], setting: int, *, rate: Fraction = Fraction(25),
             gop: int = 16) -> PeerRun:
    if name not in PEERS:
        raise ValueError(f"unknown peer codec '{name}' (known: {', '.join(PEERS)})")
    encoder, options, knob, _ = PEERS[name]
    options = {k: v.replace("{gop}", str(gop)) for k, v in options.items()}
    h, w = frames[0].shape[:2]
    eh, ew = h - h % 2, w - w % 2  # 4:2:0 needs even sizes; compare on the common area
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "peer.mkv"
        sizes: dict[int, int] = {}
        t0 = time.perf_counter()
        with av.open(str(path), "w") as out:
            s = out.add_stream(encoder, rate=rate, options={**options, knob: str(setting)})
            s.width, s.height, s.pix_fmt = ew, eh, "yuv420p"
            for i, rgb in enumerate(frames):
                vf = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb[:eh, :ew]), format="rgb24")
                vf.pts = i
                for p in s.encode(vf.reformat(format="yuv420p")):
                    sizes[int(p.pts)] = sizes.get(int(p.pts), 0) + p.size
                    out.mux(p)
            for p in s.encode(None):
                sizes[int(p.pts)] = sizes.get(int(p.pts), 0) + p.size
                out.mux(p)
        t1 = time.perf_counter()
        with av.open(str(path)) as c:
            decoded = [f.to_ndarray(format="rgb24") for f in c.decode(c.streams.video[0])]
        t2 = time.perf_counter()
        file_bytes = path.stat().st_size
    order = sorted(sizes)
    return PeerRun(name, setting, file_bytes, [sizes[k] for k in order], decoded, t1 - t0, t2 - t1)
