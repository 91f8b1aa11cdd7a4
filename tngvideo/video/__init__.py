"""Inter-frame coding: optical flow, motion coding, motion compensation, residual coding,
and the sequence-level VideoEncoder / VideoDecoder."""
