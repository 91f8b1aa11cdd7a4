"""Encoder-side motion search: spend encode time to find a coded flow that predicts better.

The motion coder codes the estimated flow as faithfully as its rate allows, but the flow that
is cheapest to code and predicts the frame best is not the estimate: what matters is the
frame's whole cost. Starting from the motion coder's own latents, a few gradient steps on the
P-frame's rate-distortion cost

    lambda * 255^2 * MSE(frame, prediction + decoded residual) + (motion bits + residual bits) / pixels

move the motion latent y and hyper-latent z, with the residual coded by its analysis transform
at each step (so the search sees what the residual will cost) and rounding relaxed by
stochastic Gumbel annealing as in the latent search (`tngvideo.latent.search`). The cost of the
rounded latents is measured at the start and at the end and the cheaper are returned. The
decoder is untouched. A model's loop filter is left out of the cost (it corrects the frame after
prediction and residual; the search weighs the frame before it).
"""

from __future__ import annotations

import torch

from tngvideo.latent.model import HyperpriorAutoencoder
from tngvideo.latent.search import SearchResult, anneal_latents, rd_cost, relaxed_latent
from tngvideo.video.model import RESIDUAL_OFFSET, MotionCompensation


def pframe_cost(motion: HyperpriorAutoencoder, residual: HyperpriorAutoencoder, mc: MotionCompensation,
                x: torch.Tensor, ref: torch.Tensor, y: torch.Tensor, z: torch.Tensor, motion_inv_gain: torch.Tensor,
                residual_gains: tuple[torch.Tensor, torch.Tensor], lmbda: float, hw: tuple[int, int], *,
                tau: float | None = None, amp: bool = False) -> torch.Tensor:
    """RD cost per pixel of a P-frame whose motion is coded as (y, z) and whose residual is coded
    by the residual coder's analysis transform; tau None = rounded, else annealed at tau. The
    residual's error is the frame's error, so the residual part is the image search's `rd_cost`."""
    h, w = hw
    y_hat, bits = relaxed_latent(motion, y, z, tau=tau, amp=amp)
    with torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=amp):
        flow_hat = motion.g_s(y_hat * motion_inv_gain)
    target = x - mc(ref, flow_hat.float()) + RESIDUAL_OFFSET
    gain, inv_gain = residual_gains
    with torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=amp):
        yr = residual.g_a(target).float() * gain
        zr = residual.h_a(yr).float()
    return bits / (h * w) + rd_cost(residual, target, yr, zr, inv_gain, lmbda, hw, tau=tau, amp=amp)


def search_motion(motion: HyperpriorAutoencoder, residual: HyperpriorAutoencoder, mc: MotionCompensation,
                  x: torch.Tensor, ref: torch.Tensor, flow: torch.Tensor, motion_quality: float, quality: float, *,
                  steps: int, hw: tuple[int, int] | None = None, amp: bool = True, seed: int = 0) -> SearchResult:
    """Motion latents (gained y, z) for predicting x (1, 3, H, W, padded) from ref, starting from
    the motion coder's analysis of `flow`; hw = the real frame size (`anneal_latents` on
    `pframe_cost`)."""
    hw = hw or (int(x.shape[-2]), int(x.shape[-1]))
    lmbda = residual.lambda_at(quality)
    with torch.no_grad():
        gain, inv_gain = motion.gains(torch.tensor([motion_quality], device=x.device))
        y0 = motion.g_a(flow) * gain
        z0 = motion.h_a(y0)
        residual_gains = residual.gains(torch.tensor([quality], device=x.device))
    return anneal_latents(lambda y, z, tau: pframe_cost(motion, residual, mc, x, ref, y, z, inv_gain, residual_gains,
                                                        lmbda, hw, tau=tau, amp=amp and tau is not None),
                          y0, z0, (motion, residual, mc), steps=steps, seed=seed)
