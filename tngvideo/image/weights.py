"""Model weights on disk: safetensors with the config, the integer entropy tables and a hash.

The entropy tables are computed once from the trained weights (`build_tables`) and stored
in the same file, so a decoder never recomputes probabilities with floats that could differ
between machines.
"""

from __future__ import annotations

import hashlib
import json
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
from tngvideo.image.model import ModelConfig, TNGImageModel


@dataclass(frozen=True)
class EntropyTables:
    hyper: CdfTables  # one table per hyper-latent channel
    latent: CdfTables  # one table per entry of the Gaussian scale table


@dataclass(frozen=True)
class LoadedModel:
    model: TNGImageModel
    tables: EntropyTables | None
    name: str
    weights_hash: bytes  # first 8 bytes of the SHA-256 of the weights file


def build_tables(model: TNGImageModel) -> EntropyTables:
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


def save_weights(
    model: TNGImageModel, path: str | os.PathLike, *, name: str, tables: EntropyTables | None, half: bool = False
) -> None:
    """Write weights (fp32, or fp16 to ship) and the entropy tables to `path` atomically.

    With `half`, the tables are built by the caller from the fp16-rounded model, so pass
    `tables=None` and let this function build them from what is actually stored.
    """
    path = Path(path)
    if half:
        model = _rounded_to_half(model)
        tables = build_tables(model)
    tensors = {k: v.detach().to(torch.float16 if half else torch.float32).cpu().contiguous()
               for k, v in model.state_dict().items()}
    if tables is not None:
        for prefix, t in (("tables.hyper", tables.hyper), ("tables.latent", tables.latent)):
            tensors.update({k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in _table_tensors(prefix, t).items()})
    config = asdict(model.config)
    config["lambdas"] = list(config["lambdas"])
    with atomic_output(path) as tmp:
        save_file(tensors, str(tmp), metadata={"name": name, "config": json.dumps(config)})


def _rounded_to_half(model: TNGImageModel) -> TNGImageModel:
    import copy

    m = copy.deepcopy(model).cpu()
    with torch.no_grad():
        for p in m.parameters():
            p.copy_(p.half().float())
    return m


def load_weights(path: str | os.PathLike, *, device: str | torch.device = "cpu") -> LoadedModel:
    path = Path(path)
    raw = path.read_bytes()
    digest = hashlib.sha256(raw).digest()[:8]
    with safe_open(str(path), framework="np") as f:
        meta = f.metadata() or {}
    cfg = json.loads(meta["config"])
    cfg["lambdas"] = tuple(cfg["lambdas"])
    model = TNGImageModel(ModelConfig(**cfg))
    arrays = load_numpy_bytes(raw)
    state = {k: torch.from_numpy(v).float() for k, v in arrays.items() if not k.startswith("tables.")}
    model.load_state_dict(state)
    model.eval().to(device)
    tables = None
    if "tables.hyper.pmf" in arrays:
        tables = EntropyTables(hyper=_tables_from(arrays, "tables.hyper"), latent=_tables_from(arrays, "tables.latent"))
    return LoadedModel(model=model, tables=tables, name=meta.get("name", path.stem), weights_hash=digest)
