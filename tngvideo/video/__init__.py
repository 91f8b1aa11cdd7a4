"""Inter-frame coding: optical flow, motion coding, motion compensation, residual coding,
the frame-by-frame VideoEncoder / VideoDecoder (GOP, reference buffer) and, over them, the
sequence API (`tngvideo.video.sequence`: SequenceEncoder / SequenceDecoder, header plus packets)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tngvideo.video.codec import Preset

# Intra period, by measurement (tools/bench_gop.py, results/gop.json: tng-video-3, dev clips, 32 frames):
# against GOP 16, GOP 8 costs -0.2% / +3.3% of the bits at equal PSNR and GOP 32 +0.7% / -0.1%
# (bikes / gymbasketball). 16 and 32 tie; 16 seeks twice as fast and recovers sooner.
# Kept here, free of imports, so that the command line can show it without loading torch.
DEFAULT_GOP = 16
# The encoder presets' names (tngvideo.video.codec.PRESETS says what each does), here for the same reason.
PRESET_NAMES = ("fast", "medium", "slow")
DEFAULT_PRESET = "medium"
# The quality cascade across a GOP and the motion estimators a P-frame tries (EncoderOptions).
DEFAULT_INTRA_OFFSET = 0.0
DEFAULT_P_OFFSETS: tuple[float, ...] = (0.0,)
MOTION_ESTIMATORS = ("net", "dis")
# The flow net alone. DIS beside it measured BD-rate -1.55% on the centre 320x192 of four clips (16 frames,
# results/encoder_ab.json) but -0.3 / +0.4 points (bikes / gymbasketball, vs x264 low-delay) on the whole dev
# clips (32 frames, results/video_controls/tng-video-9-dis-default.json against results/video_dev.json), for
# 1.15-1.17x the encode time: not a default.
DEFAULT_MOTION_ESTIMATORS: tuple[str, ...] = ("net",)


@dataclass(frozen=True)
class EncoderOptions:
    """How hard the video encoder works: speed against bytes. Files decode the same whatever they are.

    `preset`: how hard each P-frame's mode is searched (a name of `PRESET_NAMES`, or a
    `tngvideo.video.codec.Preset`). `search_steps` > 0: an encoder-side gradient search of every
    I-frame's latents and every P-frame's motion. `adaptive_intra`: between GOP boundaries a frame
    is also coded intra, and sent as an I-frame where that costs less in rate-distortion terms;
    False codes I-frames only at GOP boundaries (a faster encode).

    The quality cascade (`intra_offset`, `p_offsets`) spends bits where later frames profit: an
    I-frame is coded at the sequence's quality + `intra_offset`, and the k-th P-frame after it
    (k = 1, 2, ...) at quality + `p_offsets[(k - 1) % len(p_offsets)]`, all held to the model's
    range. Each packet carries its own quality, so decoders need nothing new.
    `motion_estimators`: the flow estimators whose motion each P-frame tries ("net": the model's
    flow network, "dis": OpenCV DIS), the cheapest in rate-distortion terms kept."""
    preset: str | Preset = DEFAULT_PRESET
    search_steps: int = 0
    adaptive_intra: bool = True
    intra_offset: float = DEFAULT_INTRA_OFFSET
    p_offsets: tuple[float, ...] = DEFAULT_P_OFFSETS
    motion_estimators: tuple[str, ...] = DEFAULT_MOTION_ESTIMATORS

    def __post_init__(self):
        if isinstance(self.preset, str) and self.preset not in PRESET_NAMES:
            raise ValueError(f"unknown preset {self.preset!r} (choose from {', '.join(PRESET_NAMES)})")
        if isinstance(self.search_steps, bool) or not isinstance(self.search_steps, int) or self.search_steps < 0:
            raise ValueError(f"search steps must be an integer >= 0, not {self.search_steps!r}")
        offsets = (self.intra_offset, *self.p_offsets)
        if not all(isinstance(d, (int, float)) and not isinstance(d, bool) and math.isfinite(d) and abs(d) <= 8
                   for d in offsets):
            raise ValueError(f"quality offsets must be numbers in [-8, 8], not {offsets!r}")
        if not self.p_offsets:
            raise ValueError("the P-frame cascade needs at least one offset")
        if not self.motion_estimators or set(self.motion_estimators) - set(MOTION_ESTIMATORS):
            raise ValueError(f"motion estimators must be some of {', '.join(MOTION_ESTIMATORS)}, "
                             f"not {self.motion_estimators!r}")
