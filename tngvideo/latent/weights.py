"""Model weights on disk: safetensors with the config, the integer entropy tables and a hash
(the image model's `save_weights` / `load_weights` are in `tngvideo.image.weights`, the P-frame
model's in `tngvideo.video.weights`).

The entropy tables are computed once from the trained weights (`build_tables`) and stored
in the same file, so a decoder never recomputes probabilities with floats that could differ
between machines.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from safetensors import safe_open
from safetensors.numpy import load as load_numpy_bytes
from safetensors.torch import save_file

from tngvideo.entropy import CdfTables
from tngvideo.fileio import atomic_output
from tngvideo.latent.model import HyperpriorCoder, ModelConfig


@dataclass(frozen=True)
class EntropyTables:
    hyper: CdfTables  # one table per hyper-latent channel
    latent: CdfTables  # one table per entry of the Gaussian scale table


def build_tables(model: HyperpriorCoder) -> EntropyTables:
    """The explicit step that turns trained weights into integer probability tables."""
    return EntropyTables(hyper=model.hyper_density.build_tables(), latent=model.gaussian.build_tables())


def _table_tensors(prefix: str, t: CdfTables) -> dict[str, np.ndarray]:
    return {f"{prefix}.pmf": t.pmf, f"{prefix}.length": t.length, f"{prefix}.offset": t.offset}


def _tables_from(arrays: dict[str, np.ndarray], prefix: str) -> CdfTables:
    return CdfTables(
        pmf=arrays[f"{prefix}.pmf"].astype(np.int32),
        length=arrays[f"{prefix}.length"].astype(np.int32),
        offset=arrays[f"{prefix}.offset"].astype(np.int32),
    )


def rounded_to_half(module: torch.nn.Module) -> torch.nn.Module:
    """A copy whose parameters hold exactly the values fp16 storage will give back."""
    import copy

    m = copy.deepcopy(module).cpu()
    with torch.no_grad():
        for p in m.parameters():
            p.copy_(p.half().float())
    return m


def write_weights_file(path: str | os.PathLike, module: torch.nn.Module, *, tables: dict[str, EntropyTables],
                       metadata: dict[str, str], half: bool) -> None:
    """State dict (fp32 or fp16) plus integer tables under `tables.<prefix>.`, atomically."""
    tensors = {k: v.detach().to(torch.float16 if half else torch.float32).cpu().contiguous()
               for k, v in module.state_dict().items()}
    for prefix, t in tables.items():
        for part, ct in (("hyper", t.hyper), ("latent", t.latent)):
            for k, v in _table_tensors(".".join(x for x in ("tables", prefix, part) if x), ct).items():
                tensors[k] = torch.from_numpy(np.ascontiguousarray(v))
    with atomic_output(path) as tmp:
        save_file(tensors, str(tmp), metadata=metadata)


@dataclass(frozen=True)
class WeightsFile:
    state: dict[str, torch.Tensor]
    tables: dict[str, EntropyTables]  # by prefix ("" for a single model)
    metadata: dict[str, str]
    weights_hash: bytes


def read_weights_file(path: str | os.PathLike, table_prefixes: tuple[str, ...]) -> WeightsFile:
    path = Path(path)
    raw = path.read_bytes()
    with safe_open(str(path), framework="np") as f:
        meta = f.metadata() or {}
    arrays = load_numpy_bytes(raw)
    tables = {}
    for prefix in table_prefixes:
        base = ".".join(x for x in ("tables", prefix) if x)
        if f"{base}.hyper.pmf" in arrays:
            tables[prefix] = EntropyTables(hyper=_tables_from(arrays, f"{base}.hyper"),
                                           latent=_tables_from(arrays, f"{base}.latent"))
    state = {k: torch.from_numpy(v).float() for k, v in arrays.items() if not k.startswith("tables.")}
    return WeightsFile(state, tables, meta, hashlib.sha256(raw).digest()[:8])


def config_json(config: ModelConfig) -> dict:
    d = asdict(config)
    d["lambdas"] = list(d["lambdas"])
    if not d["channel_slices"]:  # written only when set: older weights re-save unchanged
        del d["channel_slices"]
    return d


def config_from_json(d: dict) -> ModelConfig:
    return ModelConfig(**{**d, "lambdas": tuple(d["lambdas"])})
