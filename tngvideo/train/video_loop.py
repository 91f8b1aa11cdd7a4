"""Stage-wise training of the P-frame model.

- stage "flow": the flow network alone, supervised by the exact flow of synthetic motion
  (end-point error).
- stage "joint": everything, rate-distortion loss lambda(q) * 255^2 * MSE + bits per pixel,
  with the reference frame coded by the (frozen) image model at the same lambda, so the
  P-frame model learns to predict from decoded frames. Half the pairs are synthetic motion,
  half real clips. With `rollout` > 1 the real-clip samples are runs of that many P-frames, each
  predicted from the previous one's reconstruction (gradients flow along the chain), so the
  loss sees the errors that propagate through a group of pictures.
- stage "motion": the joint loss, training only the motion coder (compensation, residual
  coder and flow network frozen): adapts the motion coder to a new flow estimator (DIS).
"""

from __future__ import annotations

import json
import signal
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from tqdm import tqdm

from tngvideo.image.model import TNGImageModel
from tngvideo.train.data import list_images
from tngvideo.train.loop import TrainState, autotune_convolutions, lr_at
from tngvideo.train.video_data import ClipPairs, SyntheticMotion
from tngvideo.video.model import PFrameModel
from tngvideo.video.weights import save_video_weights

STAGES = ("flow", "joint", "motion")


@dataclass
class VideoTrainConfig:
    stage: str = "flow"
    photos: list[str] = field(default_factory=lambda: ["../shared/data/images/train"])
    clips: list[str] = field(default_factory=lambda: ["../shared/data/video/train"])
    crop: int = 128
    batch: int = 8
    synthetic_fraction: float = 0.5  # joint stage: share of synthetic-motion batches
    # joint stage: weight of the prediction's own distortion (warped reference vs frame), which
    # teaches motion and compensation before the residual coder has adapted; it decays linearly
    # to zero at half of the run
    prediction_weight: float = 0.0
    rollout: int = 1  # joint stage: P-frames per real-clip sample, each predicted from the last
    # joint stage: the encoder's quality cascade (tngvideo.video.EncoderOptions) in rollouts: the
    # I-frame at q + intra_offset, the k-th P-frame at q + p_offsets[(k - 1) % len(p_offsets)], so
    # each frame's rate-distortion term is weighted by its place in the cascade
    intra_offset: float = 0.0
    p_offsets: list[float] = field(default_factory=lambda: [0.0])
    peak_lr: float = 5e-4
    filter_lr_scale: float = 1.0  # the loop filter's learning rate relative to the rest (a new filter learns faster)
    min_lr_fraction: float = 0.05
    warmup_steps: int = 200
    total_steps: int = 20000
    schedule_by: str = "steps"
    grad_clip: float = 1.0
    amp: bool = True
    seed: int = 0
    save_every: int = 500

    @classmethod
    def from_dict(cls, d: dict) -> "VideoTrainConfig":
        unknown = set(d) - set(cls.__dataclass_fields__)
        if unknown:
            raise ValueError(f"unknown training options: {sorted(unknown)}")
        cfg = cls(**d)
        if cfg.stage not in STAGES:
            raise ValueError(f"stage must be one of {STAGES}")
        if cfg.rollout < 1:
            raise ValueError("rollout must be at least 1")
        if not cfg.p_offsets:
            raise ValueError("p_offsets needs at least one offset")
        return cfg


def endpoint_error(pred: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
    return torch.linalg.vector_norm(pred - flow, dim=1).mean()


def rollout_loss(model: PFrameModel, image_model: TNGImageModel, frames: list[torch.Tensor], q: torch.Tensor, *,
                 amp: bool, prediction_weight: float = 0.0, intra_offset: float = 0.0,
                 p_offsets: tuple[float, ...] = (0.0,)) -> tuple[torch.Tensor, dict[str, float]]:
    """Frame 0 coded by the (frozen) image model at the same lambda as the P-frame model at
    q + intra_offset (as the codec's I-frames), each later frame predicted from the previous
    reconstruction with motion estimated against the previous source frame (as the encoder does),
    the k-th at q + p_offsets[(k - 1) % len(p_offsets)] (qualities held to the model's range).
    Returns the mean RD loss over the P-frames and figures to log."""
    lo, hi = model.residual.config.min_quality, model.residual.config.max_quality

    def at(d: float) -> torch.Tensor:
        return (q + d).clamp(lo, hi)

    q_intra = torch.tensor([image_model.quality_for_lambda(model.residual.lambda_at(v)) for v in at(intra_offset).tolist()],
                           device=q.device)
    with torch.no_grad():
        ref_hat = image_model(frames[0], q_intra, amp=amp).x_hat.clamp(0, 1)
    pixels = frames[0].shape[2] * frames[0].shape[3]
    losses, mses, bpps, motion = [], [], [], []
    for k, (prev, cur) in enumerate(zip(frames, frames[1:])):
        res = model(cur, ref_hat, at(p_offsets[k % len(p_offsets)]), amp=amp, flow_ref=prev)  # motion estimated on the source, as the encoder does
        mse = ((res.x_hat - cur) ** 2).mean(dim=(1, 2, 3))
        bpp = (res.bits_motion + res.bits_residual) / pixels
        loss = (res.lmbda * 255.0**2 * mse + bpp).mean()
        if prediction_weight > 0:
            pred_mse = ((res.prediction - cur) ** 2).mean(dim=(1, 2, 3))
            loss = loss + prediction_weight * (res.lmbda * 255.0**2 * pred_mse).mean()
        losses.append(loss)
        mses.append(mse)
        bpps.append(bpp)
        motion.append(res.bits_motion / pixels)
        ref_hat = res.x_hat.clamp(0, 1)
    mse, bpp = torch.stack(mses).detach(), torch.stack(bpps).detach()
    return torch.stack(losses).mean(), {
        "bpp": float(bpp.mean()), "psnr": float((10 * torch.log10(1 / mse.clamp_min(1e-10))).mean()),
        "motion_bpp": float(torch.stack(motion).detach().mean()), "frames": len(frames) - 1}


def train_video(cfg: VideoTrainConfig, *, model: PFrameModel, image_model: TNGImageModel, state: TrainState,
                out: Path, name: str, minutes: float, device: torch.device, log_path: Path,
                stop_file: Path | None = None, max_steps: int | None = None) -> TrainState:
    torch.manual_seed(cfg.seed + state.steps)
    synthetic = SyntheticMotion(list_images(cfg.photos), crop=cfg.crop, seed=cfg.seed + state.steps)
    clips = ClipPairs(cfg.clips, crop=cfg.crop, seed=cfg.seed + state.steps) if cfg.stage != "flow" else None
    model.to(device).train()
    image_model.to(device).eval()
    autotune_convolutions(device)
    for p in image_model.parameters():
        p.requires_grad_(False)
    trained = {"flow": model.flow, "joint": model, "motion": model.motion}[cfg.stage]
    for p in model.parameters():
        p.requires_grad_(False)
    params = list(trained.parameters())
    for p in params:
        p.requires_grad_(True)
    filtered = {id(p) for p in model.filter.parameters()} if model.config.loop_filter else set()
    groups = [{"params": [p for p in params if id(p) not in filtered], "scale": 1.0},
              {"params": [p for p in params if id(p) in filtered], "scale": cfg.filter_lr_scale}]
    opt = torch.optim.Adam([g for g in groups if g["params"]], lr=cfg.peak_lr)
    stopping = {"flag": False}
    old = signal.signal(signal.SIGTERM, lambda *_: stopping.update(flag=True))
    start, run_step = time.time(), 0
    wall_before = state.wall_seconds
    bar = tqdm(desc=f"train-video/{cfg.stage}", unit="step", dynamic_ncols=True, mininterval=5)

    def save():
        state.wall_seconds = wall_before + time.time() - start
        save_video_weights(model.cpu(), out, name=name)
        model.to(device)
        out.with_suffix(".json").write_text(json.dumps({"training_state": asdict(state), "config": asdict(cfg)}, indent=2) + "\n")

    gen = torch.Generator().manual_seed(cfg.seed + state.steps)
    skipped = 0
    try:
        with log_path.open("a") as log:
            while (time.time() < start + minutes * 60 and not stopping["flag"] and not (stop_file and stop_file.exists())
                   and (max_steps is None or run_step < max_steps)):
                progress = ((time.time() - start) / (minutes * 60) if cfg.schedule_by == "time"
                            else state.steps / max(1, cfg.total_steps))
                lr = lr_at(cfg, progress, run_step)  # type: ignore[arg-type]
                for g in opt.param_groups:
                    g["lr"] = lr * g["scale"]
                use_synthetic = cfg.stage == "flow" or torch.rand(1, generator=gen).item() < cfg.synthetic_fraction
                rec = {"step": state.steps + 1, "lr": lr}
                if use_synthetic:
                    cur, ref, flow = synthetic.batch(cfg.batch)
                    frames = [ref.to(device), cur.to(device)]
                else:
                    frames = [f.to(device) for f in clips.clips(cfg.batch, cfg.rollout + 1)]
                if cfg.stage == "flow":
                    with torch.autocast(device.type, dtype=torch.bfloat16, enabled=cfg.amp):
                        pred = model.flow(frames[1], frames[0])
                    loss = endpoint_error(pred.float(), flow.to(device))
                    rec["epe"] = float(loss)
                else:
                    q = 1.0 + torch.rand(cfg.batch, generator=gen).to(device) * (model.residual.config.max_quality - 1)
                    loss, figures = rollout_loss(model, image_model, frames, q, amp=cfg.amp,
                                                 prediction_weight=cfg.prediction_weight * max(0.0, 1.0 - 2.0 * progress),
                                                 intra_offset=cfg.intra_offset, p_offsets=tuple(cfg.p_offsets))
                    rec.update(loss=float(loss.detach()), **figures)
                opt.zero_grad(set_to_none=True)
                if not torch.isfinite(loss):  # a NaN step would poison the weights (and NaN flow crashes
                    skipped += 1              # grid_sample's CPU backward): skip it, count it
                    rec["skipped"] = skipped
                    log.write(json.dumps(rec) + "\n")
                    continue
                loss.backward()
                torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip)
                opt.step()
                state.steps += 1
                state.crops_seen += cfg.batch
                run_step += 1
                bar.update(1)
                if state.steps % 25 == 0:
                    log.write(json.dumps(rec) + "\n")
                    log.flush()
                    bar.set_postfix({k: f"{v:.4g}" for k, v in rec.items() if k not in ("step", "lr")})
                if state.steps % cfg.save_every == 0:
                    save()
    finally:
        bar.close()
        signal.signal(signal.SIGTERM, old)
        for p in model.parameters():
            p.requires_grad_(True)
        state.runs += 1
        save()
    return state
