"""tngvideo: a learned image and video codec.

The public API (`tngvideo.encode_file`, `decode_file`, `segment`, `analyze`, `describe`, ...) is
imported on first use, so `import tngvideo` stays light (no torch, no FFmpeg)."""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

# name -> the module under tngvideo that defines it
_API = {
    "encode_file": "api.video", "decode_file": "api.video", "segment": "api.video", "analyze": "api.video",
    "encode_batch": "api.video", "describe": "api.describe", "VideoFileInfo": "api.describe",
    "ImageFileInfo": "api.describe", "FrameInfo": "api.describe", "encode_image": "api.image",
    "decode_image": "api.image", "ImageEncodeResult": "api.image", "ImageDecodeResult": "api.image",
    "EncoderOptions": "video", "EncodeSummary": "videofile", "DecodeResult": "videofile",
    "DecodeReport": "videofile", "Analysis": "analysis.video_report", "LadderResult": "streaming.segmenter",
    "UsageError": "errors", "InputNotFoundError": "errors", "OutputError": "errors", "BadInputError": "errors",
    "DecodeError": "errors", "MediaError": "errors", "keep_freed_memory": "heap",
}

__all__ = ["__version__", *_API]


def __getattr__(name: str):
    if name not in _API:
        raise AttributeError(f"module 'tngvideo' has no attribute {name!r}")
    return getattr(importlib.import_module(f"tngvideo.{_API[name]}"), name)


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_API))
