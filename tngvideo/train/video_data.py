"""Training data for the P-frame model.

- `SyntheticMotion`: from still photos, a random affine camera motion (shift, zoom, rotation)
  plus an independently moving patch from another photo, with the exact flow. This is the
  usual way to pretrain motion estimation without a large video corpus.
- `ClipPairs`: consecutive frames of real clips (and Vimeo-90k septuplets), decoded once and
  kept in memory, cropped at the same place in every frame: runs of two or more frames (a
  pair, or a rollout). No flow: for rate-distortion training.
"""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from tngvideo.train.data import IMAGE_SUFFIXES

VIDEO_SUFFIXES = {".mp4", ".mkv", ".avi", ".264", ".h264", ".webm", ".mov", ".y4m"}
FRAME_NAME = re.compile(r"^im(\d+)$")  # frame folders: im1.png, im2.png ... (Vimeo-90k) or im0001.webp ...


def frame_folders(root: str | Path) -> list[tuple[Path, list[Path]]]:
    """Folders under `root` holding frames named im<N> (any image format), with their frames
    in numeric order."""
    found: dict[Path, list[tuple[int, Path]]] = {}
    for p in Path(root).rglob("im*"):
        m = FRAME_NAME.match(p.stem)
        if m and p.suffix.lower() in IMAGE_SUFFIXES:
            found.setdefault(p.parent, []).append((int(m.group(1)), p))
    return [(d, [p for _, p in sorted(frames)]) for d, frames in sorted(found.items())]


def read_frames(files: list[Path], *, max_frames: int) -> list[np.ndarray]:
    """The first `max_frames` frames of a frame folder (as listed by `frame_folders`) as RGB8."""
    return [np.asarray(Image.open(p).convert("RGB")) for p in files[:max_frames]]


def read_clip(path: str | Path, *, max_frames: int, max_side: int) -> list[np.ndarray]:
    """The first `max_frames` frames of a video file as RGB8, halved while larger than `max_side`."""
    from tngvideo.media import read_video  # PyAV only where video files are read

    frames = [fr.rgb for fr in read_video(path, max_frames=max_frames)]
    while frames and max(frames[0].shape[:2]) > max_side:
        frames = [np.asarray(Image.fromarray(x).reduce(2)) for x in frames]
    return frames


class SyntheticMotion:
    def __init__(self, files: list[Path], *, crop: int, seed: int = 0, max_shift: float = 12.0,
                 max_zoom: float = 0.06, max_rotation_deg: float = 4.0):
        self.margin = int(math.ceil(max_shift + crop * (max_zoom + math.radians(max_rotation_deg)))) + 2
        big = crop + 2 * self.margin
        self.images = [im for im in (np.asarray(Image.open(f).convert("RGB")) for f in files) if min(im.shape[:2]) >= big]
        if len(self.images) < 2:
            raise ValueError(f"need photos of at least {big}x{big} pixels")
        self.crop, self.big = crop, big
        self.rng = np.random.default_rng(seed)
        self.max_shift, self.max_zoom, self.max_rot = max_shift, max_zoom, math.radians(max_rotation_deg)

    def _region(self, size: int) -> torch.Tensor:
        img = self.images[self.rng.integers(len(self.images))]
        top = self.rng.integers(0, img.shape[0] - size + 1)
        left = self.rng.integers(0, img.shape[1] - size + 1)
        return torch.from_numpy(np.ascontiguousarray(img[top : top + size, left : left + size])).permute(2, 0, 1).float() / 255

    def batch(self, n: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        c, m, big = self.crop, self.margin, self.big
        bigs = torch.stack([self._region(big) for _ in range(n)])
        ys, xs = torch.meshgrid(torch.arange(c, dtype=torch.float32), torch.arange(c, dtype=torch.float32), indexing="ij")
        flows = []
        for _ in range(n):
            ang = self.rng.uniform(-self.max_rot, self.max_rot)
            zoom = 1 + self.rng.uniform(-self.max_zoom, self.max_zoom)
            tx, ty = self.rng.uniform(-self.max_shift, self.max_shift, size=2)
            cx = cy = (c - 1) / 2
            dx, dy = xs - cx, ys - cy
            px = zoom * (math.cos(ang) * dx - math.sin(ang) * dy) + cx + tx
            py = zoom * (math.sin(ang) * dx + math.cos(ang) * dy) + cy + ty
            flows.append(torch.stack([px - xs, py - ys]))
        flow = torch.stack(flows)
        gx = (xs + flow[:, 0] + m) / (big - 1) * 2 - 1
        gy = (ys + flow[:, 1] + m) / (big - 1) * 2 - 1
        cur = F.grid_sample(bigs, torch.stack([gx, gy], -1), mode="bilinear", padding_mode="border", align_corners=True)
        ref = bigs[:, :, m : m + c, m : m + c].clone()
        for i in range(n):  # an object that moves on its own
            if self.rng.random() < 0.6:
                s = int(self.rng.integers(c // 6, c // 2))
                patch = self._region(s)
                d = self.rng.uniform(-self.max_shift, self.max_shift, size=2).round().astype(int)
                qy, qx = self.rng.integers(0, c - s, size=2)
                ry, rx = np.clip([qy, qx], 0, c - s)
                cy2, cx2 = np.clip([qy + d[1], qx + d[0]], 0, c - s)
                ref[i, :, ry : ry + s, rx : rx + s] = patch
                cur[i, :, cy2 : cy2 + s, cx2 : cx2 + s] = patch
                flow[i, 0, cy2 : cy2 + s, cx2 : cx2 + s] = float(rx - cx2)
                flow[i, 1, cy2 : cy2 + s, cx2 : cx2 + s] = float(ry - cy2)
        return cur, ref, flow


def named_clips(roots: list[str | Path], *, max_frames: int, max_side: int) -> list[tuple[Path, list[np.ndarray]]]:
    """Every video file and frame folder under (or named by) `roots`: its path and its first
    `max_frames` RGB8 frames."""
    clips = []
    for root in roots:
        root = Path(root)
        for f in sorted(root.rglob("*")) if root.is_dir() else [root]:
            if f.suffix.lower() in VIDEO_SUFFIXES:
                clips.append((f, read_clip(f, max_frames=max_frames, max_side=max_side)))
        for folder, files in frame_folders(root):
            clips.append((folder, read_frames(files, max_frames=max_frames)))
    return clips


def read_clips(roots: list[str | Path], *, max_frames: int, max_side: int) -> list[list[np.ndarray]]:
    """The frames of `named_clips`."""
    return [frames for _, frames in named_clips(roots, max_frames=max_frames, max_side=max_side)]


class ClipPairs:
    def __init__(self, roots: list[str | Path], *, crop: int, seed: int = 0, max_frames: int = 120,
                 max_side: int = 720):
        self.sequences: list[np.ndarray] = []
        for frames in read_clips(roots, max_frames=max_frames, max_side=max_side):
            self._add(frames, crop)
        if not self.sequences:
            raise ValueError("no training clips found")
        self.crop = crop
        self.rng = np.random.default_rng(seed)

    def _add(self, frames: list[np.ndarray], crop: int) -> None:
        if len(frames) >= 2 and min(frames[0].shape[:2]) >= crop:
            self.sequences.append(np.stack(frames))

    def clips(self, n: int, length: int) -> list[torch.Tensor]:
        """`length` consecutive frames of `n` random crops: a list of (n, 3, crop, crop) in time order."""
        c = self.crop
        out = []
        for _ in range(n):
            seq = self.sequences[self.rng.integers(len(self.sequences))]
            t = self.rng.integers(0, len(seq) - length + 1) if len(seq) >= length else 0
            top = self.rng.integers(0, seq.shape[1] - c + 1)
            left = self.rng.integers(0, seq.shape[2] - c + 1)
            run = seq[t : t + length, top : top + c, left : left + c]
            if len(run) < length:  # a clip shorter than the rollout: hold its last frame
                run = np.concatenate([run, np.repeat(run[-1:], length - len(run), axis=0)])
            out.append(run[:, :, ::-1] if self.rng.random() < 0.5 else run)
        frames = torch.from_numpy(np.ascontiguousarray(np.stack(out))).permute(1, 0, 4, 2, 3).float() / 255
        return list(frames)
