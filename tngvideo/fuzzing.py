"""Fuzzing the decoders: mutated `.tng` / `.tngv` files through the same CLI path users run.

Every case runs in a worker process (the parent enforces a time limit and kills a worker that
exceeds it; a worker whose peak memory passes the budget is replaced) and ends in one of:

    decoded       the mutation did not matter (e.g. it hit container padding) and output is complete
    rejected      a clear one-line error, exit code 3, and no output file left behind
    crash         a traceback, a wrong exit code, or a dead worker
    hang          the time limit passed
    memory        the worker's peak memory passed the budget
    half-written  an error, but an output (or a temporary file) was left behind
"""

from __future__ import annotations

import io
import json
import multiprocessing as mp
import random
import resource
import struct
import tempfile
import time
import zlib
from collections import Counter
from contextlib import redirect_stderr
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Callable

from tngvideo.bitstream.packet import UNITS, read_varint

BAD = ("crash", "hang", "memory", "half-written")


@dataclass(frozen=True)
class Case:
    kind: str  # "tng" or "tngv"
    mutation: str
    data: bytes


@dataclass
class FuzzReport:
    cases: int = 0
    outcomes: Counter = field(default_factory=Counter)
    by_mutation: dict = field(default_factory=dict)
    failures: list[dict] = field(default_factory=list)  # the bad cases, with their messages
    seconds: float = 0.0

    @property
    def bad(self) -> int:
        return sum(self.outcomes[o] for o in BAD)

    def to_json(self) -> dict:
        return {"cases": self.cases, "outcomes": dict(self.outcomes), "by_mutation": self.by_mutation,
                "bad": self.bad, "failures": self.failures[:50], "seconds": round(self.seconds, 1)}


# ---------------------------------------------------------------- seeds and mutations

def _fix_tng_crc(data: bytearray) -> bytes:
    return bytes(data[:-4]) + struct.pack("<I", zlib.crc32(bytes(data[:-4])))


def packet_spans(tngv: bytes, packets: list[bytes]) -> list[tuple[int, int]]:
    """(offset, length) of each frame packet inside the container file."""
    spans, pos = [], 0
    for p in packets:
        at = tngv.find(p, pos)
        if at < 0:
            raise ValueError("packet not found in the container")
        spans.append((at, len(p)))
        pos = at + len(p)
    return spans


@dataclass(frozen=True)
class Seed:
    kind: str
    data: bytes
    spans: tuple[tuple[int, int], ...] = ()  # packet positions (tngv)
    header_span: tuple[int, int] | None = None  # JSON sequence header position (tngv)


def _mutate(rng: random.Random, seed: Seed, donor: Seed) -> Case:
    d = bytearray(seed.data)
    n = len(d)
    ops = ["bitflip", "byterun", "truncate", "splice", "claims"]
    op = rng.choice(ops)
    if op == "bitflip":
        for _ in range(rng.randint(1, 8)):
            i = rng.randrange(n)
            d[i] ^= 1 << rng.randrange(8)
    elif op == "byterun":
        i = rng.randrange(n)
        run = rng.randint(1, 64)
        fill = rng.choice([None, 0x00, 0xFF])
        for j in range(i, min(n, i + run)):
            d[j] = rng.randrange(256) if fill is None else fill
    elif op == "truncate":
        cuts = [rng.randrange(n)]
        for off, ln in seed.spans:  # at a packet boundary, or inside a packet
            cuts += [off, off + ln, off + rng.randrange(max(1, ln))]
        d = d[: rng.choice(cuts)]
    elif op == "splice":
        if seed.kind == "tngv" and seed.spans and donor.spans:
            off, ln = rng.choice(seed.spans)
            doff, dln = rng.choice(donor.spans)
            piece = donor.data[doff : doff + dln][:ln].ljust(ln, b"\0")  # keep the container's sizes
            d[off : off + ln] = piece
        else:
            cut = rng.randrange(n)
            d = d[:cut] + bytearray(donor.data[cut:])
    else:  # claims: headers that lie about sizes, counts and lengths, with valid checksums
        return _claims(rng, seed, d)
    return Case(seed.kind, op, bytes(d))


def _claims(rng: random.Random, seed: Seed, d: bytearray) -> Case:
    huge = rng.choice([0, 1, 4352, 8192, 16384, 2**15, 2**16 + 1, 2**24, 2**31 - 1, 2**32 - 1])
    if seed.kind == "tng":
        name_len = d[5]
        fixed = 6 + name_len + 8  # width at +0, height +4, quality +8, hyper len +10, latent len +14
        field_at = rng.choice([fixed, fixed + 4, fixed + 10, fixed + 14])
        struct.pack_into("<I", d, field_at, huge)
        return Case("tng", "claims", _fix_tng_crc(d))
    if rng.random() < 0.5 and seed.header_span:
        off, ln = seed.header_span
        header = json.loads(bytes(d[off : off + ln]))
        key = rng.choice(["width", "height", "frame_count", "gop", "iframes", "time_base"])
        header[key] = [huge, 1] if key == "time_base" else ([0, huge] if key == "iframes" else huge)
        text = json.dumps(header, separators=(",", ":")).encode()
        text = text[:ln].ljust(ln, b" ")  # same length: the container's atom sizes stay valid
        d[off : off + ln] = text
        return Case("tngv", "claims", bytes(d))
    off, ln = rng.choice(seed.spans)  # a frame packet claiming a sub-stream length it does not have
    pk = bytearray(d[off : off + ln])
    start, end = rng.choice(_length_fields(pk))
    pk[start:end] = b"\xff" * (end - start - 1) + b"\x7f"  # the largest number of that width: same packet size
    struct.pack_into("<I", pk, ln - 4, zlib.crc32(bytes(pk[:-4])))
    d[off : off + ln] = pk
    return Case("tngv", "claims", bytes(d))


def _length_fields(pk: bytes) -> list[tuple[int, int]]:
    """(start, end) of each sub-stream length varint in a version-2 frame packet's header."""
    end = len(pk) - 4
    pos = read_varint(pk, read_varint(pk, 1, end)[1], end)[1]  # after the type byte, quality, frame index
    fields = []
    for _ in range(UNITS[pk[0] & 0x0F]):
        for _ in range(2):  # hyper-latent length, latent length
            start, pos = pos, read_varint(pk, pos, end)[1]
            fields.append((start, pos))
        pos += 4  # symbols CRC
    return fields


def mux_raw(target, comment: str, packets: list[tuple[bytes, int, int]], time_base: Fraction = Fraction(1, 25)) -> None:
    """A `.tngv` container holding any text as its sequence header (nothing validated, unlike
    `write_tngv`): for headers crafted to be wrong."""
    import av

    from tngvideo.bitstream.passthrough import TNGV_HANDLER

    with av.open(str(target), "w", format="mp4", options={"movflags": "use_metadata_tags"}) as out:
        out.metadata["comment"] = comment
        stream = out.add_data_stream("bin_data")
        stream.time_base = time_base
        stream.metadata["handler_name"] = TNGV_HANDLER
        for data, pts, duration in packets:
            pk = av.Packet(data)
            pk.pts = pk.dts = pts
            pk.duration = max(1, duration)
            pk.time_base = time_base
            pk.stream = stream
            out.mux(pk)


def make_seeds(workdir: Path) -> tuple[list[Seed], list[Seed]]:
    """Two small files of each kind, made with the shipped models: (seeds, donors)."""
    import numpy as np

    from tngvideo.bitstream.container import TngvReader
    from tngvideo.image.codec import ImageCodec
    from tngvideo.media import VideoFrame, write_video
    from tngvideo.videofile import encode_file

    rng = np.random.default_rng(0)
    codec = ImageCodec.from_name()
    out = []
    for s in range(2):
        yy, xx = np.mgrid[0:40, 0:56]
        base = np.stack([128 + 60 * np.sin(xx / (5 + s)), 90 + 2 * yy, 100 + xx], -1) + rng.normal(0, 5, (40, 56, 3))
        frames = [VideoFrame(np.clip(np.roll(base, 2 * i, 1), 0, 255).astype(np.uint8), i, 1) for i in range(5)]
        tng = Seed("tng", codec.compress(frames[0].rgb, 3.0 + s))
        src, dst = workdir / f"src{s}.mkv", workdir / f"seed{s}.tngv"
        write_video(src, frames, width=56, height=40, time_base=Fraction(1, 25), frame_rate=Fraction(25))
        encode_file(src, dst, quality=3.0 + s, gop=3)
        data = dst.read_bytes()
        with TngvReader(dst) as r:
            packets = [p.data for p in r.packets()]
            header = r.header.to_json().encode()
        at = data.find(header)
        out.append((tng, Seed("tngv", data, tuple(packet_spans(data, packets)),
                              (at, len(header)) if at >= 0 else None)))
    return [out[0][0], out[0][1]], [out[1][0], out[1][1]]


def cases(n: int, seeds: list[Seed], donors: list[Seed], seed: int = 0):
    rng = random.Random(seed)
    for i in range(n):
        k = i % len(seeds)
        yield _mutate(rng, seeds[k], donors[k])


# ---------------------------------------------------------------- running

def _run_case(case: Case, workdir: Path) -> tuple[str, str]:
    from tngvideo.cli import main

    for p in workdir.iterdir():
        p.unlink()
    src = workdir / f"in.{case.kind}"
    src.write_bytes(case.data)
    out = workdir / ("out.png" if case.kind == "tng" else "out.mkv")
    argv = (["image", "decode"] if case.kind == "tng" else ["decode"]) + [str(src), "-o", str(out), "-q"]
    err = io.StringIO()
    try:
        with redirect_stderr(err):
            code = main(argv)
    except MemoryError:
        return "memory", "MemoryError"
    except BaseException as exc:  # anything escaping the CLI is a crash
        return "crash", f"{exc.__class__.__name__}: {exc}"
    msg = err.getvalue().strip()
    left = sorted(p.name for p in workdir.iterdir() if p.name != src.name)
    if code == 0:
        return ("decoded", "") if left == [out.name] else ("crash", f"exit 0 but outputs {left}")
    if code != 3 or not msg.startswith("tngvideo: error:") or "\n" in msg or "Traceback" in msg:
        return "crash", f"exit {code}: {msg[:300]}"
    if left:
        return "half-written", f"left {left} after: {msg[:200]}"
    return "rejected", msg[:200]


def _worker(conn, threads: int) -> None:
    import torch

    torch.set_num_threads(threads)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        while True:
            case = conn.recv()
            if case is None:
                return
            outcome, msg = _run_case(case, work)
            rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
            conn.send((outcome, msg, rss_mb))


class _Worker:
    def __init__(self, ctx, threads: int):
        self.conn, child = ctx.Pipe()
        self.proc = ctx.Process(target=_worker, args=(child, threads), daemon=True)
        self.proc.start()

    def stop(self) -> None:
        if self.proc.is_alive():
            self.proc.kill()
        self.proc.join()


def run(case_iter, *, timeout: float = 30.0, memory_mb: float = 4096, threads: int = 1,
        progress: Callable[[int], None] | None = None) -> FuzzReport:
    ctx = mp.get_context("spawn")
    report = FuzzReport()
    t0 = time.time()
    worker = _Worker(ctx, threads)
    try:
        for case in case_iter:
            worker.conn.send(case)
            if worker.conn.poll(timeout + 60 * (report.cases == 0)):  # the first case also imports torch
                try:
                    outcome, msg, rss = worker.conn.recv()
                except EOFError:
                    outcome, msg, rss = "crash", "worker died", 0
                if outcome not in BAD and rss > memory_mb:
                    outcome, msg = "memory", f"peak {rss:.0f} MB"
            else:
                outcome, msg, rss = ("crash", "worker died", 0) if not worker.proc.is_alive() else ("hang", f"> {timeout} s", 0)
            if outcome in BAD or not worker.proc.is_alive() or rss > memory_mb:
                worker.stop()
                worker = _Worker(ctx, threads)
            report.cases += 1
            report.outcomes[outcome] += 1
            report.by_mutation.setdefault(f"{case.kind}:{case.mutation}", Counter())[outcome] += 1
            if outcome in BAD:
                report.failures.append({"kind": case.kind, "mutation": case.mutation, "outcome": outcome, "message": msg})
            if progress:
                progress(1)
    finally:
        worker.conn.send(None) if worker.proc.is_alive() else None
        worker.stop()
    report.seconds = time.time() - t0
    report.by_mutation = {k: dict(v) for k, v in report.by_mutation.items()}
    return report


