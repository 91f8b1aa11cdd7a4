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
- stage "conditional": the joint loss, training only a model's contexts (the residual coder's
  prediction context, `with_conditional`, and the motion coder's temporal context,
  `with_motion_context`), everything else frozen: the first stage of conditional coding, which
  can only improve on the model it was converted from.
"""

from __future__ import annotations

import json
import signal
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from torch import nn
from tqdm import tqdm

from tngvideo.datapaths import data_path
from tngvideo.image.model import TNGImageModel
from tngvideo.train.data import list_images
from tngvideo.train.device_data import ClipPairs, SyntheticMotion, load_photos
from tngvideo.train.loop import TrainState, autotune_convolutions, lr_at
from tngvideo.train.throughput import Throughput, auto_batch, count_flops, fused_adam, guarded_step
from tngvideo.video.model import PFrameModel
from tngvideo.video.weights import save_video_weights

STAGES = ("flow", "joint", "motion", "conditional")


@dataclass
class VideoTrainConfig:
    stage: str = "flow"
    photos: list[str] = field(default_factory=lambda: [str(data_path("images", "train"))])
    clips: list[str] = field(default_factory=lambda: [str(data_path("video", "train"))])
    crop: int = 128
    batch: int = 8  # 0: as many as fit in memory_fraction of a GPU's memory
    memory_fraction: float = 0.4
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
    save_every_minutes: float = 0.0  # also save this often by the clock (0: off), for runs in a time slot
    log_every: int = 25  # the only steps that wait for the device

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


def matching_quality(target: TNGImageModel, source: TNGImageModel, q: torch.Tensor) -> torch.Tensor:
    """The qualities of `target` whose lambdas are those of `source` at `q` (both interpolate
    their lambda tables in log-lambda; `target.quality_for_lambda(source.lambda_at(q))`), on
    q's device, so a training step need not wait for it."""
    def log_table(m: TNGImageModel) -> torch.Tensor:
        return torch.tensor(m.config.lambdas, dtype=torch.float64, device=q.device).log()

    src, dst = log_table(source), log_table(target)
    v = q.double().clamp(source.config.min_quality, source.config.max_quality) - 1
    lo = v.floor().long().clamp(0, len(src) - 2)
    t = v - lo
    log_l = src[lo] * (1 - t) + src[lo + 1] * t
    k = (torch.searchsorted(dst, log_l) - 1).clamp(0, len(dst) - 2)
    out = 1 + k + (log_l - dst[k]) / (dst[k + 1] - dst[k])
    return out.clamp(target.config.min_quality, target.config.max_quality).float()


def rollout_loss(model: PFrameModel, image_model: TNGImageModel, frames: list[torch.Tensor], q: torch.Tensor, *,
                 amp: bool, prediction_weight: float = 0.0, intra_offset: float = 0.0,
                 p_offsets: tuple[float, ...] = (0.0,)) -> tuple[torch.Tensor, dict[str, float]]:
    """Frame 0 coded by the (frozen) image model at the same lambda as the P-frame model at
    q + intra_offset (as the codec's I-frames), each later frame predicted from the previous
    reconstruction with motion estimated against the previous source frame (as the encoder does),
    the k-th at q + p_offsets[(k - 1) % len(p_offsets)] (qualities held to the model's range).
    Returns the mean RD loss over the P-frames and figures to log (0-d tensors: reading them
    waits for the device)."""
    lo, hi = model.residual.config.min_quality, model.residual.config.max_quality

    def at(d: float) -> torch.Tensor:
        return (q + d).clamp(lo, hi)

    q_intra = matching_quality(image_model, model.residual, at(intra_offset))
    with torch.no_grad():
        ref_hat = image_model(frames[0], q_intra, amp=amp).x_hat.clamp(0, 1)
    pixels = frames[0].shape[2] * frames[0].shape[3]
    losses, mses, bpps, motion = [], [], [], []
    flow_hat = None  # the previous P-frame's decoded flow: the motion coder's temporal context
    for k, (prev, cur) in enumerate(zip(frames, frames[1:])):
        res = model(cur, ref_hat, at(p_offsets[k % len(p_offsets)]), amp=amp, flow_ref=prev,  # motion estimated
                    prev_flow=flow_hat)                                                        # on the source, as the encoder does
        flow_hat = res.flow_hat
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
        "bpp": bpp.mean(), "psnr": (10 * torch.log10(1 / mse.clamp_min(1e-10))).mean(),
        "motion_bpp": torch.stack(motion).detach().mean()}


def train_video(cfg: VideoTrainConfig, *, model: PFrameModel, image_model: TNGImageModel, state: TrainState,
                out: Path, name: str, minutes: float, device: torch.device, log_path: Path,
                stop_file: Path | None = None, max_steps: int | None = None, deadline: float | None = None,
                half: bool = False) -> TrainState:
    """Train until `minutes` pass after the data are loaded (or the wall-clock `deadline`,
    `max_steps` steps of this run, a stop file or SIGTERM). Batches are cut on the device and
    the step never waits for it except every `log_every` steps. `half` saves fp16 weights."""
    torch.manual_seed(cfg.seed + state.steps)
    synthetic = SyntheticMotion(load_photos(list_images(cfg.photos)), crop=cfg.crop, device=device,
                                seed=cfg.seed + state.steps)
    clips = (ClipPairs(cfg.clips, crop=cfg.crop, device=device, seed=cfg.seed + state.steps + 1)
             if cfg.stage != "flow" else None)
    model.to(device).train()
    image_model.to(device).eval()
    autotune_convolutions(device)
    for p in image_model.parameters():
        p.requires_grad_(False)
    if cfg.stage == "conditional" and not (model.config.conditional or model.config.motion_context):
        raise ValueError("stage 'conditional' trains a model's contexts (convert one with --conditional / --motion-context)")
    trained = {"flow": model.flow, "joint": model, "motion": model.motion,
               "conditional": nn.ModuleList([getattr(model, k) for k in ("condition", "motion_condition")
                                             if hasattr(model, k)])}[cfg.stage]
    for p in model.parameters():
        p.requires_grad_(False)
    params = list(trained.parameters())
    for p in params:
        p.requires_grad_(True)
    filtered = {id(p) for p in model.filter.parameters()} if model.config.loop_filter else set()
    groups = [{"params": [p for p in params if id(p) not in filtered], "scale": 1.0},
              {"params": [p for p in params if id(p) in filtered], "scale": cfg.filter_lr_scale}]
    opt = fused_adam([g for g in groups if g["params"]], cfg.peak_lr)
    gen = torch.Generator().manual_seed(cfg.seed + state.steps)  # host: which kind of batch
    qgen = torch.Generator(device=device).manual_seed(cfg.seed + state.steps + 2)
    top_q = model.residual.config.max_quality

    def step_loss(n: int, use_synthetic: bool, prediction_weight: float = 0.0):
        if use_synthetic:
            cur, ref, flow = synthetic.batch(n)
            if cfg.stage == "flow":
                with torch.autocast(device.type, dtype=torch.bfloat16, enabled=cfg.amp):
                    pred = model.flow(cur, ref)
                return endpoint_error(pred.float(), flow), {}
            frames = [ref, cur]
        else:
            frames = clips.clips(n, cfg.rollout + 1)
        q = 1.0 + torch.rand(n, generator=qgen, device=device) * (top_q - 1)
        return rollout_loss(model, image_model, frames, q, amp=cfg.amp, prediction_weight=prediction_weight,
                            intra_offset=cfg.intra_offset, p_offsets=tuple(cfg.p_offsets))

    longest = cfg.stage == "flow" or cfg.synthetic_fraction >= 1  # the batch kind a probe must fit
    batch = cfg.batch or auto_batch(lambda n: step_loss(n, longest)[0], device, memory_fraction=cfg.memory_fraction)
    flops = count_flops(lambda: step_loss(batch, longest)[0])
    if cfg.stage != "flow" and 0 < cfg.synthetic_fraction < 1:  # the mean over the two kinds of batch
        f = cfg.synthetic_fraction
        flops = round(f * count_flops(lambda: step_loss(batch, True)[0]) + (1 - f) * flops)
    opt.zero_grad(set_to_none=True)
    stopping = {"flag": False}
    old = signal.signal(signal.SIGTERM, lambda *_: stopping.update(flag=True))
    start, run_step = time.time(), 0
    if deadline is not None:
        minutes = min(minutes, (deadline - start) / 60)
    speed, last_save = Throughput(flops, batch, start), start
    skipped = torch.zeros((), device=device)
    wall_before = state.wall_seconds
    bar = tqdm(desc=f"train-video/{cfg.stage}", unit="step", dynamic_ncols=True, mininterval=5)

    def save():
        state.wall_seconds = wall_before + time.time() - start
        save_video_weights(model.cpu(), out, name=name, half=half)
        model.to(device)
        config = {**asdict(cfg), "batch": batch}
        out.with_suffix(".json").write_text(json.dumps({"training_state": asdict(state), "config": config}, indent=2) + "\n")

    try:
        with log_path.open("a") as log:
            log.write(json.dumps({"step": state.steps, "batch": batch, "flops_per_step": flops, "device": str(device),
                                  "data_mb": round(synthetic.photos.nbytes() / 1e6 +
                                                   (clips.packed.nbytes() / 1e6 if clips else 0), 1)}) + "\n")
            while (time.time() < start + minutes * 60 and not stopping["flag"] and not (stop_file and stop_file.exists())
                   and (max_steps is None or run_step < max_steps)):
                progress = ((time.time() - start) / (minutes * 60) if cfg.schedule_by == "time"
                            else state.steps / max(1, cfg.total_steps))
                lr = lr_at(cfg, progress, run_step)  # type: ignore[arg-type]
                for g in opt.param_groups:
                    g["lr"] = lr * g["scale"]
                use_synthetic = cfg.stage == "flow" or torch.rand(1, generator=gen).item() < cfg.synthetic_fraction
                loss, figures = step_loss(batch, use_synthetic, cfg.prediction_weight * max(0.0, 1.0 - 2.0 * progress))
                opt.zero_grad(set_to_none=True)
                loss.backward()
                skipped += guarded_step(opt, params, cfg.grad_clip)  # a NaN step would poison the weights
                state.steps += 1
                state.crops_seen += batch
                run_step += 1
                bar.update(1)
                if state.steps % cfg.log_every == 0:
                    rec = {"step": state.steps, "lr": lr, ("epe" if cfg.stage == "flow" else "loss"): float(loss.detach()),
                           **{k: float(v) for k, v in figures.items()}, "skipped": int(skipped),
                           **speed.figures(run_step)}
                    log.write(json.dumps(rec) + "\n")
                    log.flush()
                    bar.set_postfix({k: f"{v:.4g}" for k, v in rec.items() if k not in ("step", "lr")})
                due = cfg.save_every_minutes and time.time() - last_save >= cfg.save_every_minutes * 60
                if state.steps % cfg.save_every == 0 or due:
                    save()
                    last_save = time.time()
            log.write(json.dumps({"step": state.steps, "run_steps": run_step, "skipped": int(skipped), "batch": batch,
                                  "flops_per_step": flops, **speed.figures(run_step)}) + "\n")
    finally:
        bar.close()
        signal.signal(signal.SIGTERM, old)
        for p in model.parameters():
            p.requires_grad_(True)
        state.runs += 1
        save()
    return state
