"""The P-frame model: flow estimation, motion coding, motion compensation, residual coding.

    flow = FlowNet(x, ref)                                  (encoder side only)
    flow_hat = motion coder(flow)                           (hyperprior autoencoder, 2 channels)
    pred = MotionCompensation(ref, flow_hat)                (backward warp + refinement CNN)
    res_hat = residual coder(x - pred + 0.5) - 0.5          (hyperprior autoencoder, 3 channels)
    x_hat = pred + res_hat

Both coders carry their own gain vectors over the same quality levels as the image codec, so
one quality value steers every component. The residual coder has the image codec's shape and
starts from its weights (the +0.5 offset makes a residual look like a grey picture); the last
layers of the flow and compensation networks start at zero, so an untrained model predicts
"no motion" and codes the frame difference.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
import torch.nn.functional as F

from tngvideo.image.model import HyperpriorAutoencoder, ModelConfig
from tngvideo.video.warp import backward_warp

RESIDUAL_OFFSET = 0.5


def _zero_last(net: nn.Sequential) -> nn.Sequential:
    last = [m for m in net if isinstance(m, nn.Conv2d)][-1]
    nn.init.zeros_(last.weight)
    nn.init.zeros_(last.bias)
    return net


class FlowNet(nn.Module):
    """A small SpyNet-style pyramid: coarse-to-fine residual flow over `levels` scales.

    Estimates the flow that maps the current frame onto the reference (backward warping),
    finishing at half resolution and upsampling.
    """

    def __init__(self, *, levels: int = 4, width: int = 32):
        super().__init__()
        self.levels = levels
        self.nets = nn.ModuleList(
            _zero_last(nn.Sequential(
                nn.Conv2d(8, width, 5, padding=2), nn.ReLU(inplace=True),
                nn.Conv2d(width, 2 * width, 5, padding=2), nn.ReLU(inplace=True),
                nn.Conv2d(2 * width, width, 5, padding=2), nn.ReLU(inplace=True),
                nn.Conv2d(width, 2, 5, padding=2),
            ))
            for _ in range(levels)
        )

    def forward(self, x: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
        xs, rs = [F.avg_pool2d(x, 2)], [F.avg_pool2d(ref, 2)]
        for _ in range(self.levels - 1):
            xs.append(F.avg_pool2d(xs[-1], 2))
            rs.append(F.avg_pool2d(rs[-1], 2))
        flow = torch.zeros_like(xs[-1][:, :2])
        for level in reversed(range(self.levels)):
            if flow.shape[-2:] != xs[level].shape[-2:]:
                flow = 2.0 * F.interpolate(flow, size=xs[level].shape[-2:], mode="bilinear", align_corners=False)
            warped = backward_warp(rs[level], flow)
            flow = flow + self.nets[level](torch.cat([xs[level], warped, flow], dim=1))
        return 2.0 * F.interpolate(flow, size=x.shape[-2:], mode="bilinear", align_corners=False)


class MotionCompensation(nn.Module):
    """Warp the reference with the decoded flow, then refine (a residual CNN at half resolution)."""

    def __init__(self, *, width: int = 48):
        super().__init__()
        self.head = nn.Sequential(nn.Conv2d(8, width, 3, padding=1), nn.LeakyReLU(inplace=True),
                                  nn.Conv2d(width, width, 3, stride=2, padding=1), nn.LeakyReLU(inplace=True))
        self.body = nn.Sequential(nn.Conv2d(width, width, 3, padding=1), nn.LeakyReLU(inplace=True),
                                  nn.Conv2d(width, width, 3, padding=1), nn.LeakyReLU(inplace=True))
        self.tail = _zero_last(nn.Sequential(
            nn.ConvTranspose2d(width, width, 4, stride=2, padding=1), nn.LeakyReLU(inplace=True),
            nn.Conv2d(width, 3, 3, padding=1),
        ))

    def forward(self, ref: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
        warped = backward_warp(ref, flow)
        h = self.head(torch.cat([warped, ref, flow], dim=1))
        return warped + self.tail(h + self.body(h))


@dataclass(frozen=True)
class VideoModelConfig:
    motion: ModelConfig = ModelConfig(channels=64, latent_channels=96)
    residual: ModelConfig = ModelConfig()


@dataclass
class PFrameResult:
    x_hat: torch.Tensor
    prediction: torch.Tensor
    bits_motion: torch.Tensor  # (B,)
    bits_residual: torch.Tensor  # (B,)
    lmbda: torch.Tensor  # (B,)


class PFrameModel(nn.Module):
    def __init__(self, config: VideoModelConfig = VideoModelConfig()):
        super().__init__()
        self.config = config
        self.flow = FlowNet()
        self.motion = HyperpriorAutoencoder(config.motion, in_channels=2, out_channels=2)
        self.mc = MotionCompensation()
        self.residual = HyperpriorAutoencoder(config.residual, in_channels=3, out_channels=3)

    def forward(self, x: torch.Tensor, ref: torch.Tensor, quality: torch.Tensor, *, amp: bool = False) -> PFrameResult:
        """Training pass for one P-frame predicted from `ref` (the previous decoded frame)."""
        flow = self.flow(x, ref)
        flow_hat, my, mz = self.motion.code(flow, quality, amp=amp)
        pred = self.mc(ref, flow_hat)
        res_hat, ry, rz = self.residual.code(x - pred + RESIDUAL_OFFSET, quality, amp=amp)
        x_hat = pred + res_hat - RESIDUAL_OFFSET
        return PFrameResult(x_hat=x_hat, prediction=pred, bits_motion=my + mz, bits_residual=ry + rz,
                            lmbda=self.residual.lmbda(quality))
