"""Split-and-stitch encoding on Ray (or a local process pool), and catalog batches.

A video is cut at GOP boundaries into chunks; each chunk starts with an I-frame, so it is coded
independently of the others, exactly as the sequential encoder codes those frames. The chunks'
packets are stitched into one `.tngv` that is byte-for-byte the sequential file. Ray is an
optional extra (`pip install tngvideo[ray]`); without it the same tasks run on a local process
pool. A running Ray cluster is used when an address is given.
"""

from __future__ import annotations

import json
import math
import multiprocessing as mp
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

from tngvideo.video import EncoderOptions

VIDEO_SUFFIXES = {".mp4", ".mkv", ".webm", ".avi", ".mov", ".m4v", ".y4m", ".264", ".h264", ".ts", ".mts"}


def plan_chunks(n_frames: int, gop: int, chunks: int) -> list[tuple[int, int]]:
    """[start, end) frame ranges, each starting at a GOP boundary, GOPs spread evenly."""
    if n_frames < 1 or gop < 1 or chunks < 1:
        raise ValueError("need at least one frame, GOP and chunk")
    n_gops = math.ceil(n_frames / gop)
    chunks = min(chunks, n_gops)
    bounds = [round(i * n_gops / chunks) * gop for i in range(chunks + 1)]
    return [(a, min(b, n_frames)) for a, b in zip(bounds, bounds[1:]) if a < n_frames]


def _threads() -> int:
    import torch

    return torch.get_num_threads()


def _set_threads(threads: int) -> None:
    import torch

    torch.set_num_threads(max(1, threads))


def encode_chunk(src: str, start: int, end: int, *, quality: float, gop: int, model: str | None,
                 threads: int = 1, options: EncoderOptions = EncoderOptions(), skip: int = 0) -> dict:
    """Encode frames [start, end) of the sequence as a chunk of it (runs in a worker); the
    sequence is `src` without its first `skip` frames."""
    from itertools import islice

    from tngvideo.media import probe_video, read_video
    from tngvideo.video.registry import load_video_codecs
    from tngvideo.videofile import encode_sequence

    _set_threads(threads)
    info = probe_video(src)
    codecs = load_video_codecs(model)
    frames = islice(read_video(src, max_frames=skip + end), skip + start, skip + end)
    seq = encode_sequence(frames, codecs, width=info.width, height=info.height, time_base=info.time_base,
                          frame_rate=info.frame_rate, quality=quality, gop=gop, colour=info.colour,
                          rotation=info.rotation, first_index=start, options=options)
    return {"start": start, "packets": seq.packets, "stats": seq.stats, "psnr": seq.psnr, "encode_ms": seq.encode_ms}


@dataclass
class Engine:
    """Where tasks run: Ray (local instance or a cluster) or a local process pool."""

    workers: int
    ray_address: str | None = None
    use_ray: bool = True  # False: always the local process pool
    note: str = ""

    def __post_init__(self):
        self.kind = "pool"
        if self.use_ray:
            try:
                import ray  # noqa: F401

                self.kind = "ray"
            except ImportError:
                if self.ray_address:
                    raise ValueError("--ray-address needs Ray: pip install 'tngvideo[ray]'") from None
                self.note = f"Ray is not installed: running on a local process pool of {self.workers} workers"

    def map(self, fn: Callable, calls: list[tuple[tuple, dict]], on_done: Callable[[int, object], None]) -> None:
        """Run fn(*args, **kwargs) for each call; on_done(call index, result or exception) as each ends."""
        if self.kind == "ray":
            import ray

            if not ray.is_initialized():
                if self.ray_address:
                    ray.init(address=self.ray_address, log_to_driver=False)
                else:
                    ray.init(num_cpus=self.workers, include_dashboard=False, log_to_driver=False,
                             configure_logging=False, logging_level="ERROR")
            task = ray.remote(num_cpus=1, max_retries=0)(fn)
            refs = {task.remote(*a, **k): i for i, (a, k) in enumerate(calls)}
            pending = list(refs)
            while pending:
                done, pending = ray.wait(pending, num_returns=1)
                for ref in done:
                    try:
                        on_done(refs[ref], ray.get(ref))
                    except Exception as exc:  # a failed task: the exception travels to the caller
                        on_done(refs[ref], getattr(exc, "cause", None) or exc)
        else:
            pool = ProcessPoolExecutor(max_workers=self.workers, mp_context=mp.get_context("spawn"))
            try:
                futures = {pool.submit(fn, *a, **k): i for i, (a, k) in enumerate(calls)}
                for f in as_completed(futures):
                    exc = f.exception()
                    on_done(futures[f], exc if exc is not None else f.result())
            except BaseException:  # Ctrl-C, SIGTERM: stop at once, start no queued task
                pool.shutdown(wait=False, cancel_futures=True)
                raise
            pool.shutdown()


def count_frames(src: str | Path, max_frames: int | None = None, start: int = 0) -> int:
    from tngvideo.media import read_video

    return sum(1 for _ in read_video(src, max_frames=max_frames, start=start))


def encode_parallel(src: str | Path, *, quality: float, gop: int, model: str | None, max_frames: int | None,
                    workers: int, chunks: int | None = None, ray_address: str | None = None,
                    progress: Callable[[int], None] | None = None, options: EncoderOptions = EncoderOptions(),
                    start: int = 0):
    """Encode `src` (from frame `start`) in GOP-aligned chunks on `workers` workers; returns
    (EncodedSequence, notes, chunk count)."""
    from tngvideo.media import probe_video
    from tngvideo.video.registry import load_video_codecs
    from tngvideo.video.sequence import sequence_header
    from tngvideo.videofile import EncodedSequence

    info = probe_video(src)
    n = count_frames(src, max_frames, start)
    plan = plan_chunks(n, gop, chunks or workers)
    engine = Engine(workers, ray_address)
    # Workers compute with the thread count of this process: float kernels are deterministic for a
    # given thread count, so the chunks come out exactly as the sequential encoder makes them.
    threads = _threads()
    results: dict[int, dict] = {}

    def done(i: int, res) -> None:
        if isinstance(res, BaseException):
            raise res
        results[i] = res
        if progress:
            progress(len(res["packets"]))

    calls = [((str(src), a, b), {"quality": quality, "gop": gop, "model": model, "threads": threads,
                                   "options": options, "skip": start}) for a, b in plan]
    engine.map(encode_chunk, calls, done)
    parts = [results[i] for i in range(len(plan))]
    packets = [p for r in parts for p in r["packets"]]
    stats = [s for r in parts for s in r["stats"]]
    codecs = load_video_codecs(model)
    header = sequence_header(stats, [p[1] for p in packets], codecs.model_ids(), width=info.width,
                             height=info.height, time_base=info.time_base, frame_rate=info.frame_rate, gop=gop,
                             colour=info.colour, rotation=info.rotation)
    seq = EncodedSequence(header, packets, stats, [x for r in parts for x in r["psnr"]],
                          [x for r in parts for x in r["encode_ms"]])
    notes = [engine.note] if engine.note else []
    return seq, notes, len(plan)


# ---------------------------------------------------------------- catalogs

@dataclass
class BatchEntry:
    input: str
    output: str
    status: str  # ok | failed | skipped
    frames: int = 0
    kbps: float = 0.0
    psnr: float = 0.0
    seconds: float = 0.0
    error: str = ""


def batch_inputs(list_or_dir: str | Path) -> list[Path]:
    p = Path(list_or_dir)
    if p.is_dir():
        return sorted(f for f in p.iterdir() if f.is_file() and f.suffix.lower() in VIDEO_SUFFIXES)
    lines = [ln.strip() for ln in p.read_text().splitlines()]
    return [Path(ln) if Path(ln).is_absolute() else p.parent / ln for ln in lines if ln and not ln.startswith("#")]


def _output_names(inputs: list[Path], out_dir: Path) -> list[Path]:
    """One distinct output per input: <stem>.tngv, else <stem>-1.tngv, <stem>-2.tngv, ... skipping
    any name an earlier input took (case-insensitively: d1/a.mkv, d2/a.mkv and a-1.mkv give a,
    a-1 and a-1-1)."""
    taken: set[str] = set()
    out = []
    for f in inputs:
        k, name = 0, f"{f.stem}.tngv"
        while name.casefold() in taken:
            k += 1
            name = f"{f.stem}-{k}.tngv"
        taken.add(name.casefold())
        out.append(out_dir / name)
    return out


def encode_one(src: str, dst: str, *, quality: float, gop: int, model: str | None, threads: int = 1,
               options: EncoderOptions = EncoderOptions()) -> dict:
    """One catalog item (runs in a worker); errors come back as a message, not an exception."""
    from tngvideo.videofile import encode_file

    _set_threads(threads)
    t0 = time.perf_counter()
    try:
        s = encode_file(src, dst, quality=quality, gop=gop, model=model, options=options, overwrite=False)
    except Exception as exc:  # reported in the manifest; the batch goes on
        return {"status": "failed", "error": f"{exc.__class__.__name__}: {exc}", "seconds": time.perf_counter() - t0}
    return {"status": "ok", "frames": s.frames, "kbps": s.kbps, "psnr": s.mean_psnr, "seconds": time.perf_counter() - t0}


def run_batch(list_or_dir: str | Path, out_dir: str | Path, *, quality: float, gop: int, model: str | None,
              workers: int, ray_address: str | None = None, use_ray: bool = True,
              progress: Callable[[int], None] | None = None, options: EncoderOptions = EncoderOptions()
              ) -> tuple[list[BatchEntry], list[str]]:
    """Encode every input to out_dir/<name>.tngv; append one JSON line per input to
    out_dir/manifest.jsonl. Finished outputs are skipped, so a rerun resumes."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    inputs = batch_inputs(list_or_dir)
    outputs = _output_names(inputs, out_dir)
    entries: list[BatchEntry | None] = [None] * len(inputs)
    calls, index = [], []
    for i, (src, dst) in enumerate(zip(inputs, outputs)):
        if dst.exists():
            entries[i] = BatchEntry(str(src), str(dst), "skipped")
        elif not src.is_file():
            entries[i] = BatchEntry(str(src), str(dst), "failed", error="no such file")
        else:
            calls.append(((str(src), str(dst)), {"quality": quality, "gop": gop, "model": model, "threads": 1,
                                                   "options": options}))
            index.append(i)
    manifest = (out_dir / "manifest.jsonl").open("a")

    def record(e: BatchEntry) -> None:
        manifest.write(json.dumps(asdict(e)) + "\n")
        manifest.flush()
        if progress:
            progress(1)

    for e in entries:
        if e is not None:
            record(e)
    engine = Engine(max(1, workers), ray_address, use_ray)

    def done(k: int, res) -> None:
        i = index[k]
        if isinstance(res, BaseException):
            res = {"status": "failed", "error": f"{res.__class__.__name__}: {res}"}
        entries[i] = BatchEntry(str(inputs[i]), str(outputs[i]), **res)
        record(entries[i])

    try:
        if calls:
            engine.map(encode_one, calls, done)
    finally:
        manifest.close()
    return [e for e in entries if e is not None], [engine.note] if engine.note else []
