"""Inter-frame coding: optical flow, motion coding, motion compensation, residual coding,
and the sequence-level VideoEncoder / VideoDecoder."""

# Intra period, by measurement (tools/bench_gop.py, results/gop.json: tng-video-1 at 6,242 steps, dev clips, 32
# frames): against GOP 8, GOP 16 saves 3.5% / 5.5% of the bits at equal PSNR and GOP 32 2.8% / 6.2%
# (bikes / gymbasketball). 16 and 32 tie on average; 16 seeks twice as fast and recovers sooner.
# Kept here, free of imports, so that the command line can show it without loading torch.
DEFAULT_GOP = 16
