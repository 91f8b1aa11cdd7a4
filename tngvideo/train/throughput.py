"""What a training step costs and how many samples a device can take: floating-point operations
counted once per run (convolutions and matrix products, forward and backward), a batch sized to
the GPU's memory, and a step that skips non-finite gradients without waiting for the device."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable

import torch


def count_flops(step: Callable[[], torch.Tensor]) -> int:
    """Operations of one call of `step` (which returns a loss) and its backward pass."""
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        step().backward()
    return int(counter.get_total_flops())


def auto_batch(step: Callable[[int], torch.Tensor], device: torch.device, *, memory_fraction: float,
               probe: int = 8, multiple: int = 8, largest: int = 1024) -> int:
    """The largest batch (a multiple of `multiple`, at most `largest`) whose step fits in
    `memory_fraction` of the GPU's memory, from the peak memory of a `probe`-sample step."""
    if device.type != "cuda":
        raise ValueError("batch 0 (sized to the device) needs a CUDA device; give a batch size")
    for _ in range(2):  # the first step also autotunes convolutions
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        base = torch.cuda.memory_allocated(device)
        step(probe).backward()
        torch.cuda.synchronize(device)
        per_sample = max(1, torch.cuda.max_memory_allocated(device) - base) / probe
    total = torch.cuda.get_device_properties(device).total_memory
    fits = int(memory_fraction * total / per_sample)
    return max(multiple, min(largest, fits // multiple * multiple))


def guarded_step(opt: torch.optim.Optimizer, params: list[torch.nn.Parameter], grad_clip: float) -> torch.Tensor:
    """Clip and step, skipping the update when a gradient is not finite (it would poison every
    weight), without a host sync: the fused optimizer reads the flag on the device. Returns
    the flag (1.0 when skipped)."""
    norm = torch.nn.utils.clip_grad_norm_(params, grad_clip)
    found_inf = (~torch.isfinite(norm)).float().reshape(())
    opt.grad_scale = None  # the hooks torch.amp.GradScaler uses for fused optimisers
    opt.found_inf = found_inf
    opt.step()
    return found_inf


def fused_adam(param_groups, lr: float) -> torch.optim.Adam:
    return torch.optim.Adam(param_groups, lr=lr, fused=True)


@dataclass
class Throughput:
    """Samples and operations per second since `start`, for logs and records."""

    flops_per_step: int
    batch: int
    start: float

    def figures(self, steps: int) -> dict[str, float]:
        dt = max(1e-9, time.time() - self.start)
        return {"samples_per_s": round(steps * self.batch / dt, 2), "steps_per_s": round(steps / dt, 3),
                "tflops": round(steps * self.flops_per_step / dt / 1e12, 4)}
