import pytest
import torch
from PIL import Image

from conftest import natural_image
from tngvideo.train.loop import TrainConfig, lr_at
from tngvideo.train.video_data import SyntheticMotion
from tngvideo.train.video_loop import VideoTrainConfig
from tngvideo.video.warp import backward_warp


def test_synthetic_motion_flow_explains_the_frame_pair(tmp_path):
    for i in range(3):
        Image.fromarray(natural_image(160, 200, seed=i)).save(tmp_path / f"p{i}.png")
    data = SyntheticMotion(sorted(tmp_path.glob("*.png")), crop=48, seed=1, max_shift=5, max_zoom=0.02,
                           max_rotation_deg=2)
    cur, ref, flow = data.batch(4)
    warped = backward_warp(ref, flow)
    err = (warped - cur).abs().mean(dim=1)
    still = (ref - cur).abs().mean(dim=1)
    # Away from the moving patch's uncovered background, the exact flow predicts the frame.
    assert torch.quantile(err.flatten(), 0.7) < 0.02
    assert err.mean() < 0.5 * still.mean()


def test_learning_rate_schedule_warms_up_and_decays():
    cfg = TrainConfig(peak_lr=1e-3, warmup_steps=10, min_lr_fraction=0.1)
    assert lr_at(cfg, 0.0, 0) == pytest.approx(1e-4)
    assert lr_at(cfg, 0.0, 100) == pytest.approx(1e-3)
    assert lr_at(cfg, 1.0, 100) == pytest.approx(1e-4)
    assert lr_at(cfg, 0.3, 100) > lr_at(cfg, 0.6, 100)


def test_unknown_training_options_are_refused():
    with pytest.raises(ValueError):
        TrainConfig.from_dict({"crop": 128, "lr": 1})
    with pytest.raises(ValueError):
        VideoTrainConfig.from_dict({"stage": "everything"})
