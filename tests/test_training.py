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


def _ddp_worker(rank: int, world: int, port: int, data: str, out: str) -> None:
    import os
    from pathlib import Path

    from tngvideo.image.model import ModelConfig, TNGImageModel
    from tngvideo.train.loop import TrainState, train

    os.environ.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(world),
                      MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    torch.manual_seed(rank)  # different initial weights per rank: DDP must broadcast rank 0's
    model = TNGImageModel(ModelConfig(channels=16, latent_channels=24))
    cfg = TrainConfig(data=[data], crop=64, batch=4, warmup_steps=1, eval_images=[], save_every=1000, amp=False,
                      channels_last=False)
    train(cfg, model=model, state=TrainState(), out=Path(out) / "w.safetensors", name="tiny", minutes=5,
          device=torch.device("cpu"), log_path=Path(out) / "log.jsonl", max_steps=3)
    torch.save(model.state_dict(), Path(out) / f"rank{rank}.pt")


def test_two_process_ddp_keeps_the_replicas_identical(tmp_path):
    import socket

    import torch.multiprocessing as tmp

    data = tmp_path / "photos"
    data.mkdir()
    for i in range(4):
        Image.fromarray(natural_image(96, 96, seed=i)).save(data / f"{i}.png")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    tmp.spawn(_ddp_worker, args=(2, port, str(data), str(tmp_path)), nprocs=2, join=True)
    a, b = torch.load(tmp_path / "rank0.pt"), torch.load(tmp_path / "rank1.pt")
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)  # same weights after 3 averaged updates
    torch.manual_seed(0)
    from tngvideo.image.model import ModelConfig, TNGImageModel

    init = TNGImageModel(ModelConfig(channels=16, latent_channels=24)).state_dict()
    assert any(not torch.equal(a[k], init[k]) for k in a)  # and they did train
    assert (tmp_path / "w.safetensors").exists() and (tmp_path / "log.jsonl").exists()
