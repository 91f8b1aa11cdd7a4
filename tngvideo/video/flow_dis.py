"""Optical flow by OpenCV's DIS (dense inverse search, Kroeger et al., ECCV 2016).

An encoder-side alternative to the learned `FlowNet`: flow estimation never runs in the
decoder (it receives the coded flow), so the estimator is the encoder's choice. On the first
frames of the dev clips DIS flow (uncoded) warps the reference to 43 dB (bikes) and 31 dB
(gymbasketball) where tng-video-5's FlowNet reaches 34 and 27 dB, in a few milliseconds; its
detail costs more motion bits, so a motion coder has to be trained for it
(`tools/train_video.py --stage motion --flow-estimator dis`).
"""

from __future__ import annotations

import numpy as np
import torch


def _gray(x: torch.Tensor) -> np.ndarray:
    """(3, H, W) float in [0, 1] -> (H, W) uint8 luma."""
    import cv2  # here, not at import: the codec module that imports this one also decodes, without OpenCV

    rgb = (x.detach().float().clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 2, 0).cpu().numpy()
    return cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2GRAY)


@torch.no_grad()
def dis_flow(x: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
    """Backward flow (B, 2, H, W) in pixels from frames x to references ref, both (B, 3, H, W):
    `backward_warp(ref, flow)` approximates x."""
    import cv2

    dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
    flows = [torch.from_numpy(dis.calc(_gray(a), _gray(b), None)).permute(2, 0, 1) for a, b in zip(x, ref)]
    return torch.stack(flows).to(device=x.device, dtype=torch.float32)
