"""Training crops from a folder of photos, decoded once and kept in memory.

Decoding PNGs is the expensive part of loading; doing it once up front leaves both cores to
the model. Each batch is a set of random crops with random flips, drawn with a seeded
generator so runs are reproducible.
"""

from __future__ import annotations

import queue
import threading
from pathlib import Path

import numpy as np
import torch
from PIL import Image

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp", ".bmp", ".ppm"}


def list_images(roots: list[str | Path]) -> list[Path]:
    files: list[Path] = []
    for root in roots:
        root = Path(root)
        files += sorted(p for p in root.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
    return files


class CropSampler:
    def __init__(self, files: list[Path], *, crop: int, seed: int = 0):
        if not files:
            raise ValueError("no training images found")
        self.images = []
        for f in files:
            img = np.asarray(Image.open(f).convert("RGB"))
            if min(img.shape[:2]) >= crop:
                self.images.append(img)
        if not self.images:
            raise ValueError(f"no training image is at least {crop}x{crop}")
        self.crop = crop
        self.rng = np.random.default_rng(seed)
        # Sample images in proportion to their area, so big photos give more crops.
        area = np.array([im.shape[0] * im.shape[1] for im in self.images], dtype=np.float64)
        self.weights = area / area.sum()

    def batch_uint8(self, size: int) -> torch.Tensor:
        """`size` crops as uint8, (N, 3, crop, crop): a quarter of the bytes to move to a GPU."""
        c = self.crop
        out = np.empty((size, c, c, 3), dtype=np.uint8)
        for i, k in enumerate(self.rng.choice(len(self.images), size=size, p=self.weights)):
            img = self.images[k]
            top = self.rng.integers(0, img.shape[0] - c + 1)
            left = self.rng.integers(0, img.shape[1] - c + 1)
            patch = img[top : top + c, left : left + c]
            if self.rng.random() < 0.5:
                patch = patch[:, ::-1]
            if self.rng.random() < 0.5:
                patch = patch[::-1]
            out[i] = patch
        return torch.from_numpy(out).permute(0, 3, 1, 2)


class Prefetcher:
    """Draws the sampler's batches in a background thread, `depth` ahead, so a fast device never
    waits on crop sampling. The order of batches is the sampler's own (one producer)."""

    def __init__(self, sampler: CropSampler, size: int, *, depth: int = 4):
        self._queue: queue.Queue[torch.Tensor | BaseException] = queue.Queue(maxsize=depth)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(sampler, size), daemon=True)
        self._thread.start()

    def _run(self, sampler: CropSampler, size: int) -> None:
        while not self._stop.is_set():
            try:
                item: torch.Tensor | BaseException = sampler.batch_uint8(size)
            except BaseException as e:  # handed to the consumer, which raises it
                item = e
            while not self._stop.is_set():
                try:
                    self._queue.put(item, timeout=0.1)
                    break
                except queue.Full:
                    continue
            if isinstance(item, BaseException):
                return

    def next(self) -> torch.Tensor:
        item = self._queue.get()
        if isinstance(item, BaseException):
            raise item
        return item

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
