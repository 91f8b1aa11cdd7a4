"""Encoder-side motion search: spend encode time to find a coded flow that predicts better.

The motion coder codes the estimated flow as faithfully as its rate allows, but the flow that
is cheapest to code and predicts the frame best is not the estimate: what matters is the
frame's whole cost. Starting from the motion coder's own latents, a few gradient steps on the
P-frame's rate-distortion cost

    lambda * 255^2 * MSE(frame, prediction + decoded residual) + (motion bits + residual bits) / pixels

move the motion latent y and hyper-latent z, with the residual coded by its analysis transform
at each step (so the search sees what the residual will cost) and rounding relaxed by
stochastic Gumbel annealing as in the image search (`tngvideo.image.search`). The cost of the
rounded latents is measured at the start and at the end and the cheaper are returned. The
decoder is untouched.
"""

from __future__ import annotations

import torch

from tngvideo.image.model import HyperpriorAutoencoder
from tngvideo.image.search import SearchResult, anneal_latents, relaxed_latent
from tngvideo.video.model import RESIDUAL_OFFSET, MotionCompensation


def pframe_cost(motion: HyperpriorAutoencoder, residual: HyperpriorAutoencoder, mc: MotionCompensation,
                x: torch.Tensor, ref: torch.Tensor, y: torch.Tensor, z: torch.Tensor, motion_inv_gain: torch.Tensor,
                quality: torch.Tensor, lmbda: float, hw: tuple[int, int], *, tau: float | None = None,
                amp: bool = False) -> torch.Tensor:
    """RD cost per pixel of a P-frame whose motion is coded as (y, z) and whose residual is coded
    by the residual coder's analysis transform; tau None = rounded, else annealed at tau."""
    h, w = hw
    dev = x.device.type
    y_hat, bits = relaxed_latent(motion, y, z, tau=tau, amp=amp)
    with torch.autocast(dev, dtype=torch.bfloat16, enabled=amp):
        flow_hat = motion.g_s(y_hat * motion_inv_gain)
    pred = mc(ref, flow_hat.float())
    gain, inv_gain = residual.gains(quality)
    with torch.autocast(dev, dtype=torch.bfloat16, enabled=amp):
        yr = residual.g_a(x - pred + RESIDUAL_OFFSET).float() * gain
        zr = residual.h_a(yr)
    yr_hat, bits_r = relaxed_latent(residual, yr, zr.float(), tau=tau, amp=amp)
    with torch.autocast(dev, dtype=torch.bfloat16, enabled=amp):
        res_hat = residual.g_s(yr_hat * inv_gain)
    x_hat = pred + res_hat.float() - RESIDUAL_OFFSET
    mse = torch.mean((x_hat[..., :h, :w] - x[..., :h, :w]) ** 2)
    return lmbda * 255.0**2 * mse + (bits + bits_r) / (h * w)


def search_motion(motion: HyperpriorAutoencoder, residual: HyperpriorAutoencoder, mc: MotionCompensation,
                  x: torch.Tensor, ref: torch.Tensor, flow: torch.Tensor, motion_quality: float, quality: float, *,
                  steps: int, hw: tuple[int, int] | None = None, amp: bool = True, seed: int = 0) -> SearchResult:
    """Motion latents (gained y, z) for predicting x (1, 3, H, W, padded) from ref, starting from
    the motion coder's analysis of `flow`; hw = the real frame size (`anneal_latents` on
    `pframe_cost`)."""
    if steps < 1:
        raise ValueError("search steps must be >= 1")
    hw = hw or (int(x.shape[-2]), int(x.shape[-1]))
    q = torch.tensor([quality], device=x.device)
    lmbda = residual.lambda_at(quality)
    with torch.no_grad():
        gain, inv_gain = motion.gains(torch.tensor([motion_quality], device=x.device))
        y0 = motion.g_a(flow) * gain
        z0 = motion.h_a(y0)
    return anneal_latents(lambda y, z, tau: pframe_cost(motion, residual, mc, x, ref, y, z, inv_gain, q, lmbda, hw,
                                                        tau=tau, amp=amp and tau is not None),
                          y0, z0, (motion, residual, mc), steps=steps, seed=seed)
