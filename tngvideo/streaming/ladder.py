"""Quality ladder specifications: "800k,400k@640x360,150k@320x180"."""

from __future__ import annotations

import re
from dataclasses import dataclass

# Default rungs as (bits per pixel per frame, share of the source size), scaled to the source.
DEFAULT_RUNGS = ((0.15, 1.0), (0.08, 1.0), (0.15, 0.5))
_ITEM = re.compile(r"^\s*(?P<rate>\d+(?:\.\d+)?)\s*(?P<unit>[kKmM]?)\s*(?:@\s*(?:(?P<w>\d+)x(?P<h>\d+)|(?P<pct>\d+(?:\.\d+)?)%))?\s*$")


@dataclass(frozen=True)
class Rendition:
    """One rung: a target bitrate and, optionally, an output size (absolute or a share of the source)."""

    kbps: float
    width: int | None = None
    height: int | None = None
    scale: float | None = None  # fraction of the source size, when given as a percentage

    def size_for(self, src_width: int, src_height: int) -> tuple[int, int]:
        if self.width is not None:
            return self.width, self.height
        if self.scale is not None:
            return max(1, round(src_width * self.scale)), max(1, round(src_height * self.scale))
        return src_width, src_height


def parse_ladder(spec: str) -> list[Rendition]:
    """Comma-separated renditions: RATE[k|M][@WxH | @P%]; a bare RATE is in kbps."""
    out = []
    for item in spec.split(","):
        m = _ITEM.match(item)
        if not m:
            raise ValueError(f"bad ladder entry {item.strip()!r} (expected e.g. 800k, 1.5M@1280x720 or 300k@50%)")
        kbps = float(m["rate"]) * (1000.0 if m["unit"] in ("m", "M") else 1.0)
        if kbps <= 0:
            raise ValueError(f"ladder entry {item.strip()!r}: bitrate must be positive")
        if m["w"]:
            w, h = int(m["w"]), int(m["h"])
            if not (1 <= w <= 16384 and 1 <= h <= 16384):
                raise ValueError(f"ladder entry {item.strip()!r}: size out of range")
            out.append(Rendition(kbps, w, h))
        elif m["pct"]:
            pct = float(m["pct"])
            if not 0 < pct <= 100:
                raise ValueError(f"ladder entry {item.strip()!r}: scale must be in (0, 100]%")
            out.append(Rendition(kbps, scale=pct / 100))
        else:
            out.append(Rendition(kbps))
    return out


def default_ladder(width: int, height: int, fps: float) -> list[Rendition]:
    """Three rungs sized to the source: full size at 0.15 and 0.08 bpp, half size at 0.15 bpp."""
    out = []
    for bpp, share in DEFAULT_RUNGS:
        w, h = max(1, round(width * share)), max(1, round(height * share))
        kbps = round(bpp * w * h * (fps or 25) / 1000, 1)
        out.append(Rendition(kbps, w, h))
    return out
