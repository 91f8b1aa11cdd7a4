"""Shared fixtures: a small randomly initialised model (fast) and the shipped model."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tngvideo.image.codec import ImageCodec
from tngvideo.image.model import ModelConfig, TNGImageModel
from tngvideo.image.weights import build_tables, load_weights, save_weights


@pytest.fixture(scope="session")
def tiny_weights(tmp_path_factory):
    torch.manual_seed(0)
    model = TNGImageModel(ModelConfig(channels=16, latent_channels=24))
    path = tmp_path_factory.mktemp("weights") / "tiny.safetensors"
    save_weights(model, path, name="tiny", tables=build_tables(model))
    return path


@pytest.fixture(scope="session")
def tiny_codec(tiny_weights):
    return ImageCodec(load_weights(tiny_weights))


@pytest.fixture(scope="session")
def shipped_codec():
    return ImageCodec.from_name()


def natural_image(h: int = 96, w: int = 128, seed: int = 0) -> np.ndarray:
    """A smooth synthetic picture with edges and texture (no external data)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    img = np.stack([
        128 + 80 * np.sin(xx / 9.0) * np.cos(yy / 13.0),
        100 + 0.8 * xx - 0.5 * yy,
        90 + 60 * ((xx // 24 + yy // 24) % 2),
    ], axis=-1)
    img += rng.normal(0, 6, img.shape)
    return np.clip(img, 0, 255).astype(np.uint8)
