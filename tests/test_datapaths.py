from dataclasses import asdict
from pathlib import Path

from tngvideo.datapaths import data_path, data_root, expand_data
from tngvideo.train.loop import TrainConfig
from tngvideo.train.overrides import load_config
from tngvideo.train.video_loop import VideoTrainConfig

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


def test_data_root_defaults_to_shared_data_beside_the_current_directory(monkeypatch):
    monkeypatch.delenv("TNGVIDEO_DATA", raising=False)
    assert data_root() == Path("../shared/data")
    assert data_path("kodak") == Path("../shared/data/kodak")
    assert TrainConfig().data == ["../shared/data/images/train"]


def test_tngvideo_data_moves_the_data_root(monkeypatch, tmp_path):
    monkeypatch.setenv("TNGVIDEO_DATA", str(tmp_path))
    assert data_root() == tmp_path
    assert data_path("video", "dev") == tmp_path / "video" / "dev"
    assert TrainConfig().data == [str(tmp_path / "images" / "train")]
    video = VideoTrainConfig()
    assert video.photos == [str(tmp_path / "images" / "train")] and video.clips == [str(tmp_path / "video" / "train")]
    assert expand_data({"a": ["${data}/kodak/x.png", "rel/${data}"], "b": 3}) == {
        "a": [str(tmp_path / "kodak" / "x.png"), "rel/${data}"], "b": 3}


def test_shipped_configs_load_under_the_data_root(monkeypatch, tmp_path):
    monkeypatch.setenv("TNGVIDEO_DATA", str(tmp_path))
    image = TrainConfig.from_dict(load_config(CONFIGS / "image_default.yaml", []))
    assert image.eval_images[0] == str(tmp_path / "kodak" / "kodim03.png")
    assert image.data == [str(tmp_path / "images" / "train")]
    assert (image.crop, image.batch, image.ema_decay, image.compile) == (192, 4, 0.0, True)
    video = VideoTrainConfig.from_dict(load_config(CONFIGS / "video_default.yaml", []))
    assert asdict(video) == asdict(VideoTrainConfig())
    tuned = VideoTrainConfig.from_dict(load_config(CONFIGS / "video_finetune_train2.yaml", []))
    assert all(c.startswith(str(tmp_path)) for c in tuned.clips + tuned.photos) and len(tuned.clips) == 23
