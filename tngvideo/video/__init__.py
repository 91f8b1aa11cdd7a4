"""Inter-frame coding: optical flow, motion coding, motion compensation, residual coding,
and the sequence-level VideoEncoder / VideoDecoder."""

from __future__ import annotations

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


@dataclass(frozen=True)
class EncoderOptions:
    """How hard the video encoder works: speed against bytes. Files decode the same whatever they are.

    `preset`: how hard each P-frame's mode is searched (a name of `PRESET_NAMES`, or a
    `tngvideo.video.codec.Preset`). `search_steps` > 0: an encoder-side gradient search of every
    I-frame's latents and every P-frame's motion. `adaptive_intra`: between GOP boundaries a frame
    is also coded intra, and sent as an I-frame where that costs less in rate-distortion terms;
    False codes I-frames only at GOP boundaries (a faster encode)."""
    preset: str | Preset = DEFAULT_PRESET
    search_steps: int = 0
    adaptive_intra: bool = True

    def __post_init__(self):
        if isinstance(self.preset, str) and self.preset not in PRESET_NAMES:
            raise ValueError(f"unknown preset {self.preset!r} (choose from {', '.join(PRESET_NAMES)})")
        if isinstance(self.search_steps, bool) or not isinstance(self.search_steps, int) or self.search_steps < 0:
            raise ValueError(f"search steps must be an integer >= 0, not {self.search_steps!r}")
