"""Shipped models by name. Weights live inside the package and load with no network."""

from __future__ import annotations

from pathlib import Path

WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"
DEFAULT_MODEL = "tng-image-11"


def available_models() -> list[str]:
    return sorted(p.stem for p in WEIGHTS_DIR.glob("*.safetensors"))


def weights_path(name: str = DEFAULT_MODEL) -> Path:
    path = WEIGHTS_DIR / f"{name}.safetensors"
    if not path.exists():
        known = ", ".join(available_models()) or "none"
        raise FileNotFoundError(f"unknown model '{name}' (shipped: {known})")
    return path
