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


# Keys of a weights file's training JSON that describe this run only; the rest is history.
_RUN_KEYS = ("training_state", "config", "shipped_as")


def carry_history(init_json: str | Path, out_json: str | Path) -> None:
    """Copy the history entries (earlier runs: gpu_runs, cpu_runs, entropy_fits, ...) of the
    training JSON beside the weights a run started from into the JSON beside its output."""
    init_json, out_json = Path(init_json), Path(out_json)
    if not init_json.exists() or not out_json.exists():
        return
    history = {k: v for k, v in json.loads(init_json.read_text()).items() if k not in _RUN_KEYS}
    record = json.loads(out_json.read_text())
    record.update({k: v for k, v in history.items() if k not in record})
    atomic_write_bytes(out_json, (json.dumps(record, indent=2) + "\n").encode())
