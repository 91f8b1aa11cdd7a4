"""What a picture may cost: the memory a decode or an encode of a W x H picture needs, against
the memory this process can still get. Checked before any network runs, so a file that claims a
picture too large for the machine is refused with a clear message instead of an allocation
failure (or the kernel's out-of-memory killer) halfway through.

The per-pixel figures are peaks measured with the shipped models on a 2-core CPU (one thread),
plus a margin for more threads: an image decode took 0.64 GB per megapixel, a video decode
(I- and P-frames) 0.92 GB, an image encode 0.8 GB, each on top of about 0.6 GB for Python, torch
and the weights. Stdlib only: every layer may import it.
"""

from __future__ import annotations

import os
import resource
from dataclasses import dataclass

GB = 1 << 30


class MemoryLimitError(ValueError):
    """Coding this picture would need more memory than the process can get."""


@dataclass(frozen=True)
class MemoryModel:
    what: str  # "decode" or "encode", for messages
    per_pixel: float  # bytes per pixel (of the size padded to 64) at the peak
    fixed: float = 0.0  # bytes besides the picture (buffers that do not scale with it)

    def bytes_for(self, width: int, height: int) -> int:
        pixels = -(-width // 64) * 64 * -(-height // 64) * 64
        return int(self.per_pixel * pixels + self.fixed)


IMAGE_DECODE = MemoryModel("decode", 800.0, 0.1 * GB)
VIDEO_DECODE = MemoryModel("decode", 1300.0, 0.2 * GB)
IMAGE_ENCODE = MemoryModel("encode", 1000.0, 0.1 * GB)
IMAGE_SEARCH = MemoryModel("encode", 3000.0, 0.1 * GB)  # the latent search keeps gradients
VIDEO_ENCODE = MemoryModel("encode", 2000.0, 0.3 * GB)


def _meminfo_available() -> int | None:
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def _address_space_left() -> int | None:
    """What `ulimit -v` still allows this process (None when unlimited or unknown)."""
    soft, _ = resource.getrlimit(resource.RLIMIT_AS)
    if soft == resource.RLIM_INFINITY:
        return None
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmSize:"):
                    return soft - int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return soft


def available_memory() -> int | None:
    """Bytes this process can still allocate: the smaller of the machine's available memory and
    what its address-space limit leaves; None when neither is known. `TNGVIDEO_MEMORY_LIMIT`
    (bytes, or with a G/M suffix) caps it further."""
    found = [v for v in (_meminfo_available(), _address_space_left(), _env_limit()) if v is not None]
    return max(0, min(found)) if found else None


def _env_limit() -> int | None:
    raw = os.environ.get("TNGVIDEO_MEMORY_LIMIT", "").strip().upper()
    if not raw:
        return None
    scale = {"G": GB, "M": 1 << 20}.get(raw[-1], 1)
    try:
        return int(float(raw.rstrip("GM")) * scale)
    except ValueError:
        return None


def check_memory(width: int, height: int, model: MemoryModel) -> None:
    """MemoryLimitError when coding a width x height picture needs more than `available_memory()`."""
    need = model.bytes_for(width, height)
    have = available_memory()
    if have is not None and need > have:
        raise MemoryLimitError(f"a {width}x{height} picture needs about {need / GB:.1f} GB of memory to "
                               f"{model.what}, and only {have / GB:.1f} GB is available")
