"""Fit the entropy model of a trained image model with its transforms frozen.

The latent y = g_a(x) of a photo does not depend on the quality (the gain is applied after
g_a), so the analysis runs once per photo and orientation, and training then works on crops
of those latents: each step costs the hyperprior (and context model), not the transforms,
which makes it dozens of times cheaper than a full step. The loss is the rate alone: with
g_a, g_s and the gains fixed, the reconstruction error is the rounding error of y, whose
size does not depend on the entropy model's means, so lowering the bits is all there is.

Used to fit a new context model (`ModelConfig.context`) onto trained transforms, and to
refit the hyperprior of any trained model. The same holds for the P-frame model's motion and
residual coders, whose latents depend on the quality (through the decoded references): those
are captured at known qualities (`tngvideo.train.video_latents`) and each crop is trained at
the quality its latent was coded at.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import torch
from PIL import Image
from tqdm import tqdm

from tngvideo.image.model import TNGImageModel
from tngvideo.latent.model import HyperpriorCoder
from tngvideo.train.loop import schedule_factor

# The parameters that change the rate but not the reconstruction.
ENTROPY_PARTS = ("h_a", "h_s", "h_m", "hyper_density", "ctx_s", "ctx_m", "chan_s", "chan_m")
NEW_PARTS = ("ctx_s", "ctx_m", "chan_s", "chan_m")


@dataclass
class EntropyFitConfig:
    data: list[str] = field(default_factory=lambda: ["../shared/data/images/train"])
    orientations: int = 4  # 1..8 of the dihedral group (flips and transposes) per photo
    crop: int = 16  # latent crop (16 = 256 pixels); a multiple of 4
    batch: int = 16
    lr: float = 5e-5  # trained parts (hyperprior); 0 freezes them
    new_lr: float = 5e-4  # parts added to a trained model (the context model)
    warmup_steps: int = 200
    min_lr_fraction: float = 0.05
    grad_clip: float = 1.0
    amp: bool = True
    seed: int = 0


@dataclass
class FitResult:
    steps: int
    crops_seen: int
    wall_seconds: float
    log: list[dict]


def _orient(x: torch.Tensor, k: int) -> torch.Tensor:
    """k-th element of the dihedral group of the image square, k in 0..7."""
    if k & 4:
        x = x.transpose(-1, -2)
    if k & 1:
        x = x.flip(-1)
    if k & 2:
        x = x.flip(-2)
    return x


@torch.no_grad()
def image_latents(model: TNGImageModel, paths: list, *, orientations: int = 1, progress: bool = True
                  ) -> list[torch.Tensor]:
    """g_a of each image (cropped to a multiple of 16) in each orientation: (M, h/16, w/16) each."""
    model.eval()
    out = []
    for p in tqdm(paths, desc="latents", unit="image", disable=not progress, mininterval=5):
        x = torch.from_numpy(np.array(Image.open(p).convert("RGB"))).permute(2, 0, 1)[None].float() / 255.0
        h, w = x.shape[-2] // 16 * 16, x.shape[-1] // 16 * 16
        if h < 64 or w < 64:
            continue
        for k in range(orientations):
            out.append(model.g_a(_orient(x[..., :h, :w], k))[0].float())
    return out


def _large_enough(latents: list[torch.Tensor], size: int) -> list[int]:
    """Indices of the latents that are at least size x size."""
    big = [i for i, t in enumerate(latents) if t.shape[-2] >= size and t.shape[-1] >= size]
    if not big:
        raise ValueError(f"no latent is {size}x{size} or larger: use a smaller crop or larger images")
    return big


def _crops(latents: list[torch.Tensor], size: int, n: int, rng: np.random.Generator
           ) -> tuple[torch.Tensor, np.ndarray]:
    """n random size x size crops of latents that are all at least that large, and the index of
    the latent each came from."""
    out = []
    picks = rng.integers(0, len(latents), n)
    for i in picks:
        t = latents[i]
        a = int(rng.integers(0, t.shape[-2] - size + 1))
        b = int(rng.integers(0, t.shape[-1] - size + 1))
        out.append(t[:, a:a + size, b:b + size])
    return torch.stack(out), picks


def rate_bpp(model: HyperpriorCoder, y: torch.Tensor, quality: torch.Tensor, *, amp: bool) -> torch.Tensor:
    """Bits per pixel of coding latents y (B, M, h, w) at each quality (training or eval mode)."""
    gain, _ = model.gains(quality)
    _, bits_y, bits_z = model.code_latent(y * gain, amp=amp)
    return (bits_y + bits_z) / (y.shape[-2] * y.shape[-1] * 256)


@torch.no_grad()
def eval_bpp(model: HyperpriorCoder, latents: list[torch.Tensor], qualities: list[float]) -> list[float]:
    """Mean estimated bpp of rounded latents per quality (the coded rate, within ~1%)."""
    model.eval()
    out = []
    for q in qualities:
        vals = []
        for y in latents:
            h, w = y.shape[-2] // 4 * 4, y.shape[-1] // 4 * 4
            vals.append(float(rate_bpp(model, y[None, :, :h, :w], torch.tensor([q]), amp=False)))
        out.append(float(np.mean(vals)))
    return out


def fit_entropy_model(model: HyperpriorCoder, latents: list[torch.Tensor], cfg: EntropyFitConfig, *,
                      minutes: float, qualities: list[float] | None = None,
                      eval_sets: dict[float, list[torch.Tensor]] | None = None, eval_every_s: float = 600.0,
                      should_stop=lambda: False, max_steps: int | None = None,
                      progress: bool = True) -> FitResult:
    """Train the entropy parts of `model` on rate for `minutes` (cosine schedule over the time).

    qualities: the quality each latent was coded at (crops are trained at it); without them
    every crop gets a uniformly random quality. eval_sets: quality -> latents whose estimated
    bpp at that quality is logged every `eval_every_s` seconds."""
    if qualities is not None and len(qualities) != len(latents):
        raise ValueError("one quality per latent")
    keep = _large_enough(latents, cfg.crop)
    latents = [latents[i] for i in keep]
    qualities = None if qualities is None else [qualities[i] for i in keep]
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    for p in model.parameters():
        p.requires_grad_(False)
    groups = []
    for name in ENTROPY_PARTS:
        base = cfg.new_lr if name in NEW_PARTS else cfg.lr
        if hasattr(model, name) and base > 0:  # a zero learning rate freezes those parts
            params = list(getattr(model, name).parameters())
            for p in params:
                p.requires_grad_(True)
            groups.append({"params": params, "base": base})
    opt = torch.optim.Adam(groups, lr=cfg.lr)
    trainable = [p for g in groups for p in g["params"]]
    log: list[dict] = []

    def evaluate(step: int) -> None:
        if eval_sets:
            rec = {"step": step, "eval_bpp": {str(q): eval_bpp(model, ts, [q])[0] for q, ts in eval_sets.items()}}
            log.append(rec)
            if progress:
                tqdm.write(str(rec))

    evaluate(0)
    start = time.time()
    deadline = start + minutes * 60
    next_eval = start + eval_every_s
    step, running = 0, None
    bar = tqdm(desc="fit entropy", unit="step", disable=not progress, mininterval=5, dynamic_ncols=True)
    model.train()
    while time.time() < deadline and not should_stop() and (max_steps is None or step < max_steps):
        scale = schedule_factor((time.time() - start) / (minutes * 60), step, warmup_steps=cfg.warmup_steps,
                                min_lr_fraction=cfg.min_lr_fraction)
        for g in opt.param_groups:
            g["lr"] = g["base"] * scale
        y, picks = _crops(latents, cfg.crop, cfg.batch, rng)
        if qualities is None:
            q = torch.from_numpy(1.0 + rng.random(cfg.batch) * (model.config.max_quality - 1.0)).float()
        else:
            q = torch.tensor([qualities[i] for i in picks], dtype=torch.float32)
        loss = rate_bpp(model, y, q, amp=cfg.amp).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(trainable, cfg.grad_clip)
        opt.step()
        step += 1
        v = float(loss.detach())
        running = v if running is None else 0.98 * running + 0.02 * v
        bar.update(1)
        if step % 50 == 0:
            bar.set_postfix(bpp=f"{running:.4f}")
            log.append({"step": step, "bpp": running, "t": round(time.time() - start, 1)})
        if time.time() >= next_eval:
            evaluate(step)
            model.train()
            next_eval = time.time() + eval_every_s
    bar.close()
    evaluate(step)
    model.eval()
    for p in model.parameters():
        p.requires_grad_(True)
    return FitResult(steps=step, crops_seen=step * cfg.batch, wall_seconds=time.time() - start, log=log)

