"""Training configs from YAML with KEY=VALUE overrides from the command line.

A config holds only what a run changes from the defaults of its config dataclass
(`TrainConfig`, `VideoTrainConfig`); a path that starts with `${data}` is under the data root
(`tngvideo.datapaths`).
"""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from tngvideo.datapaths import expand_data


class _Loader(yaml.SafeLoader):
    """YAML 1.1 reads `6e-5` (no dot) as a string; read it as the float everyone means."""


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*(?:\.[0-9_]*)?|\.[0-9_]+)[eE][-+]?[0-9]+$"),
    list("-+0123456789."),
)


def _load(text: str):
    return yaml.load(text, Loader=_Loader)  # noqa: S506 (a SafeLoader subclass)


def parse_overrides(items: list[str]) -> dict:
    """`KEY=VALUE` strings as a dict, each value read as YAML (numbers, booleans, lists)."""
    out = {}
    for item in items:
        key, _, value = item.partition("=")
        out[key] = _load(value)
    return out


def load_config(path: str | Path, overrides: list[str]) -> dict:
    """The YAML mapping at `path` with the overrides applied, `${data}` paths under the data root."""
    return expand_data({**(_load(Path(path).read_text()) or {}), **parse_overrides(overrides)})
