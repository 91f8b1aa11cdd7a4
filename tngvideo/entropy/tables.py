"""Integer probability tables shared by the entropy models and the coder.

A table set holds T discrete distributions. Table t covers the integer values
offset[t] .. offset[t] + length[t] - 2; its last entry (index length[t] - 1) is the escape
symbol for values outside that range. Probabilities are integers that sum to 2**PRECISION, so
the coder never sees a float that could differ between machines.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

PRECISION = 16


@dataclass(frozen=True)
class CdfTables:
    pmf: np.ndarray  # (T, W) int32, zero-padded past length[t]
    length: np.ndarray  # (T,) int32, includes the escape entry
    offset: np.ndarray  # (T,) int32, value of entry 0

    def __post_init__(self) -> None:
        if self.pmf.ndim != 2 or self.length.shape != (self.pmf.shape[0],) or self.offset.shape != self.length.shape:
            raise ValueError("inconsistent probability table shapes")

    @property
    def count(self) -> int:
        return int(self.pmf.shape[0])

    def least_bits(self) -> np.ndarray:
        """Per table, the fewest bits one symbol can cost: -log2 of its largest probability."""
        return -np.log2(self.pmf.max(axis=1).astype(np.float64) / 2.0**PRECISION)

    def bits(self, symbols: np.ndarray, indices: np.ndarray) -> float:
        """Ideal code length in bits of `symbols` under tables `indices` (escapes excluded)."""
        cat = symbols.astype(np.int64) - self.offset[indices]
        last = self.length[indices] - 1
        cat = np.where((cat < 0) | (cat >= last), last, cat)
        p = self.pmf[indices, cat].astype(np.float64)
        return float(-np.log2(p / 2.0**PRECISION).sum())


def quantize_pmf(prob: np.ndarray, tail: float) -> np.ndarray:
    """Float probabilities of the in-range values plus `tail` -> int pmf with escape, sum 2**PRECISION.

    Every entry gets at least 1 so that any value can be coded.
    """
    total = 1 << PRECISION
    p = np.concatenate([np.asarray(prob, dtype=np.float64), [max(tail, 0.0)]])
    p = np.maximum(p, 0.0)
    p = p / p.sum()
    q = np.maximum(1, np.round(p * (total - len(p))).astype(np.int64))
    q[np.argmax(q)] += total - int(q.sum())
    if q.min() < 1:
        raise ValueError("probability table cannot be normalised")
    return q.astype(np.int32)


def pack_tables(pmfs: list[np.ndarray], offsets: list[int]) -> CdfTables:
    width = max(len(p) for p in pmfs)
    table = np.zeros((len(pmfs), width), dtype=np.int32)
    for t, p in enumerate(pmfs):
        table[t, : len(p)] = p
    return CdfTables(
        pmf=table,
        length=np.array([len(p) for p in pmfs], dtype=np.int32),
        offset=np.array(offsets, dtype=np.int32),
    )
