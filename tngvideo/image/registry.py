"""Shipped models by name. Weights live inside the package and load with no network."""

from __future__ import annotations

from pathlib import Path

WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"
DEFAULT_MODEL = "tng-image-12"


class UnknownModelError(FileNotFoundError):
    """A model name that is not one of the registered (shipped) models."""


def available_models() -> list[str]:
    return sorted(p.stem for p in WEIGHTS_DIR.glob("*.safetensors"))


def shown_name(name: object) -> str:
    """A model name as messages quote it: a file header may hold anything, so shortened and escaped."""
    text = name if isinstance(name, str) else repr(name)
    return repr(text[:64] + ("..." if len(text) > 64 else ""))


def weights_path(name: str = DEFAULT_MODEL) -> Path:
    """The weights of a registered model. Only names of shipped models are accepted: a name never
    becomes part of a path (a file header may hold `../../elsewhere/x`)."""
    if not isinstance(name, str) or name not in available_models():
        known = ", ".join(available_models()) or "none"
        raise UnknownModelError(f"unknown model {shown_name(name)} (shipped: {known})")
    return WEIGHTS_DIR / f"{name}.safetensors"
