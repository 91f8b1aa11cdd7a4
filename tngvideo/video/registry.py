"""Shipped video models by name.

`tng-video-0` codes P-frames without motion: the prediction is the previous decoded frame and
the residual goes through the intra codec's transforms and entropy model (shared weights,
nothing extra to ship). Trained motion models will register here beside it.
"""

from __future__ import annotations

from dataclasses import dataclass

from tngvideo.image.codec import ImageCodec
from tngvideo.image.registry import DEFAULT_MODEL as DEFAULT_IMAGE_MODEL
from tngvideo.video.codec import PFrameCoder

DEFAULT_VIDEO_MODEL = "tng-video-0"
VIDEO_MODELS = {DEFAULT_VIDEO_MODEL: DEFAULT_IMAGE_MODEL}  # video model -> its intra model


@dataclass(frozen=True)
class VideoCodecs:
    name: str
    image: ImageCodec
    pframes: PFrameCoder

    def model_ids(self) -> dict[str, str]:
        return {"video": self.name, "image": f"{self.image.name}:{self.image.weights_hash.hex()}"}


def load_video_codecs(name: str = DEFAULT_VIDEO_MODEL, *, device: str = "cpu") -> VideoCodecs:
    if name not in VIDEO_MODELS:
        raise FileNotFoundError(f"unknown video model '{name}' (shipped: {', '.join(sorted(VIDEO_MODELS))})")
    image = ImageCodec.from_name(VIDEO_MODELS[name], device=device)
    return VideoCodecs(name=name, image=image, pframes=PFrameCoder(residual=image.latents))
