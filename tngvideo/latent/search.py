"""Encoder-side latent search: spend encode time to find cheaper latents for the same decoder.

The analysis transform is one amortized guess at the best latent. Starting from it, a few
gradient steps on this image's own rate-distortion cost, lambda * 255^2 * MSE + bits per pixel
(the training loss, measured on the image's real pixels only, not the padding), move the latent
y and the hyper-latent z to values that code to fewer bits or decode closer to the image
(Campos et al., CVPRW 2019; Yang et al., "Improving inference for neural image compression",
NeurIPS 2020). Rounding is relaxed by stochastic Gumbel annealing (`annealed_round`): with
straight-through rounding the search drifts and the coded cost rises. The cost of the rounded
latents is measured at the start and at the end, and the cheaper pair is returned, so the search
never makes an image cost more under the model.

The decoder is untouched: the bitstream and decode time stay the same, and any decoder reads
the result. Each step costs about one synthesis forward and backward pass at encode time.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterable

import torch
from torch import nn

from tngvideo.entropy import annealed_round, bits_from_likelihood
from tngvideo.latent.codec import LatentCodec, LatentStreams
from tngvideo.latent.model import LatentCondition, HyperpriorAutoencoder

LR_LATENT = 0.03  # Adam step on y, in quantization steps
LR_HYPER = 0.003  # on z: its rounding picks whole probability tables, so it moves slowly
TAU_START, TAU_END = 0.5, 0.3  # annealing temperature, geometric over the steps


@dataclass(frozen=True)
class SearchResult:
    y: torch.Tensor  # gained latent to code, (1, M, h, w)
    z: torch.Tensor  # hyper-latent to round and code, (1, N, h/4, w/4)
    start_cost: float  # RD cost per pixel of the analysis transform's latents
    cost: float  # RD cost per pixel of the returned latents (<= start_cost)


def rd_cost(model: HyperpriorAutoencoder, x: torch.Tensor, y: torch.Tensor, z: torch.Tensor,
            inv_gain: torch.Tensor, lmbda: float, hw: tuple[int, int], *, tau: float | None = None,
            amp: bool = False) -> torch.Tensor:
    """lambda * 255^2 * MSE + bpp of coding (y, z) over x[..., :h, :w].

    tau None: the rounded latents (what would be coded); otherwise annealed rounding at tau."""
    h, w = hw
    dev = x.device.type

    y_hat, bits = relaxed_latent(model, y, z, tau=tau, amp=amp)
    with torch.autocast(dev, dtype=torch.bfloat16, enabled=amp):
        x_hat = model.g_s(y_hat * inv_gain)
    mse = torch.mean((x_hat.float()[..., :h, :w] - x[..., :h, :w]) ** 2)
    return lmbda * 255.0**2 * mse + bits / (h * w)


def relaxed_latent(model: HyperpriorAutoencoder, y: torch.Tensor, z: torch.Tensor, *, tau: float | None = None,
                   amp: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """(y_hat, bits of y and z) for coding the gained latent y with hyper-latent z: rounded
    (tau None, what would be coded) or annealed-rounded at tau (differentiable)."""

    def rnd(v: torch.Tensor) -> torch.Tensor:
        return torch.round(v) if tau is None else annealed_round(v, tau)

    z_hat = rnd(z)
    mean, log_scale = model.latent_params(y, z_hat, rnd, amp=amp)
    y_hat = rnd(y - mean) + mean
    bits = bits_from_likelihood(model.gaussian.likelihood(y_hat, mean, torch.exp(log_scale)), per_sample=False)
    bits = bits + bits_from_likelihood(model.hyper_density.likelihood(z_hat), per_sample=False)
    return y_hat, bits


CostFn = Callable[[torch.Tensor, torch.Tensor, "float | None"], torch.Tensor]


def anneal_latents(cost: CostFn, y0: torch.Tensor, z0: torch.Tensor, modules: Iterable[nn.Module], *, steps: int,
                   seed: int = 0) -> SearchResult:
    """Adam steps on cost(y, z, tau) from (y0, z0), the modules frozen, tau annealed from
    TAU_START to TAU_END; the rounded cost cost(y, z, None) is measured at the start and at the
    end and the cheaper pair is returned. Deterministic for a given seed on a given machine (the
    annealing draws Gumbel noise); the decoder never needs to repeat it."""
    if steps < 1:
        raise ValueError("search steps must be >= 1")
    with torch.no_grad():
        start = float(cost(y0, z0, None))
    y = y0.clone().requires_grad_(True)
    z = z0.clone().requires_grad_(True)
    opt = torch.optim.Adam([{"params": [y], "lr": LR_LATENT}, {"params": [z], "lr": LR_HYPER}])
    params = [p for m in modules for p in m.parameters()]
    frozen = [p.requires_grad for p in params]
    for p in params:
        p.requires_grad_(False)
    cuda = [y0.device] if y0.device.type == "cuda" else []
    try:
        with torch.enable_grad(), torch.random.fork_rng(devices=cuda):
            torch.manual_seed(seed)
            for step in range(steps):
                tau = TAU_START * (TAU_END / TAU_START) ** (step / max(1, steps - 1))
                loss = cost(y, z, tau)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
    finally:
        for p, g in zip(params, frozen):
            p.requires_grad_(g)
    with torch.no_grad():
        end = float(cost(y, z, None))
    if end < start:
        return SearchResult(y=y.detach(), z=z.detach(), start_cost=start, cost=end)
    return SearchResult(y=y0, z=z0, start_cost=start, cost=start)


def search_latents(model: HyperpriorAutoencoder, x: torch.Tensor, quality: float, *, steps: int,
                   hw: tuple[int, int] | None = None, amp: bool = True, seed: int = 0) -> SearchResult:
    """Latents for x (1, C, H, W), padded to the model's multiple; hw = the real image size
    (`anneal_latents` on `rd_cost`, from the analysis transform's latents)."""
    hw = hw or (int(x.shape[-2]), int(x.shape[-1]))
    lmbda = model.lambda_at(quality)
    with torch.no_grad():
        gain, inv_gain = model.gains(torch.tensor([quality], device=x.device))
        y0 = model.g_a(x) * gain
        z0 = model.h_a(y0)
    return anneal_latents(lambda y, z, tau: rd_cost(model, x, y, z, inv_gain, lmbda, hw, tau=tau,
                                                    amp=amp and tau is not None),
                          y0, z0, [model], steps=steps, seed=seed)


@torch.no_grad()
def encode_latents(codec: LatentCodec, model: HyperpriorAutoencoder, x: torch.Tensor, quality: float, *,
                   search_steps: int = 0, hw: tuple[int, int] | None = None,
                   condition: LatentCondition | None = None, exact: bool = True) -> tuple[LatentStreams, torch.Tensor]:
    """Analysis of x (with search_steps > 0, then a latent search) and entropy coding: streams
    and the decoded latent y_hat (gained; `codec.synthesize` makes the picture of it)."""
    if search_steps < 0:
        raise ValueError(f"search steps must be >= 0, not {search_steps}")
    gain, _ = model.gains(torch.tensor([quality], device=x.device))
    if search_steps > 0:
        if condition is not None:
            raise ValueError("the latent search does not take a condition")
        found = search_latents(model, x, quality, steps=search_steps, hw=hw)
        return codec.encode(found.y, found.z, exact=exact)
    if condition is None:
        return codec.encode(model.g_a(x) * gain, exact=exact)
    return codec.encode(model.analysis(x, condition) * gain, mean_offset=codec.mean_offset(condition, quality, exact=exact),
                        exact=exact)
