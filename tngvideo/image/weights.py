"""The image model's weights file: `save_weights` / `load_weights` of a `TNGImageModel`, its
config and its one set of integer entropy tables (the file format, the tables and the hash are
`tngvideo.latent.weights`)."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import torch

from tngvideo.image.model import TNGImageModel
from tngvideo.latent.weights import (
    EntropyTables,
    build_tables,
    config_from_json,
    config_json,
    read_weights_file,
    rounded_to_half,
    write_weights_file,
)

@dataclass(frozen=True)
class LoadedModel:
    model: TNGImageModel
    tables: EntropyTables | None
    name: str
    weights_hash: bytes  # first 8 bytes of the SHA-256 of the weights file


def save_weights(
    model: TNGImageModel, path: str | os.PathLike, *, name: str, tables: EntropyTables | None, half: bool = False
) -> None:
    """Write weights (fp32, or fp16 to ship) and the entropy tables to `path` atomically.

    With `half`, the tables are built here from the fp16-rounded model (what is actually
    stored), so pass `tables=None`.
    """
    if half:
        model = rounded_to_half(model)
        tables = build_tables(model)
    write_weights_file(path, model, tables={"": tables} if tables is not None else {},
                       metadata={"name": name, "config": json.dumps(config_json(model.config))}, half=half)


def load_weights(path: str | os.PathLike, *, device: str | torch.device = "cpu") -> LoadedModel:
    f = read_weights_file(path, ("",))
    model = TNGImageModel(config_from_json(json.loads(f.metadata["config"])))
    model.load_state_dict(f.state)
    model.eval().to(device)
    return LoadedModel(model=model, tables=f.tables.get(""), name=f.metadata.get("name", Path(path).stem),
                       weights_hash=f.weights_hash)
