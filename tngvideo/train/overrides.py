"""Training configs from YAML with KEY=VALUE overrides from the command line."""

from __future__ import annotations

from pathlib import Path

import yaml


def parse_overrides(items: list[str]) -> dict:
    """`KEY=VALUE` strings as a dict, each value read as YAML (numbers, booleans, lists)."""
    out = {}
    for item in items:
        key, _, value = item.partition("=")
        out[key] = yaml.safe_load(value)
    return out


def load_config(path: str | Path, overrides: list[str]) -> dict:
    """The YAML mapping at `path` with the overrides applied."""
    return {**(yaml.safe_load(Path(path).read_text()) or {}), **parse_overrides(overrides)}
