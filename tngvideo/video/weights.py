"""P-frame model weights: one safetensors file with the flow, motion, compensation and
residual networks and the integer tables of the two coded latents (motion, residual)."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import torch

from tngvideo.latent.weights import (
    EntropyTables,
    build_tables,
    config_from_json,
    config_json,
    read_weights_file,
    rounded_to_half,
    write_weights_file,
)
from tngvideo.video.model import CODER_ROLES as ROLES, PFrameModel, VideoModelConfig


@dataclass(frozen=True)
class LoadedVideoModel:
    model: PFrameModel
    tables: dict[str, EntropyTables]  # "motion", "residual"
    name: str
    weights_hash: bytes


def save_video_weights(model: PFrameModel, path: str | os.PathLike, *, name: str, half: bool = False) -> None:
    """Write the model and the tables built from exactly the stored weights."""
    if half:
        model = rounded_to_half(model)
    tables = {role: build_tables(getattr(model, role)) for role in ROLES}
    cfg = {**{role: config_json(getattr(model.config, role)) for role in ROLES},
           "flow_estimator": model.config.flow_estimator, "loop_filter": model.config.loop_filter,
           **{k: True for k in ("conditional", "motion_context") if getattr(model.config, k)}}
    write_weights_file(path, model, tables=tables, metadata={"name": name, "config": json.dumps(cfg)}, half=half)


def load_video_weights(path: str | os.PathLike, *, device: str | torch.device = "cpu") -> LoadedVideoModel:
    f = read_weights_file(path, ROLES)
    cfg = json.loads(f.metadata["config"])
    model = PFrameModel(VideoModelConfig(**{role: config_from_json(cfg[role]) for role in ROLES},
                                         flow_estimator=cfg.get("flow_estimator", "net"),
                                         loop_filter=bool(cfg.get("loop_filter", False)),
                                         conditional=bool(cfg.get("conditional", False)),
                                         motion_context=bool(cfg.get("motion_context", False))))
    model.load_state_dict(f.state)
    model.eval().to(device)
    if set(f.tables) != set(ROLES):
        raise ValueError(f"{path}: video weights without entropy tables")
    return LoadedVideoModel(model, f.tables, f.metadata.get("name", Path(path).stem), f.weights_hash)
