"""The TNG image (intra) model: RGB through the shared hyperprior autoencoder
(`tngvideo.latent.model.HyperpriorAutoencoder`: transforms, mean-scale hyperprior, gain vectors,
and the exactness rules of its scale branch and context models)."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from tngvideo.latent.model import HyperpriorAutoencoder, ModelConfig


@dataclass
class ForwardResult:
    """What a training forward pass returns (per image in the batch)."""

    x_hat: torch.Tensor  # (B, 3, H, W) reconstruction
    bits_latent: torch.Tensor  # (B,) estimated bits of y
    bits_hyper: torch.Tensor  # (B,) estimated bits of z
    lmbda: torch.Tensor  # (B,) rate-distortion trade-off for each image's quality

    def bpp(self, pixels: int) -> torch.Tensor:
        return (self.bits_latent + self.bits_hyper) / pixels


class TNGImageModel(HyperpriorAutoencoder):
    """The intra (image) codec."""

    def __init__(self, config: ModelConfig = ModelConfig()):
        super().__init__(config, in_channels=3, out_channels=3)

    def forward(self, x: torch.Tensor, quality: torch.Tensor, *, amp: bool = False, quantization: str = "mixed"
                ) -> ForwardResult:
        x_hat, bits_y, bits_z = self.code(x, quality, amp=amp, quantization=quantization)
        return ForwardResult(x_hat=x_hat, bits_latent=bits_y, bits_hyper=bits_z, lmbda=self.lmbda(quality))
