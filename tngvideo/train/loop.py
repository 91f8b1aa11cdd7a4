"""The image-model training loop: variable-rate RD loss, bf16 autocast, EMA, global schedule."""

from __future__ import annotations

import copy
import json
import math
import os
import signal
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.nn.parallel import DistributedDataParallel
from tqdm import tqdm

from tngvideo.datapaths import data_path
from tngvideo.image.model import TNGImageModel
from tngvideo.image.weights import save_weights
from tngvideo.latent.model import DEFAULT_LAMBDAS, QUANTIZATION_MODES
from tngvideo.latent.weights import build_tables
from tngvideo.train.data import list_images
from tngvideo.train.device_data import PackedFrames, load_photos, to_float
from tngvideo.train.distributed import any_rank, setup, teardown
from tngvideo.train.throughput import Throughput, auto_batch, count_flops, fused_adam, guarded_step


@dataclass
class TrainConfig:
    data: list[str] = field(default_factory=lambda: [str(data_path("images", "train"))])
    crop: int = 128
    batch: int = 8  # 0: as many as fit in memory_fraction of a GPU's memory
    memory_fraction: float = 0.4
    peak_lr: float = 8e-4
    min_lr_fraction: float = 0.05
    warmup_steps: int = 300
    total_steps: int = 12000  # the schedule's length in global steps (spans resumed runs)
    schedule_by: str = "steps"  # "steps": global step / total_steps; "time": elapsed / run budget
    grad_clip: float = 1.0
    ema_decay: float = 0.999
    amp: bool = True  # bf16 autocast for the transforms
    channels_last: bool = True
    # "mixed": the rate terms see uniform noise, synthesis sees rounded latents (straight-through);
    # "noise": both see noise.
    quantization: str = "mixed"
    # torch.compile the training step (forward, loss, backward): on the 2-core CPU 0.33 s per
    # step instead of 0.49 (batch 4 of 192x192) after about a minute of compiling; needs a C++
    # compiler on CPU (Triton on CUDA).
    compile: bool = False
    seed: int = 0
    eval_every: int = 500
    eval_images: list[str] = field(default_factory=list)
    eval_qualities: list[float] = field(default_factory=lambda: [1.0, 5.5, 10.0])
    save_every: int = 1000
    save_every_minutes: float = 0.0  # also save this often by the clock (0: off), for runs in a time slot
    log_every: int = 50  # the only steps that wait for the device
    # The model's lambda table (10 levels, geometric: the shipped model spans about 0.07-1.8 bpp on
    # Kodak); resuming from weights with another table re-maps their gains. None: keep the table of
    # the weights resumed from.
    lambdas: list[float] | None = field(default_factory=lambda: list(DEFAULT_LAMBDAS))

    @classmethod
    def from_dict(cls, d: dict) -> "TrainConfig":
        known = {f for f in cls.__dataclass_fields__}
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"unknown training options: {sorted(unknown)}")
        if d.get("schedule_by", "steps") not in ("steps", "time"):
            raise ValueError("schedule_by must be 'steps' or 'time'")
        if d.get("quantization", "mixed") not in QUANTIZATION_MODES:
            raise ValueError(f"quantization must be one of {QUANTIZATION_MODES}")
        return cls(**d)


def autotune_convolutions(device: torch.device) -> None:
    """Training crops have a fixed size: on CUDA let cuDNN pick its fastest kernels."""
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True


def schedule_factor(progress: float, run_step: int, *, warmup_steps: int, min_lr_fraction: float) -> float:
    """Cosine decay over the schedule (progress 0..1), floor at min_lr_fraction; warm-up at each run start."""
    t = min(1.0, max(0.0, progress))
    cosine = min_lr_fraction + (1 - min_lr_fraction) * 0.5 * (1 + math.cos(math.pi * t))
    return cosine * min(1.0, (run_step + 1) / warmup_steps)


def lr_at(cfg: TrainConfig, progress: float, run_step: int) -> float:
    """The peak learning rate times `schedule_factor`."""
    return cfg.peak_lr * schedule_factor(progress, run_step, warmup_steps=cfg.warmup_steps,
                                         min_lr_fraction=cfg.min_lr_fraction)


@dataclass
class TrainState:
    steps: int = 0
    crops_seen: int = 0
    wall_seconds: float = 0.0
    runs: int = 0


def rd_loss(model: TNGImageModel, x: torch.Tensor, quality: torch.Tensor, amp: bool, quantization: str = "mixed"):
    res = model(x, quality, amp=amp, quantization=quantization)
    mse = ((res.x_hat - x) ** 2).mean(dim=(1, 2, 3))
    bpp = res.bpp(x.shape[2] * x.shape[3])
    loss = (res.lmbda * 255.0**2 * mse + bpp).mean()
    return loss, mse, bpp


@torch.no_grad()
def quick_eval(model: TNGImageModel, images: list[torch.Tensor], qualities: list[float]) -> list[dict]:
    """Estimated bpp (rounded latents) and PSNR on a fixed image subset, per quality."""
    model.eval()
    out = []
    for q in qualities:
        bpps, psnrs = [], []
        for x in images:
            res = model(x, torch.tensor([q]))
            mse = float(((res.x_hat.clamp(0, 1) - x) ** 2).mean())
            psnrs.append(10 * math.log10(1.0 / max(mse, 1e-12)))
            bpps.append(float(res.bpp(x.shape[2] * x.shape[3])))
        out.append({"quality": q, "bpp": float(np.mean(bpps)), "psnr": float(np.mean(psnrs))})
    model.train()
    return out


def _pad64(x: torch.Tensor) -> torch.Tensor:
    h, w = x.shape[-2:]
    return x[..., : h // 64 * 64, : w // 64 * 64]


def train(
    cfg: TrainConfig,
    *,
    model: TNGImageModel,
    state: TrainState,
    out: Path,
    name: str,
    minutes: float,
    device: torch.device,
    log_path: Path,
    stop_file: Path | None = None,
    max_steps: int | None = None,
    deadline: float | None = None,
    half: bool = False,
) -> TrainState:
    """Train until `minutes` pass after the data are loaded (or the wall-clock `deadline`,
    `max_steps` steps of this run, a stop file or SIGTERM). Under torchrun, each process takes
    batch / world_size crops and gradients are averaged. Crops are cut on the device and the
    step never waits for it except every `log_every` steps. `half` saves fp16 weights."""
    info, device = setup(device)
    torch.manual_seed(cfg.seed + state.steps)  # identical initial weights and EMA on every rank
    photos = PackedFrames(load_photos(list_images(cfg.data)), device=device, min_side=cfg.crop,
                          seed=cfg.seed + state.steps + 7919 * info.rank)
    eval_imgs = [
        _pad64(torch.from_numpy(np.array(Image.open(p).convert("RGB"))).permute(2, 0, 1)[None].float() / 255.0)
        for p in cfg.eval_images
    ]
    autotune_convolutions(device)
    model.to(device).train()
    if cfg.channels_last:
        model.to(memory_format=torch.channels_last)
    ema = copy.deepcopy(model).eval()
    for p in ema.parameters():
        p.requires_grad_(False)
    ema_params, model_params = list(ema.parameters()), list(model.parameters())
    net = DistributedDataParallel(model) if info.enabled else model  # DDP broadcasts rank 0's weights
    opt = fused_adam(model.parameters(), cfg.peak_lr)
    qgen = torch.Generator(device=device).manual_seed(cfg.seed + state.steps + 104729 * info.rank)

    def step_loss(x: torch.Tensor, q: torch.Tensor):
        return rd_loss(net, x, q, cfg.amp, cfg.quantization)

    def sample(n: int) -> tuple[torch.Tensor, torch.Tensor]:
        x = to_float(photos.crops(n, 1, cfg.crop)[:, 0], cfg.channels_last)
        q = 1.0 + torch.rand(n, generator=qgen, device=device) * (model.config.max_quality - 1.0)
        return x, q

    batch = cfg.batch or auto_batch(lambda n: step_loss(*sample(n))[0], device,
                                    memory_fraction=cfg.memory_fraction) * info.world
    if batch % info.world:
        raise ValueError(f"batch {batch} does not split over {info.world} processes")
    local_batch = batch // info.world
    flops = count_flops(lambda: step_loss(*sample(local_batch))[0]) * info.world
    opt.zero_grad(set_to_none=True)
    if cfg.compile:
        step_loss = torch.compile(step_loss)

    stopping = {"flag": False}

    def _stop(*_):
        stopping["flag"] = True

    old = signal.signal(signal.SIGTERM, _stop)
    start = time.time()
    if deadline is not None:
        minutes = min(minutes, (deadline - start) / 60)
    end = start + minutes * 60
    speed = Throughput(flops, batch, start)
    run_step, last_save = 0, start
    skipped = torch.zeros((), device=device)
    log = log_path.open("a") if info.main else open(os.devnull, "w")
    if info.main:
        log.write(json.dumps({"step": state.steps, "batch": batch, "flops_per_step": flops,
                              "data_mb": round(photos.nbytes() / 1e6, 1), "device": str(device)}) + "\n")
    bar = tqdm(desc="train", unit="step", dynamic_ncols=True, mininterval=5, disable=not info.main)
    ema_state = TrainState(**asdict(state))
    wall_before = state.wall_seconds

    @torch.no_grad()
    def sync_ema():
        if not cfg.ema_decay:
            torch._foreach_copy_(ema_params, model_params)

    def save():
        if not info.main:
            return
        sync_ema()
        ema_state.wall_seconds = wall_before + (time.time() - start)
        ema_cpu = ema.cpu()
        save_weights(ema_cpu, out, name=name, tables=None if half else build_tables(ema_cpu), half=half)
        ema.to(device)
        out.with_suffix(".json").write_text(json.dumps(train_state_json(cfg, ema_state, batch), indent=2) + "\n")

    try:
        while not any_rank(time.time() >= end or stopping["flag"] or bool(stop_file and stop_file.exists())
                           or (max_steps is not None and run_step >= max_steps), info, device):
            if cfg.schedule_by == "time":
                progress = (time.time() - start) / (minutes * 60)
            else:
                progress = state.steps / max(1, cfg.total_steps)
            lr = lr_at(cfg, progress, run_step)
            for g in opt.param_groups:
                g["lr"] = lr
            x, q = sample(local_batch)
            loss, mse, bpp = step_loss(x, q)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            skipped += guarded_step(opt, model_params, cfg.grad_clip)
            if cfg.ema_decay:  # without averaging the copy is made only when it is read (sync_ema)
                with torch.no_grad():
                    d = min(cfg.ema_decay, (1 + state.steps) / (10 + state.steps))
                    torch._foreach_lerp_(ema_params, model_params, 1 - d)
            state.steps += 1
            state.crops_seen += batch
            run_step += 1
            bar.update(1)
            if state.steps % cfg.log_every == 0:
                mse, bpp = mse.detach(), bpp.detach()
                psnr = float((10 * torch.log10(1 / mse.clamp_min(1e-10))).mean())
                rec = {"step": state.steps, "lr": lr, "loss": float(loss.detach()), "bpp": float(bpp.mean()),
                       "psnr": psnr, "skipped": int(skipped), "t": round(time.time() - start, 1),
                       **speed.figures(run_step)}
                log.write(json.dumps(rec) + "\n")
                log.flush()
                bar.set_postfix(loss=f"{rec['loss']:.3f}", bpp=f"{rec['bpp']:.3f}", psnr=f"{psnr:.2f}")
            if info.main and eval_imgs and state.steps % cfg.eval_every == 0:
                sync_ema()
                ev = quick_eval(ema.cpu(), eval_imgs, cfg.eval_qualities)
                ema.to(device)
                log.write(json.dumps({"step": state.steps, "eval": ev}) + "\n")
                log.flush()
            due = cfg.save_every_minutes and time.time() - last_save >= cfg.save_every_minutes * 60
            if state.steps % cfg.save_every == 0 or due:
                ema_state.steps, ema_state.crops_seen = state.steps, state.crops_seen
                save()
                last_save = time.time()
    finally:
        bar.close()
        signal.signal(signal.SIGTERM, old)
        state.runs += 1
        ema_state.steps, ema_state.crops_seen, ema_state.runs = state.steps, state.crops_seen, state.runs
        save()
        state.wall_seconds = ema_state.wall_seconds
        if info.main:
            log.write(json.dumps({"step": state.steps, "run_steps": run_step, "skipped": int(skipped), "batch": batch,
                                  "flops_per_step": flops, **speed.figures(run_step)}) + "\n")
        log.close()
        teardown(info)
    return state


def train_state_json(cfg: TrainConfig, state: TrainState, batch: int | None = None) -> dict:
    """The training state and the configuration (with the batch actually used, where it was sized to the device)."""
    config = asdict(cfg)
    if batch is not None:
        config["batch"] = batch
    return {"training_state": asdict(state), "config": config}
