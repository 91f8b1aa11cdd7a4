"""What the package declares: the licence of code and weights, and the torch it works with."""

from __future__ import annotations

import tomllib
from pathlib import Path

from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[1]


def test_torch_is_not_capped_and_admits_the_tested_release():
    """torch and torchvision are declared by the oldest release that works, with no upper cap:
    2.14.1 (tested) and later releases install without a resolver conflict."""
    deps = {Requirement(d).name: Requirement(d) for d in tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]}
    for name, tested, later in (("torch", "2.14.1", "2.20.0"), ("torchvision", "0.29.1", "0.35.0")):
        spec = deps[name].specifier
        assert spec.contains(tested) and spec.contains(later), (name, str(spec))
        assert not spec.contains("2.3.0" if name == "torch" else "0.18.0"), (name, str(spec))


def test_license_covers_the_code_and_the_shipped_weights():
    text = (ROOT / "LICENSE").read_text()
    assert text.startswith("MIT License") and "the tngvideo authors" in text
    assert "Permission is hereby granted, free of charge" in text
    for folder in ("tngvideo/image/weights", "tngvideo/video/weights"):
        assert folder in text and any((ROOT / folder).glob("*.safetensors"))
