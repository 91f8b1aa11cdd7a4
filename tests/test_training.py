import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import make_clip, natural_image
from tngvideo.train.device_data import ClipPairs, PackedFrames, SyntheticMotion, load_photos
from tngvideo.train.loop import TrainConfig, lr_at
from tngvideo.train.overrides import load_config
from tngvideo.train.video_data import frame_folders
from tngvideo.train.video_loop import VideoTrainConfig
from tngvideo.video.warp import backward_warp


def test_synthetic_motion_flow_explains_the_frame_pair(tmp_path):
    for i in range(3):
        Image.fromarray(natural_image(160, 200, seed=i)).save(tmp_path / f"p{i}.png")
    data = SyntheticMotion(load_photos(sorted(tmp_path.glob("*.png"))), crop=48, seed=1, max_shift=5, max_zoom=0.02,
                           max_rotation_deg=2)
    cur, ref, flow = data.batch(4)
    warped = backward_warp(ref, flow)
    err = (warped - cur).abs().mean(dim=1)
    still = (ref - cur).abs().mean(dim=1)
    # Away from the moving patch's uncovered background, the exact flow predicts the frame.
    assert torch.quantile(err.flatten(), 0.7) < 0.02
    assert err.mean() < 0.5 * still.mean()


def _windows(item: np.ndarray, length: int, crop: int):
    """Every run of `length` frames of `item` (T, H, W, 3) at every place, flipped either way."""
    for a in (item, item[:, ::-1], item[:, :, ::-1], item[:, ::-1, ::-1]):
        for t in range(max(1, a.shape[0] - length + 1)):
            for y in range(a.shape[1] - crop + 1):
                for x in range(a.shape[2] - crop + 1):
                    yield a[t:t + length, y:y + crop, x:x + crop]


def test_device_crops_are_windows_of_the_items_and_follow_the_seed():
    """Each crop is a run of consecutive frames of one item at one place (flipped or not), a
    portrait item is turned to landscape, the sequence is the seed's, and every item is drawn."""
    rng = np.random.default_rng(0)
    items = [rng.integers(0, 256, (3, 20, 26, 3), dtype=np.uint8),
             rng.integers(0, 256, (2, 30, 18, 3), dtype=np.uint8),  # portrait
             rng.integers(0, 256, (3, 8, 8, 3), dtype=np.uint8)]  # smaller than a crop: dropped
    packed = PackedFrames(items, device=torch.device("cpu"), min_side=16, seed=5)
    assert len(packed) == 2 and packed.sizes.tolist() == [[3, 20, 26], [2, 18, 30]]
    crops = packed.crops(24, 2, 16)
    assert crops.dtype == torch.uint8 and crops.shape == (24, 2, 3, 16, 16)
    sources = [items[0], items[1].transpose(0, 2, 1, 3)]
    drawn = set()
    for run in crops.permute(0, 1, 3, 4, 2).numpy():
        hits = [i for i, src in enumerate(sources) if any(np.array_equal(w, run) for w in _windows(src, 2, 16))]
        assert hits, "a crop that is no window of any item"
        drawn.update(hits)
    assert drawn == {0, 1}
    again = PackedFrames(items, device=torch.device("cpu"), min_side=16, seed=5).crops(24, 2, 16)
    assert torch.equal(crops, again)
    with pytest.raises(ValueError):
        packed.crops(1, 1, 20)  # larger than the smallest kept side


def test_exported_frame_folders_train_on_the_same_frames(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    make_clip(src / "clip.mkv", frames=8, size=(40, 56))  # FFV1: lossless
    septuplet = src / "seq" / "0001"
    septuplet.mkdir(parents=True)
    for i in range(1, 12):  # im1 .. im11: numeric order, not im1, im10, im11, im2 ...
        Image.fromarray(natural_image(40, 48, seed=i)).save(septuplet / f"im{i}.png")
    assert [p.name for p in frame_folders(src)[0][1]][:3] == ["im1.png", "im2.png", "im3.png"]
    tool = Path(__file__).resolve().parents[1] / "tools" / "export_frames.py"
    out = tmp_path / "frames"
    subprocess.run([sys.executable, str(tool), str(src), "-o", str(out), "--max-frames", "6"], check=True,
                   capture_output=True)
    assert not (tmp_path / "frames.partial").exists()
    a, b = ClipPairs([src], crop=32, max_frames=6), ClipPairs([out], crop=32, max_frames=6)
    assert len(a.packed) == len(b.packed) == 2
    assert a.packed.sizes[:, 0].tolist() == [6, 6]
    assert torch.equal(a.packed.sizes, b.packed.sizes) and torch.equal(a.packed.data, b.packed.data)
    again = subprocess.run([sys.executable, str(tool), str(src), "-o", str(out)], capture_output=True, text=True)
    assert again.returncode == 2 and "exists" in again.stderr


def test_pack_photos_keeps_pixels_fits_the_budget_and_skips_disjointly(tmp_path):
    rng = np.random.default_rng(3)
    src = tmp_path / "photos"
    src.mkdir()
    for i in range(6):
        Image.fromarray(rng.integers(0, 256, (40, 56, 3), dtype=np.uint8)).save(src / f"p{i}.png")
    tool = Path(__file__).resolve().parents[1] / "tools" / "pack_photos.py"
    budget_mb = 3.5 * (40 * 56 * 3) / 1e6  # noise does not compress: room for three photos

    def run(out, *extra):
        return subprocess.run([sys.executable, str(tool), str(src), "-o", str(out), "--max-mb", str(budget_mb), *extra],
                              capture_output=True, text=True)

    assert run(tmp_path / "a").returncode == 0
    assert run(tmp_path / "b", "--skip", "3").returncode == 0
    a, b = sorted((tmp_path / "a").iterdir()), sorted((tmp_path / "b").iterdir())
    assert 1 <= len(a) <= 3 and sum(f.stat().st_size for f in a) <= budget_mb * 1e6
    assert not {f.name for f in a} & {f.name for f in b}
    for f in a + b:
        original = np.asarray(Image.open(src / (f.stem.removeprefix("photos_") + ".png")))
        assert np.array_equal(np.asarray(Image.open(f).convert("RGB")), original)
    again = run(tmp_path / "a")
    assert again.returncode == 2 and "exists" in again.stderr
    assert not (tmp_path / "a.partial").exists()


def test_packed_photos_and_clips_keep_their_quality_and_fit_the_budget(tmp_path):
    """Lossy packing for a size-limited copy: JPEG 4:4:4 photos and H.264 4:4:4 clips, read back
    the way training reads them (PIL; OpenCV without PyAV), stay close to the sources, the
    reported PSNR is the one measured here, and a tight budget cuts the frames per clip."""
    import json

    from conftest import make_clip
    from tngvideo.train.video_data import _read_with_opencv

    tools = Path(__file__).resolve().parents[1] / "tools"
    photos = tmp_path / "photos"
    photos.mkdir()
    source = natural_image(64, 80, seed=1)
    Image.fromarray(source).save(photos / "p.png")
    done = subprocess.run([sys.executable, str(tools / "pack_photos.py"), str(photos), "-o", str(tmp_path / "pp"),
                           "--max-mb", "1", "--quality", "95"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    packed = np.asarray(Image.open(tmp_path / "pp" / "photos_p.jpg"), dtype=np.float64)
    psnr = 10 * np.log10(255**2 / np.mean((packed - source) ** 2))
    report = json.loads((tmp_path / "pp" / "packing.json").read_text())
    assert psnr > 33 and report["psnr_mean"] == pytest.approx(psnr, abs=0.01)

    clips = tmp_path / "clips"
    clips.mkdir()
    frames = np.stack(make_clip(clips / "c.mkv", frames=12, size=(48, 64)))  # FFV1: the exact source

    def pack(out, mb):
        return subprocess.run([sys.executable, str(tools / "pack_clips.py"), str(clips), "-o", str(out),
                               "--max-mb", str(mb)], capture_output=True, text=True)

    done = pack(tmp_path / "pc", 1)
    assert done.returncode == 0, done.stderr
    back = np.stack(_read_with_opencv(tmp_path / "pc" / "c.mp4", 100)).astype(np.float64)
    assert back.shape == frames.shape
    psnr = 10 * np.log10(255**2 / np.mean((back - frames) ** 2))
    report = json.loads((tmp_path / "pc" / "packing.json").read_text())
    assert psnr > 33 and report["psnr_mean"] == pytest.approx(psnr, abs=0.01) and report["frames"] == 12
    full = (tmp_path / "pc" / "c.mp4").stat().st_size
    done = pack(tmp_path / "small", 0.6 * full / 1e6)
    assert done.returncode == 0, done.stderr
    cut = json.loads((tmp_path / "small" / "packing.json").read_text())
    assert 2 <= cut["frames"] < 12 and (tmp_path / "small" / "c.mp4").stat().st_size <= 0.6 * full


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
    with pytest.raises(ValueError):
        TrainConfig.from_dict({"quantization": "round"})


def test_scientific_notation_overrides_are_numbers(tmp_path):
    """YAML 1.1 would read 6e-5 as a string and the optimizer would fail on it at step 0."""
    cfg = tmp_path / "c.yaml"
    cfg.write_text("peak_lr: 8e-4\ncrop: 192\n")
    raw = load_config(cfg, ["min_lr_fraction=5e-2", "lambdas=[1e-4, 2.5E-3]", "schedule_by=time"])
    assert raw == {"peak_lr": 8e-4, "crop": 192, "min_lr_fraction": 0.05, "lambdas": [1e-4, 2.5e-3],
                   "schedule_by": "time"}
    assert TrainConfig(**{k: v for k, v in raw.items() if k != "lambdas"}).peak_lr == 8e-4


def test_quantization_modes_differ_only_in_what_synthesis_sees_during_training():
    from tngvideo.image.model import TNGImageModel
    from tngvideo.latent.model import ModelConfig

    torch.manual_seed(0)
    model = TNGImageModel(ModelConfig(channels=16, latent_channels=24))
    y = torch.randn(2, 24, 4, 4) * 3
    model.train()
    y_mixed, _, _ = model.code_latent(y, quantization="mixed")
    y_noise, _, _ = model.code_latent(y, quantization="noise")
    mean = model.h_m(torch.round(model.h_a(y)))
    off = y_mixed - mean
    assert torch.allclose(off, torch.round(off), atol=1e-4)  # decoder-side values: rounded around the mean
    assert (y_noise - y).abs().max() <= 0.5 and (y_noise - y).abs().max() > 0.1  # noise, not rounding
    assert not torch.allclose(y_noise - y, torch.round(y_noise - y), atol=1e-3)
    model.eval()  # measuring: both modes round
    for a, b in zip(model.code_latent(y, quantization="mixed"), model.code_latent(y, quantization="noise")):
        assert torch.equal(a, b)


def _ddp_worker(rank: int, world: int, port: int, data: str, out: str) -> None:
    import os
    from pathlib import Path

    from tngvideo.image.model import TNGImageModel
    from tngvideo.latent.model import ModelConfig
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
    from tngvideo.image.model import TNGImageModel
    from tngvideo.latent.model import ModelConfig

    init = TNGImageModel(ModelConfig(channels=16, latent_channels=24)).state_dict()
    assert any(not torch.equal(a[k], init[k]) for k in a)  # and they did train
    assert (tmp_path / "w.safetensors").exists() and (tmp_path / "log.jsonl").exists()


def test_a_new_lambda_table_keeps_every_rate_the_old_one_had():
    """Re-mapping the gains to another lambda table (training resumed over a wider range) keeps
    every weight, and the gains at any old lambda are where the new table puts that lambda."""
    from tngvideo.image.model import TNGImageModel
    from tngvideo.latent.model import ModelConfig, with_lambdas

    torch.manual_seed(0)
    old = TNGImageModel(ModelConfig(channels=16, latent_channels=24,
                                    lambdas=(0.0018, 0.0035, 0.0067, 0.013, 0.025, 0.0483, 0.0932, 0.18)))
    with torch.no_grad():
        old.log_gain.add_(0.3 * torch.randn_like(old.log_gain))  # trained gains are not log-linear
    lams = old.config.lambdas  # the old levels, the midpoints between them and two lower levels
    wider = tuple(sorted(lams + tuple((a * b) ** 0.5 for a, b in zip(lams, lams[1:])) + (0.00045, 0.0009)))
    new = with_lambdas(old, wider)
    assert new.config.lambdas == wider and new.config.levels == 17
    for name, p in old.state_dict().items():
        if name not in ("log_gain", "log_inv_gain"):
            assert torch.equal(p, new.state_dict()[name])
    for q in (1.0, 2.5, 4.0, 7.3, 8.0):
        q_new = new.quality_for_lambda(old.lambda_at(q))
        assert new.lambda_at(q_new) == pytest.approx(old.lambda_at(q), rel=1e-3)
        g_old, g_new = old.gains(torch.tensor([q]))[0], new.gains(torch.tensor([q_new]))[0]
        assert torch.allclose(g_old, g_new, rtol=1e-4)
    for q in (1.0, 3.21, 17.0):  # quality_for_lambda inverts lambda_at
        assert new.quality_for_lambda(new.lambda_at(q)) == q
    assert new.quality_for_lambda(1e-9) == 1.0 and new.quality_for_lambda(10.0) == 17.0


def test_clip_runs_are_consecutive_frames_at_one_crop(tmp_path):
    from conftest import make_clip

    src = np.stack(make_clip(tmp_path / "c.mkv", frames=6, size=(40, 56)))  # lossless: frames known
    clips = ClipPairs([tmp_path], crop=24, seed=3)
    frames = clips.clips(5, 4)
    assert len(frames) == 4 and frames[0].shape == (5, 3, 24, 24)
    run = torch.stack(frames, 1).mul(255).round().to(torch.uint8).permute(0, 1, 3, 4, 2).numpy()
    for sample in run:  # find where each run sits in the source, flipped or not
        assert any(np.array_equal(w, sample) for w in _windows(src, 4, 24)), "a run that is not 4 consecutive frames of one crop"


def test_video_training_rollout_runs_and_saves_loadable_weights(tmp_path):
    """Joint training over rollouts of 2 P-frames (each predicted from the last reconstruction)
    takes steps, trains an added loop filter (at its own learning rate) and writes weights and a
    training state that load again."""
    import json

    from conftest import make_clip
    from tngvideo.image.model import TNGImageModel
    from tngvideo.latent.model import ModelConfig
    from tngvideo.train.loop import TrainState
    from tngvideo.train.video_loop import train_video
    from tngvideo.video.model import PFrameModel, VideoModelConfig, with_loop_filter
    from tngvideo.video.weights import load_video_weights

    for i in range(2):
        Image.fromarray(natural_image(160, 160, seed=i)).save(tmp_path / f"p{i}.png")
    (tmp_path / "clips").mkdir()
    make_clip(tmp_path / "clips" / "c.mkv", frames=5, size=(64, 64))
    small = ModelConfig(channels=16, latent_channels=24)
    cfg = VideoTrainConfig(stage="joint", photos=[str(tmp_path)], clips=[str(tmp_path / "clips")], crop=64, batch=2,
                           synthetic_fraction=0.0, rollout=2, amp=False, save_every=1000, filter_lr_scale=10.0)
    torch.manual_seed(0)
    model = with_loop_filter(PFrameModel(VideoModelConfig(motion=small, residual=small)))
    last = model.filter.tail[-1].weight
    assert not last.abs().max() > 0  # a new filter starts as the identity
    state = train_video(cfg, model=model, image_model=TNGImageModel(small), state=TrainState(),
                        out=tmp_path / "v.safetensors", name="tiny-video", minutes=5, device=torch.device("cpu"),
                        log_path=tmp_path / "log.jsonl", max_steps=2)
    assert state.steps == 2 and last.abs().max() > 0
    loaded = load_video_weights(tmp_path / "v.safetensors").model
    assert loaded.config == model.config and loaded.config.loop_filter
    assert torch.equal(loaded.filter.tail[-1].weight, last.detach())
    saved = json.loads((tmp_path / "v.json").read_text())
    assert saved["config"]["rollout"] == 2 and saved["training_state"]["steps"] == 2


def test_compiled_training_step_matches_eager():
    """The `compile` option's path: the RD loss and its gradients through torch.compile equal
    the eager ones (eval mode, so both round instead of drawing noise)."""
    from tngvideo.image.model import TNGImageModel
    from tngvideo.latent.model import ModelConfig
    from tngvideo.train.loop import rd_loss

    torch.manual_seed(0)
    model = TNGImageModel(ModelConfig(channels=8, latent_channels=12)).eval()
    x = torch.rand(2, 3, 64, 64)
    q = torch.tensor([1.5, 8.0])

    def loss_and_grads(fn):
        model.zero_grad()
        loss = fn(model, x, q, False)[0]
        loss.backward()
        return loss.detach(), [p.grad.clone() for p in model.parameters()]

    eager_loss, eager_grads = loss_and_grads(rd_loss)
    compiled_loss, compiled_grads = loss_and_grads(torch.compile(rd_loss))
    assert torch.allclose(compiled_loss, eager_loss, rtol=1e-4)
    for a, b in zip(compiled_grads, eager_grads):
        assert torch.allclose(a, b, rtol=1e-3, atol=1e-6 * float(b.abs().max()) + 1e-9)


def test_motion_stage_trains_only_the_motion_coder_with_dis_flow(tmp_path):
    """Stage "motion" with the DIS estimator: the motion coder's weights move, nothing else does,
    and the saved weights remember the estimator."""
    from conftest import make_clip
    from tngvideo.image.model import TNGImageModel
    from tngvideo.latent.model import ModelConfig
    from tngvideo.train.loop import TrainState
    from tngvideo.train.video_loop import train_video
    from tngvideo.video.model import PFrameModel, VideoModelConfig
    from tngvideo.video.weights import load_video_weights

    for i in range(2):
        Image.fromarray(natural_image(160, 160, seed=i)).save(tmp_path / f"p{i}.png")
    (tmp_path / "clips").mkdir()
    make_clip(tmp_path / "clips" / "c.mkv", frames=4, size=(64, 64))
    small = ModelConfig(channels=16, latent_channels=24)
    cfg = VideoTrainConfig(stage="motion", photos=[str(tmp_path)], clips=[str(tmp_path / "clips")], crop=64,
                           batch=2, synthetic_fraction=0.0, amp=False, save_every=1000, warmup_steps=1)
    torch.manual_seed(0)
    model = PFrameModel(VideoModelConfig(motion=small, residual=small, flow_estimator="dis"))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    train_video(cfg, model=model, image_model=TNGImageModel(small), state=TrainState(),
                out=tmp_path / "v.safetensors", name="tiny-video", minutes=5, device=torch.device("cpu"),
                log_path=tmp_path / "log.jsonl", max_steps=3)
    after = model.state_dict()
    moved = {k for k in before if not torch.equal(before[k], after[k])}
    assert moved and all(k.startswith("motion.") for k in moved)
    assert load_video_weights(tmp_path / "v.safetensors").model.config.flow_estimator == "dis"
    assert all(p.requires_grad for p in model.parameters())


def test_a_non_finite_video_loss_is_skipped_not_stepped(tmp_path, monkeypatch):
    """A NaN loss must not reach the weights (it would poison every one): the update is
    skipped on the device, counted in the log, and training goes on."""
    import json

    from conftest import make_clip
    from tngvideo.image.model import TNGImageModel
    from tngvideo.latent.model import ModelConfig
    from tngvideo.train import video_loop
    from tngvideo.train.loop import TrainState
    from tngvideo.video.model import PFrameModel, VideoModelConfig

    for i in range(2):
        Image.fromarray(natural_image(160, 160, seed=i)).save(tmp_path / f"p{i}.png")
    (tmp_path / "clips").mkdir()
    make_clip(tmp_path / "clips" / "c.mkv", frames=4, size=(64, 64))
    real, calls = video_loop.rollout_loss, []

    def first_nan(*args, **kwargs):
        loss, figures = real(*args, **kwargs)
        calls.append(1)
        return (loss * float("nan") if len(calls) == 2 else loss), figures  # call 1 counts the step's operations

    monkeypatch.setattr(video_loop, "rollout_loss", first_nan)
    small = ModelConfig(channels=16, latent_channels=24)
    cfg = VideoTrainConfig(stage="joint", photos=[str(tmp_path)], clips=[str(tmp_path / "clips")], crop=64,
                           batch=2, synthetic_fraction=0.0, amp=False, save_every=1000)
    torch.manual_seed(0)
    model = PFrameModel(VideoModelConfig(motion=small, residual=small))
    before = [p.detach().clone() for p in model.parameters()]
    state = video_loop.train_video(cfg, model=model, image_model=TNGImageModel(small), state=TrainState(),
                                   out=tmp_path / "v.safetensors", name="tiny-video", minutes=5,
                                   device=torch.device("cpu"), log_path=tmp_path / "log.jsonl", max_steps=2)
    assert state.steps == 2
    assert all(torch.isfinite(p).all() for p in model.parameters())
    assert any(not torch.equal(a, b) for a, b in zip(before, model.parameters()))  # the second step trained
    assert json.loads((tmp_path / "log.jsonl").read_text().splitlines()[-1])["skipped"] == 1


def test_rollouts_estimate_motion_against_the_previous_source_frame():
    """As in the encoder: flow from each frame to the previous *source* frame, prediction from the
    previous reconstruction."""
    from tngvideo.image.model import TNGImageModel
    from tngvideo.latent.model import ModelConfig
    from tngvideo.train.video_loop import rollout_loss
    from tngvideo.video.model import PFrameModel, VideoModelConfig

    small = ModelConfig(channels=16, latent_channels=24)
    torch.manual_seed(0)
    model = PFrameModel(VideoModelConfig(motion=small, residual=small))
    seen = []
    real = model.estimate_flow
    model.estimate_flow = lambda x, ref: (seen.append(ref), real(x, ref))[1]
    frames = [torch.rand(2, 3, 64, 64) for _ in range(3)]
    loss, _ = rollout_loss(model, TNGImageModel(small), frames, torch.tensor([2.0, 7.0]), amp=False)
    assert torch.isfinite(loss)
    assert len(seen) == 2 and all(ref is frames[i] for i, ref in enumerate(seen))


def test_rollouts_code_each_frame_at_its_place_in_the_quality_cascade():
    """With a cascade the I-frame is coded at the lambda of q + intra_offset and the k-th P-frame
    at q + p_offsets[(k - 1) % n], held to the model's range, as the encoder codes them."""
    from tngvideo.image.model import TNGImageModel
    from tngvideo.latent.model import ModelConfig
    from tngvideo.train.video_loop import rollout_loss
    from tngvideo.video.model import PFrameModel, VideoModelConfig

    small = ModelConfig(channels=16, latent_channels=24)
    torch.manual_seed(0)
    model, image = PFrameModel(VideoModelConfig(motion=small, residual=small)), TNGImageModel(small)
    p_seen, i_seen = [], []
    real_p, real_i = model.forward, image.forward
    model.forward = lambda x, ref, q, **kw: (p_seen.append(q.tolist()), real_p(x, ref, q, **kw))[1]
    image.forward = lambda x, q, **kw: (i_seen.append(q.tolist()), real_i(x, q, **kw))[1]
    frames = [torch.rand(2, 3, 64, 64) for _ in range(5)]
    hi = small.max_quality
    rollout_loss(model, image, frames, torch.tensor([2.0, hi - 0.5]), amp=False, intra_offset=1.0, p_offsets=(0.0, -1.0))
    assert p_seen == [[2.0, hi - 0.5], [1.0, hi - 1.5], [2.0, hi - 0.5], [1.0, hi - 1.5]]
    want_i = [image.quality_for_lambda(model.residual.lambda_at(v)) for v in (3.0, hi)]
    assert i_seen == [pytest.approx(want_i)]
