"""Entropy coding with constriction's ANS coder: integer symbols + table indices <-> bytes.

Symbols are grouped by table and coded with one categorical model per table. Values outside
a table's range are coded as its escape symbol followed by an Elias-gamma code of the value
(zig-zag mapped) in the same ANS stream. The model probabilities come from integer tables, so
the coder sees the same numbers on every machine.
"""

from __future__ import annotations

import numpy as np
import constriction

from tngvideo.entropy.tables import PRECISION, CdfTables

_Categorical = constriction.stream.model.Categorical
_Uniform = constriction.stream.model.Uniform
_MAX_ESCAPE_BITS = 62


class CorruptStreamError(ValueError):
    """The entropy-coded data cannot be decoded."""


def _model(tables: CdfTables, t: int):
    n = int(tables.length[t])
    return _Categorical(tables.pmf[t, :n].astype(np.float64) / float(1 << PRECISION), perfect=False)


def _zigzag(v: np.ndarray) -> np.ndarray:
    return np.where(v >= 0, 2 * v, -2 * v - 1)


def _unzigzag(u: np.ndarray) -> np.ndarray:
    return np.where(u % 2 == 0, u // 2, -(u + 1) // 2)


def _encode_escapes(coder, values: np.ndarray) -> None:
    """Elias-gamma of zigzag(v)+1: bit count (uniform over 64), then the low bits 16 at a time."""
    for v in values[::-1].tolist():  # reverse: the decoder reads them in order
        u = int(_zigzag(np.int64(v))) + 1
        n = u.bit_length() - 1
        if n > _MAX_ESCAPE_BITS:
            raise ValueError(f"symbol {v} is too large to code")
        chunks = []
        rest, bits = u - (1 << n), n
        while bits > 0:
            k = min(16, bits)
            chunks.append((rest & ((1 << k) - 1), k))
            rest >>= k
            bits -= k
        for value, k in reversed(chunks):
            coder.encode_reverse(np.array([value], dtype=np.int32), _Uniform(1 << k))
        coder.encode_reverse(np.array([n], dtype=np.int32), _Uniform(64))


def _decode_escapes(coder, count: int) -> np.ndarray:
    out = np.empty(count, dtype=np.int64)
    for i in range(count):
        n = int(coder.decode(_Uniform(64), 1)[0])
        if n > _MAX_ESCAPE_BITS:
            raise CorruptStreamError("escape code out of range")
        rest, shift, bits = 0, 0, n
        while bits > 0:
            k = min(16, bits)
            rest |= int(coder.decode(_Uniform(1 << k), 1)[0]) << shift
            shift += k
            bits -= k
        out[i] = int(_unzigzag(np.int64((1 << n) + rest - 1)))
    return out


def encode_symbols(symbols: np.ndarray, indices: np.ndarray, tables: CdfTables) -> bytes:
    """Code integer `symbols` (any shape) with table `indices` (same shape) into bytes."""
    return encode_symbol_groups([(symbols, indices)], tables)


def encode_symbol_groups(groups: list[tuple[np.ndarray, np.ndarray]], tables: CdfTables) -> bytes:
    """Code several (symbols, indices) groups into one stream that `SymbolDecoder` reads group by
    group, in order: a decoder may compute a group's indices from the groups before it."""
    coder = constriction.stream.stack.AnsCoder()
    for symbols, indices in reversed(groups):  # a stack: the last group coded is read first
        sym = np.asarray(symbols, dtype=np.int64).ravel()
        idx = np.asarray(indices, dtype=np.int64).ravel()
        if sym.shape != idx.shape:
            raise ValueError("symbols and indices differ in shape")
        if sym.size and (idx.min() < 0 or idx.max() >= tables.count):
            raise ValueError("table index out of range")
        last = tables.length[idx].astype(np.int64) - 1
        cat = sym - tables.offset[idx]
        escaped = (cat < 0) | (cat >= last)
        cat = np.where(escaped, last, cat).astype(np.int32)
        _encode_escapes(coder, sym[escaped])
        for t in np.unique(idx)[::-1]:
            coder.encode_reverse(cat[idx == t], _model(tables, int(t)))
    return coder.get_compressed().astype("<u4").tobytes()


class SymbolDecoder:
    """Reads the groups of a stream from `encode_symbol_groups` one after another."""

    def __init__(self, data: bytes):
        if len(data) % 4:
            raise CorruptStreamError("entropy-coded stream length is not a whole number of words")
        words = np.frombuffer(data, dtype="<u4").astype(np.uint32)
        try:
            self._coder = constriction.stream.stack.AnsCoder(words)
        except Exception as exc:  # constriction rejects some invalid word sequences
            raise CorruptStreamError(f"invalid entropy-coded stream ({exc})") from None

    def decode(self, indices: np.ndarray, tables: CdfTables) -> np.ndarray:
        """The next group: int64 symbols shaped like `indices`."""
        idx = np.asarray(indices, dtype=np.int64)
        flat = idx.ravel()
        if flat.size and (flat.min() < 0 or flat.max() >= tables.count):
            raise ValueError("table index out of range")
        cat = np.empty(flat.shape, dtype=np.int64)
        for t in np.unique(flat):
            mask = flat == t
            cat[mask] = self._coder.decode(_model(tables, int(t)), int(mask.sum()))
        last = tables.length[flat].astype(np.int64) - 1
        sym = cat + tables.offset[flat]
        escaped = cat == last
        if escaped.any():
            sym[escaped] = _decode_escapes(self._coder, int(escaped.sum()))
        return sym.reshape(idx.shape)


def decode_symbols(data: bytes, indices: np.ndarray, tables: CdfTables) -> np.ndarray:
    """Inverse of `encode_symbols`: returns int64 symbols shaped like `indices`."""
    return SymbolDecoder(data).decode(indices, tables)
