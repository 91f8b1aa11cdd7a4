"""Split-and-stitch encoding and catalog batches."""

import json

import pytest

from conftest import make_clip
from tngvideo.cli import main
from tngvideo.parallel import encode_parallel, plan_chunks, run_batch
from tngvideo.video import EncoderOptions
from tngvideo.videofile import encode_file


def test_chunks_start_at_gop_boundaries_and_cover_every_frame():
    for n, gop, k in [(32, 8, 4), (33, 8, 4), (10, 16, 3), (100, 7, 3), (5, 1, 8)]:
        plan = plan_chunks(n, gop, k)
        assert plan[0][0] == 0 and plan[-1][1] == n
        assert all(a % gop == 0 for a, _ in plan)
        assert all(b == c for (_, b), (c, _) in zip(plan, plan[1:]))
        assert len(plan) == min(k, -(-n // gop))
    with pytest.raises(ValueError):
        plan_chunks(0, 8, 2)


def test_parallel_encode_on_ray_is_byte_identical_to_sequential(tmp_path):
    """Also with encoder options other than the defaults: the workers get them too."""
    make_clip(tmp_path / "in.mkv", frames=16, size=(32, 48), audio=True)
    options = EncoderOptions(preset="fast", adaptive_intra=False)
    encode_file(tmp_path / "in.mkv", tmp_path / "seq.tngv", quality=3.0, gop=4, options=options)
    s = encode_file(tmp_path / "in.mkv", tmp_path / "par.tngv", quality=3.0, gop=4, workers=2, chunks=4, options=options,
                    parallel=encode_parallel)
    assert s.chunks == 4 and s.frames == 16
    assert not any("Ray is not installed" in w for w in s.warnings)  # the test extra installs Ray
    assert (tmp_path / "par.tngv").read_bytes() == (tmp_path / "seq.tngv").read_bytes()
    encode_file(tmp_path / "in.mkv", tmp_path / "default.tngv", quality=3.0, gop=4)
    assert (tmp_path / "default.tngv").read_bytes() != (tmp_path / "seq.tngv").read_bytes()


def test_the_file_workflow_is_handed_the_parallel_engine(tmp_path):
    """videofile never imports tngvideo.parallel: without an engine, chunked encoding is refused
    before anything is encoded."""
    make_clip(tmp_path / "in.mkv", frames=4, size=(16, 16))
    with pytest.raises(ValueError, match="parallel engine"):
        encode_file(tmp_path / "in.mkv", tmp_path / "par.tngv", quality=3.0, gop=2, workers=2)
    assert not (tmp_path / "par.tngv").exists()


def test_batch_reports_a_bad_input_finishes_the_rest_and_resumes(tmp_path):
    src = tmp_path / "catalog"
    src.mkdir()
    make_clip(src / "a.mkv", frames=3, size=(32, 48))
    make_clip(src / "b.mkv", frames=4, size=(32, 48), seed=5)
    (src / "broken.mp4").write_bytes(b"this is not a video")
    out = tmp_path / "out"
    entries, notes = run_batch(src, out, quality=3.0, gop=4, model=None, workers=2, use_ray=False)
    status = {e.input.split("/")[-1]: e.status for e in entries}
    assert status == {"a.mkv": "ok", "b.mkv": "ok", "broken.mp4": "failed"}
    assert (out / "a.tngv").exists() and (out / "b.tngv").exists() and not (out / "broken.tngv").exists()
    ok = [e for e in entries if e.status == "ok"]
    assert sorted(e.frames for e in ok) == [3, 4] and all(e.kbps > 0 for e in ok)
    before = (out / "a.tngv").stat().st_mtime_ns
    # the resumed run (through the CLI) skips finished outputs and still reports the bad input
    assert main(["batch", str(src), "-o", str(out), "--workers", "2", "-q"]) == 3
    lines = [json.loads(ln) for ln in (out / "manifest.jsonl").read_text().splitlines()]
    assert len(lines) == 6
    assert {(ln["input"].split("/")[-1], ln["status"]) for ln in lines[3:]} == {
        ("a.mkv", "skipped"), ("b.mkv", "skipped"), ("broken.mp4", "failed")}
    assert (out / "a.tngv").stat().st_mtime_ns == before


def test_an_interrupt_stops_the_pool_without_running_the_queued_tasks(tmp_path):
    """Ctrl-C or SIGTERM (a KeyboardInterrupt where the results arrive) stops the pool at once: the
    tasks still queued never run (waiting on the whole pool kept writing outputs after a stop)."""
    import subprocess
    import time

    from tngvideo.parallel import Engine

    calls = [((["sh", "-c", f"sleep 0.5; touch {tmp_path / f't{i}'}"],), {}) for i in range(8)]

    def on_done(i, result):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        Engine(workers=1, use_ray=False).map(subprocess.run, calls, on_done)
    time.sleep(2)
    assert len(list(tmp_path.iterdir())) <= 4  # the first, and what the pool had already handed its worker (of 8)


def test_a_chunk_of_an_encode_from_a_start_frame_is_the_sequential_encode_of_those_frames(tmp_path):
    """`encode --start N --workers K`: each worker skips the same N source frames first, so a
    chunk codes exactly what the sequential encoder codes for those frames."""
    from tngvideo.media import probe_video, read_video
    from tngvideo.parallel import encode_chunk
    from tngvideo.video.registry import load_video_codecs
    from tngvideo.videofile import encode_sequence

    make_clip(tmp_path / "in.mkv", frames=9, size=(24, 32))
    info = probe_video(tmp_path / "in.mkv")
    whole = encode_sequence(read_video(tmp_path / "in.mkv", start=3), load_video_codecs(None), width=info.width,
                            height=info.height, time_base=info.time_base, frame_rate=info.frame_rate,
                            quality=3.0, gop=2)
    chunk = encode_chunk(str(tmp_path / "in.mkv"), 2, 4, quality=3.0, gop=2, model=None, skip=3,
                         threads=__import__("torch").get_num_threads())
    assert chunk["packets"] == whole.packets[2:4]
