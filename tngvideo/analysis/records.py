"""Append-only JSON records of runs (results/*.json): a list of objects, written atomically."""

from __future__ import annotations

import json
import platform
from pathlib import Path

import torch

from tngvideo.fileio import atomic_write_bytes


def append_record(path: str | Path, record: dict) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    records = json.loads(path.read_text()) if path.exists() else []
    if not isinstance(records, list):
        raise ValueError(f"{path} does not hold a list of records")
    records.append(record)
    atomic_write_bytes(path, (json.dumps(records, indent=2) + "\n").encode())


def device_description(device: str | torch.device = "cpu") -> str:
    device = torch.device(device)
    if device.type == "cuda":
        return f"{torch.cuda.get_device_name(device)}, torch {torch.__version__}"
    return f"{platform.machine()} CPU, {torch.get_num_threads()} threads, torch {torch.__version__}"
