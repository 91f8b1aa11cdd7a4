"""Training data that lives on the training device.

Photos and clips are decoded once into one padded uint8 tensor on the device (a GPU's memory
holds gigabytes of it), and every batch is cut there: random crops, flips and runs of
consecutive frames come from a single indexing operation, synthetic motion from one
`grid_sample`, so a fast device never waits for the host and no batch crosses the bus.

- `PackedFrames`: runs of frames (a photo is a run of one), portrait items turned to landscape,
  padded to the largest; `crops(n, length, crop)` draws (n, length, 3, crop, crop) uint8.
- `SyntheticMotion`: from photos, a random affine camera motion (shift, zoom, rotation) plus an
  independently moving patch from another photo, with the exact flow: the usual way to
  pretrain motion estimation without a large video corpus.
- `ClipPairs`: runs of consecutive frames of real clips at one crop (for rate-distortion
  training of the P-frame model over rollouts).

All randomness comes from one seeded generator on the device, so runs are reproducible.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image


def _generator(device: torch.device, seed: int) -> torch.Generator:
    return torch.Generator(device=device).manual_seed(seed)


class PackedFrames:
    """Items of shape (T, H, W, 3) uint8 padded into one (N, T_max, H_max, W_max, 3) tensor on
    `device`; items smaller than `min_side` are dropped. Draws are weighted by each item's
    area times its length, so big photos and long clips give more crops."""

    def __init__(self, items: list[np.ndarray], *, device: torch.device, min_side: int, seed: int = 0):
        kept = []
        for it in items:
            if it.ndim == 3:
                it = it[None]
            if it.shape[1] > it.shape[2]:  # portrait: turn to landscape, so padding wastes less
                it = it.transpose(0, 2, 1, 3)
            if min(it.shape[1:3]) >= min_side:
                kept.append(it)
        if not kept:
            raise ValueError(f"no training item is at least {min_side}x{min_side}")
        t_max = max(it.shape[0] for it in kept)
        h_max = max(it.shape[1] for it in kept)
        w_max = max(it.shape[2] for it in kept)
        self.device = torch.device(device)
        self.min_side = min(min(it.shape[1:3]) for it in kept)
        self.data = torch.zeros((len(kept), t_max, h_max, w_max, 3), dtype=torch.uint8, device=self.device)
        for i, it in enumerate(kept):
            self.data[i, : it.shape[0], : it.shape[1], : it.shape[2]] = torch.from_numpy(np.require(it, requirements=["C", "W"]))
        self.sizes = torch.tensor([it.shape[:3] for it in kept], dtype=torch.long, device=self.device)  # (N, 3): T, H, W
        area = self.sizes.prod(dim=1).double()
        self.weights = (area / area.sum()).float()
        self.gen = _generator(self.device, seed)

    def __len__(self) -> int:
        return self.data.shape[0]

    def nbytes(self) -> int:
        return self.data.numel()

    def _uniform(self, n: int) -> torch.Tensor:
        return torch.rand(n, generator=self.gen, device=self.device)

    def crops(self, n: int, length: int, crop: int, *, flips: bool = True) -> torch.Tensor:
        """`n` runs of `length` consecutive frames, each cut at one random place (a clip shorter
        than the run holds its last frame), flipped at random: (n, length, 3, crop, crop) uint8."""
        idx = torch.multinomial(self.weights, n, replacement=True, generator=self.gen)
        t_len, h, w = self.sizes[idx].unbind(1)
        if crop > self.min_side:
            raise ValueError(f"crop {crop} is larger than the smallest item side {self.min_side}")
        t0 = (self._uniform(n) * (t_len - length + 1).clamp_min(1)).long()
        top = (self._uniform(n) * (h - crop + 1)).long()
        left = (self._uniform(n) * (w - crop + 1)).long()
        ar = torch.arange(crop, device=self.device)
        ramp = torch.arange(length, device=self.device)
        t = torch.minimum(t0[:, None] + ramp, t_len[:, None] - 1)
        if flips:
            flip_v, flip_h = self._uniform(n) < 0.5, self._uniform(n) < 0.5
            rows = top[:, None] + torch.where(flip_v[:, None], crop - 1 - ar, ar)
            cols = left[:, None] + torch.where(flip_h[:, None], crop - 1 - ar, ar)
        else:
            rows, cols = top[:, None] + ar, left[:, None] + ar
        out = self.data[idx[:, None, None, None], t[:, :, None, None], rows[:, None, :, None], cols[:, None, None, :]]
        return out.permute(0, 1, 4, 2, 3)


def load_photos(files: list[Path]) -> list[np.ndarray]:
    return [np.asarray(Image.open(f).convert("RGB")) for f in files]


def to_float(x: torch.Tensor, channels_last: bool = False) -> torch.Tensor:
    """uint8 pixels to floats in [0, 1] on their device."""
    y = x.float().div_(255.0)
    return y.contiguous(memory_format=torch.channels_last) if channels_last and y.ndim == 4 else y


class SyntheticMotion:
    """Frame pairs with known motion, drawn on the device from packed photos."""

    def __init__(self, photos: list[np.ndarray] | PackedFrames, *, crop: int, device: torch.device | str = "cpu",
                 seed: int = 0, max_shift: float = 12.0, max_zoom: float = 0.06, max_rotation_deg: float = 4.0):
        self.margin = int(math.ceil(max_shift + crop * (max_zoom + math.radians(max_rotation_deg)))) + 2
        self.crop, self.big = crop, crop + 2 * self.margin
        self.photos = (photos if isinstance(photos, PackedFrames)
                       else PackedFrames(photos, device=torch.device(device), min_side=self.big, seed=seed))
        if len(self.photos) < 2:
            raise ValueError(f"need photos of at least {self.big}x{self.big} pixels")
        self.device = self.photos.device
        self.max_shift, self.max_zoom, self.max_rot = max_shift, max_zoom, math.radians(max_rotation_deg)

    def _uniform(self, n: int, lo: float, hi: float) -> torch.Tensor:
        return lo + (hi - lo) * self.photos._uniform(n)

    def batch(self, n: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(cur, ref, flow): floats in [0, 1] and the exact flow that maps each pixel of `cur` to
        where it is in `ref` (backward warping `ref` by `flow` gives `cur`)."""
        c, m, big, dev = self.crop, self.margin, self.big, self.device
        bigs = to_float(self.photos.crops(n, 1, big)[:, 0])
        ys, xs = torch.meshgrid(torch.arange(c, dtype=torch.float32, device=dev),
                                torch.arange(c, dtype=torch.float32, device=dev), indexing="ij")
        ang = self._uniform(n, -self.max_rot, self.max_rot)[:, None, None]
        zoom = 1 + self._uniform(n, -self.max_zoom, self.max_zoom)[:, None, None]
        tx = self._uniform(n, -self.max_shift, self.max_shift)[:, None, None]
        ty = self._uniform(n, -self.max_shift, self.max_shift)[:, None, None]
        cx = (c - 1) / 2
        dx, dy = xs - cx, ys - cx
        px = zoom * (torch.cos(ang) * dx - torch.sin(ang) * dy) + cx + tx
        py = zoom * (torch.sin(ang) * dx + torch.cos(ang) * dy) + cx + ty
        flow = torch.stack([px - xs, py - ys], 1)
        grid = torch.stack([(px + m) / (big - 1) * 2 - 1, (py + m) / (big - 1) * 2 - 1], -1)
        cur = F.grid_sample(bigs, grid, mode="bilinear", padding_mode="border", align_corners=True)
        ref = bigs[:, :, m : m + c, m : m + c]
        # An object that moves on its own (in 60% of the pairs): an s x s patch of another photo
        # at (ry, rx) in the reference and at (cy, cx) in the current frame, moved by a whole shift.
        patch = to_float(self.photos.crops(n, 1, c)[:, 0])
        s = (c // 6 + self.photos._uniform(n) * (c // 2 - c // 6)).long()
        ry = (self.photos._uniform(n) * (c - s)).long()
        rx = (self.photos._uniform(n) * (c - s)).long()
        d = self._uniform(2 * n, -self.max_shift, self.max_shift).round().long()
        cy = torch.minimum(torch.clamp(ry + d[:n], min=0), c - s)
        cx_ = torch.minimum(torch.clamp(rx + d[n:], min=0), c - s)
        moving = self.photos._uniform(n) < 0.6
        ar = torch.arange(c, device=dev)

        def paste(frame: torch.Tensor, y0: torch.Tensor, x0: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            py_, px_ = ar[None] - y0[:, None], ar[None] - x0[:, None]  # (n, c): patch coordinates
            inside = (((py_ >= 0) & (py_ < s[:, None]))[:, :, None] & ((px_ >= 0) & (px_ < s[:, None]))[:, None, :]
                      & moving[:, None, None])
            src = patch[torch.arange(n, device=dev)[:, None, None], :, py_.clamp(0, c - 1)[:, :, None],
                        px_.clamp(0, c - 1)[:, None, :]].permute(0, 3, 1, 2)
            return torch.where(inside[:, None], src, frame), inside

        ref, _ = paste(ref, ry, rx)
        cur, inside = paste(cur, cy, cx_)
        box_flow = torch.stack([rx - cx_, ry - cy], 1).float()[:, :, None, None].expand_as(flow)
        flow = torch.where(inside[:, None], box_flow, flow)
        return cur.contiguous(), ref.contiguous(), flow.contiguous()


class ClipPairs:
    """Runs of consecutive frames of real clips (and frame folders such as Vimeo-90k
    septuplets), decoded once into device memory."""

    def __init__(self, roots: list[str | Path], *, crop: int, device: torch.device | str = "cpu", seed: int = 0,
                 max_frames: int = 120, max_side: int = 720):
        from tngvideo.train.video_data import read_clips

        frames = [np.stack(f) for f in read_clips(roots, max_frames=max_frames, max_side=max_side) if len(f) >= 2]
        if not frames:
            raise ValueError("no training clips found")
        self.packed = PackedFrames(frames, device=torch.device(device), min_side=crop, seed=seed)
        self.crop = crop

    def clips(self, n: int, length: int) -> list[torch.Tensor]:
        """`length` consecutive frames of `n` random crops: a list of (n, 3, crop, crop) floats in time order."""
        run = to_float(self.packed.crops(n, length, self.crop))
        return list(run.unbind(1))
