"""Where the training and benchmark data live: one setting for every tool and config.

The data root is the environment variable TNGVIDEO_DATA, or `../shared/data` (relative to the
current directory) when it is unset. Paths in the YAML training configs may start with
`${data}`, which stands for the same root.
"""

from __future__ import annotations

import os
from pathlib import Path

ENV_VAR = "TNGVIDEO_DATA"
DEFAULT_ROOT = "../shared/data"
PLACEHOLDER = "${data}"


def data_root() -> Path:
    """The data root: $TNGVIDEO_DATA, or ../shared/data relative to the current directory."""
    return Path(os.environ.get(ENV_VAR) or DEFAULT_ROOT)


def data_path(*parts: str) -> Path:
    """A path under the data root, e.g. `data_path("kodak")` or `data_path("video", "dev")`."""
    return data_root().joinpath(*parts)


def expand_data(value):
    """`value` with a leading `${data}` of each string (also inside lists and mappings) replaced
    by the data root; everything else as it is."""
    if isinstance(value, str):
        if value == PLACEHOLDER or value.startswith(PLACEHOLDER + "/"):
            return str(data_path(value[len(PLACEHOLDER):].lstrip("/")))
        return value
    if isinstance(value, list):
        return [expand_data(v) for v in value]
    if isinstance(value, dict):
        return {k: expand_data(v) for k, v in value.items()}
    return value
