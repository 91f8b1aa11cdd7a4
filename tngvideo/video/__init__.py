"""Inter-frame coding: optical flow, motion coding, motion compensation, residual coding,
and the sequence-level VideoEncoder / VideoDecoder."""

# Intra period, by measurement (tools/bench_gop.py, results/gop.json: tng-video-3, dev clips, 32 frames):
# against GOP 16, GOP 8 costs -0.2% / +3.3% of the bits at equal PSNR and GOP 32 +0.7% / -0.1%
# (bikes / gymbasketball). 16 and 32 tie; 16 seeks twice as fast and recovers sooner.
# Kept here, free of imports, so that the command line can show it without loading torch.
DEFAULT_GOP = 16
# The encoder presets' names (tngvideo.video.codec.PRESETS says what each does), here for the same reason.
PRESET_NAMES = ("fast", "medium", "slow")
DEFAULT_PRESET = "medium"
