"""Listing training photos (the crops are drawn on the device: `tngvideo.train.device_data`)."""

from __future__ import annotations

from pathlib import Path

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp", ".bmp", ".ppm"}


def list_images(roots: list[str | Path]) -> list[Path]:
    files: list[Path] = []
    for root in roots:
        root = Path(root)
        files += sorted(p for p in root.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
    return files
