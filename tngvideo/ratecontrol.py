"""Rate control without retraining: search the continuous quality knob for a byte target.

Secant steps on log-bytes against quality, bracketed once the target lies between two tries;
the first step uses a typical slope (refined by measurement and handed on, so the next search
of similar content starts closer). Used per file (`encode --bitrate`) and per segment.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Generic, TypeVar

LOG_BYTES_PER_QUALITY = 0.45  # first guess of d ln(bytes) / d quality, refined by measurement
MAX_TRIES = 8

T = TypeVar("T")


@dataclass
class RateState:
    """Where the next search starts: the last quality chosen and the measured slope."""
    quality: float
    slope: float = LOG_BYTES_PER_QUALITY


@dataclass(frozen=True)
class RateSearch(Generic[T]):
    result: T  # what encode(quality) returned for the chosen quality
    quality: float
    size: int
    tries: dict[float, T]  # every quality tried and its result (the chosen one included)


def search_quality(encode: Callable[[float], T], size_of: Callable[[T], int], *, target: float,
                   quality_range: tuple[float, float], tolerance: float, state: RateState,
                   max_tries: int = MAX_TRIES) -> RateSearch[T]:
    """Encode at qualities chosen to bring `size_of(encode(q))` within `tolerance` (relative) of
    `target` bytes; returns the closest try. A target outside what the range reaches ends at the
    range's end. Updates `state` for the next search."""
    if target <= 0 or not 0 < tolerance < 1:
        raise ValueError("the target must be positive and the tolerance in (0, 1)")
    qlo, qhi = quality_range
    below = above = None  # (quality, log error) brackets
    best: tuple[float, float] | None = None
    tried: dict[float, T] = {}
    q = min(qhi, max(qlo, state.quality))
    for _ in range(max_tries):
        q = round(min(qhi, max(qlo, q)), 2)  # what a packet carries
        if q in tried:
            break
        tried[q] = encode(q)
        size = size_of(tried[q])
        err = math.log(max(size, 1) / target)
        if best is None or abs(err) < abs(best[1]):
            best = (q, err)
        if abs(size / target - 1) <= tolerance:
            break
        if err > 0:
            above = (q, err) if above is None or q < above[0] else above
        else:
            below = (q, err) if below is None or q > below[0] else below
        if below and above and above[0] != below[0]:
            state.slope = max(0.05, (above[1] - below[1]) / (above[0] - below[0]))
            q = below[0] + (0 - below[1]) / state.slope
            q = min(max(q, min(below[0], above[0]) + 0.01), max(below[0], above[0]) - 0.01)
        else:
            if (err > 0 and q <= qlo) or (err < 0 and q >= qhi):
                break  # the target lies outside what the quality range can reach
            q = q - err / state.slope
    assert best is not None
    state.quality = best[0]
    return RateSearch(tried[best[0]], best[0], size_of(tried[best[0]]), tried)
