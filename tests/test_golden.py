"""Golden sizes: the shipped models' compressed size of a fixed synthetic picture and clip at
fixed qualities, pinned within 1%, so a change that silently makes files bigger (or a model
swapped without a look at its sizes) fails here. When a better model or coder is shipped on
purpose, measure again and update the numbers with the change that explains them."""

import numpy as np
import pytest

from conftest import natural_image

IMAGE_BYTES = {2.0: 696, 6.0: 2764, 9.0: 8244}  # tng-image-12, natural_image(192, 256, seed=11)
VIDEO_BYTES = {2.0: 2514, 5.0: 7690}  # tng-video-10 + tng-image-12, 6 frames of a pan, GOP 16, fixed-point reconstruction


def golden_clip() -> list[np.ndarray]:
    scene = natural_image(112, 200, seed=3)
    return [np.ascontiguousarray(scene[:, 4 * i: 4 * i + 160]) for i in range(6)]


def image_bytes(codec, q: float) -> int:
    return len(codec.compress(natural_image(192, 256, seed=11), q))


def video_bytes(codecs, q: float) -> int:
    from tngvideo.video.codec import VideoEncoder

    enc = VideoEncoder(codecs.image, codecs.pframes, width=160, height=112, quality=q, gop=16)
    return sum(len(enc.encode(f).packet) for f in golden_clip())


@pytest.mark.parametrize("q", sorted(IMAGE_BYTES))
def test_shipped_image_model_keeps_its_size_on_the_golden_picture(shipped_codec, q):
    assert shipped_codec.name == "tng-image-12"
    assert image_bytes(shipped_codec, q) == pytest.approx(IMAGE_BYTES[q], rel=0.01)


@pytest.mark.parametrize("q", sorted(VIDEO_BYTES))
def test_shipped_video_model_keeps_its_size_on_the_golden_clip(q):
    from tngvideo.video.registry import load_video_codecs

    codecs = load_video_codecs()
    assert codecs.name == "tng-video-10"
    assert video_bytes(codecs, q) == pytest.approx(VIDEO_BYTES[q], rel=0.01)
