"""Shipped video models by name.

`tng-video-0` codes P-frames without motion: the prediction is the previous decoded frame and
the residual goes through the intra codec's transforms and entropy model (shared weights,
nothing extra to ship). Trained P-frame models (flow, motion coding, compensation, residual
coding) ship as `video/weights/<name>.safetensors` and register themselves by file.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from tngvideo.image.codec import ImageCodec
from tngvideo.image.registry import DEFAULT_MODEL as DEFAULT_IMAGE_MODEL
from tngvideo.image.registry import UnknownModelError, shown_name
from tngvideo.video.codec import PFrameCoder
from tngvideo.video.weights import load_video_weights

WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"
BASELINE_MODEL = "tng-video-0"


def _version_key(name: str) -> tuple:
    """Sort key that orders tng-video-2 before tng-video-10."""
    return tuple(int(t) if t.isdigit() else t for t in re.split(r"(\d+)", name))


def available_video_models() -> list[str]:
    return sorted([BASELINE_MODEL, *(p.stem for p in WEIGHTS_DIR.glob("*.safetensors"))], key=_version_key)


def default_video_model() -> str:
    """The newest trained model, or the motion-free baseline."""
    return available_video_models()[-1]


@dataclass(frozen=True)
class VideoCodecs:
    name: str
    image: ImageCodec
    pframes: PFrameCoder
    weights_hash: str = ""

    def model_ids(self) -> dict[str, str]:
        video = f"{self.name}:{self.weights_hash}" if self.weights_hash else self.name
        return {"video": video, "image": f"{self.image.name}:{self.image.weights_hash.hex()}"}


def load_video_codecs(name: str | None = None, *, device: str = "cpu") -> VideoCodecs:
    """The codecs of a registered video model (default: the newest). Any other name, a file
    header's included, is refused with `UnknownModelError` before anything is opened."""
    name = name or default_video_model()
    if not isinstance(name, str) or name not in available_video_models():
        raise UnknownModelError(f"unknown video model {shown_name(name)} "
                                f"(shipped: {', '.join(available_video_models())})")
    image = ImageCodec.from_name(DEFAULT_IMAGE_MODEL, device=device)
    if name == BASELINE_MODEL:
        return VideoCodecs(name=name, image=image, pframes=PFrameCoder(residual=image.latents))
    return video_codecs_from_file(WEIGHTS_DIR / f"{name}.safetensors", image, name=name, device=device)


def video_codecs_from_file(path: str | Path, image: ImageCodec, *, name: str | None = None,
                           device: str = "cpu") -> VideoCodecs:
    """The codecs of a P-frame weights file (a shipped model's or a training run's) with `image` for I-frames."""
    loaded = load_video_weights(path, device=device)
    pframes = PFrameCoder.for_model(loaded.model, loaded.tables)
    return VideoCodecs(name=name or Path(path).stem, image=image, pframes=pframes,
                       weights_hash=loaded.weights_hash.hex())
