"""Bjontegaard delta rate with piecewise cubic (PCHIP) interpolation.

BD-rate: the mean difference in log-rate between two RD curves over their overlapping
quality range, as a percentage (negative: the test codec needs fewer bits). This is the
interpolation the JVET common test conditions use (instead of the original cubic fit).
"""

from __future__ import annotations

import numpy as np
from scipy.interpolate import PchipInterpolator


def _prepare(rate, dist):
    r = np.log10(np.asarray(rate, dtype=np.float64))
    d = np.asarray(dist, dtype=np.float64)
    if len(r) != len(d) or len(r) < 2:
        raise ValueError("need at least two (rate, distortion) points per curve")
    order = np.argsort(d)
    d, r = d[order], r[order]
    keep = np.concatenate([[True], np.diff(d) > 0])
    return d[keep], r[keep]


def bd_rate(rate_ref, dist_ref, rate_test, dist_test) -> float:
    """Percent rate change of `test` against `ref` at equal distortion (e.g. PSNR)."""
    d1, r1 = _prepare(rate_ref, dist_ref)
    d2, r2 = _prepare(rate_test, dist_test)
    lo, hi = max(d1.min(), d2.min()), min(d1.max(), d2.max())
    if hi <= lo:
        return float("nan")
    f1, f2 = PchipInterpolator(d1, r1), PchipInterpolator(d2, r2)
    a1 = f1.integrate(lo, hi)
    a2 = f2.integrate(lo, hi)
    return float((10 ** ((a2 - a1) / (hi - lo)) - 1) * 100)


def bd_psnr(rate_ref, dist_ref, rate_test, dist_test) -> float:
    """Mean distortion (e.g. PSNR dB) gain of `test` over `ref` at equal rate."""
    r1 = np.log10(np.asarray(rate_ref, dtype=np.float64))
    r2 = np.log10(np.asarray(rate_test, dtype=np.float64))
    o1, o2 = np.argsort(r1), np.argsort(r2)
    lo, hi = max(r1.min(), r2.min()), min(r1.max(), r2.max())
    if hi <= lo:
        return float("nan")
    f1 = PchipInterpolator(r1[o1], np.asarray(dist_ref, dtype=np.float64)[o1])
    f2 = PchipInterpolator(r2[o2], np.asarray(dist_test, dtype=np.float64)[o2])
    return float((f2.integrate(lo, hi) - f1.integrate(lo, hi)) / (hi - lo))
