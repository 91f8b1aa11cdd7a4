"""Fuzzing the decoders: mutated `.tng` / `.tngv` files through the same CLI path users run.

Every case runs in a worker process (the parent enforces a time limit and kills a worker that
exceeds it; a worker whose peak memory passes the budget is replaced) and ends in one of:

    decoded       the mutation did not matter (e.g. it hit container padding) and output is complete
    rejected      a clear one-line error, exit code 3, and no output file left behind
    crash         a traceback, a wrong exit code, or a dead worker
    hang          the time limit passed
    memory        the worker's peak memory passed the budget
    half-written  an error, but an output (or a temporary file) was left behind
    escaped       a crafted playlist decoded: what it names lies outside its folder or behind a protocol
    network       something connected to the worker's local listener

Besides random mutations (bit flips, byte runs, truncation, splices, lying lengths), structured
attacks play a hostile user: `bigclaim` (a real stream under a header claiming both dimensions
large), `types` (sequence-header fields of the wrong type, huge numbers, deep nesting), `names`
(model names with path separators), `protocol` (playlist segments with `scheme:` prefixes, with
decoys at the literal paths) and `links` (symbolic links, `..` and absolute paths, nested lists
and renditions that lead out of the playlist's folder).

The command line's entry point is handed to `run` (`run(cases, main=tngvideo.cli.main)`): this
module sits below the CLI and never imports it.
"""

from __future__ import annotations

import io
import json
import multiprocessing as mp
import os
import random
import resource
import shutil
import socket
import struct
import tempfile
import threading
import time
import zlib
from collections import Counter
from contextlib import redirect_stderr
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Callable

from tngvideo.bitstream.packet import UNITS, read_varint

BAD = ("crash", "hang", "memory", "half-written", "escaped", "network")
MUTATIONS = ("bitflip", "byterun", "truncate", "splice", "claims")
ATTACKS = {"tng": ("bigclaim", "names"), "tngv": ("bigclaim", "types", "names", "protocol", "links")}
OUTSIDE, PORT = "{OUTSIDE}", "{PORT}"  # placeholders a worker fills in: a folder outside the case's, its listener


@dataclass(frozen=True)
class Case:
    kind: str  # "tng", "tngv" or "m3u8" (a playlist: `data` is its text)
    mutation: str
    data: bytes
    files: tuple[tuple[str, bytes], ...] = ()  # more files in the case's folder (decoys, nested lists)
    links: tuple[tuple[str, str], ...] = ()  # symbolic links in the case's folder: (name, target)
    outside: bytes = b""  # a valid file the worker puts outside the case's folder as {OUTSIDE}/secret.tngv


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
    packets: tuple[tuple[bytes, int, int], ...] = ()  # (packet, pts, duration) (tngv)


def _mutate(rng: random.Random, seed: Seed, donor: Seed, attacks: bool = True) -> Case:
    d = bytearray(seed.data)
    n = len(d)
    op = rng.choice(MUTATIONS + (ATTACKS[seed.kind] if attacks else ()))
    if op in ATTACKS[seed.kind]:
        return _attack(rng, op, seed)
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


# ---------------------------------------------------------------- structured attacks

BIG_SIZES = [(4096, 2304), (2304, 4096), (4096, 4096), (8192, 4352), (16384, 16384), (3000, 3000),
             (65535, 65535), (2**31 - 1, 2**31 - 1), (2**32 - 1, 2**32 - 1)]
WRONG_VALUES = ["176", None, 176.5, True, False, -1, 0, 10**40, -(10**40), 2**63, [], {}, [1, 0], [0, 1], [10**40, 1],
                ["x"], {"a": 1}, [1], [1, 2, 3], [[1, 2]], [1.5, 2], "[[[[", 1e308]
HEADER_KEYS = ["width", "height", "time_base", "frame_rate", "gop", "frame_count", "iframes", "iframe_pts", "models",
               "colour", "rotation", "start_pts", "version", "format"]
BAD_NAMES = ["../../../../tmp/x", "/etc/passwd", "tng-image-12/../../x", "..", ".", "", "a" * 255, "a\\b", "x:y",
             "tng-video-10/../tng-video-10", "~/x", "%s%n", "con", "tng-image-12\x00", "file:/etc/x", "http://h/x"]
PROTOCOLS = ["http:127.0.0.1:{PORT}/x.tngv", "https:127.0.0.1:{PORT}/x.tngv", "tcp:127.0.0.1:{PORT}",
             "file:{OUTSIDE}/secret.tngv", "concat:{OUTSIDE}/secret.tngv", "subfile:{OUTSIDE}/secret.tngv",
             "crypto:{OUTSIDE}/secret.tngv", "cache:{OUTSIDE}/secret.tngv", "async:file:{OUTSIDE}/secret.tngv",
             "data:application/octet-stream;base64,AAAA", "pipe:0", "ftp:127.0.0.1:{PORT}/x.tngv",
             "rtmp:127.0.0.1:{PORT}/x", "udp:127.0.0.1:{PORT}", "unix:{OUTSIDE}/sock", "fd:3",
             "HTTP:127.0.0.1:{PORT}/x.tngv", "a+b.c-d:127.0.0.1:{PORT}/x.tngv"]


def _attack(rng: random.Random, op: str, seed: Seed) -> Case:
    if seed.kind == "tng":
        return _tng_bigclaim(rng, seed) if op == "bigclaim" else _tng_names(rng, seed)
    header = json.loads(seed.data[seed.header_span[0]:seed.header_span[0] + seed.header_span[1]])
    if op == "bigclaim":
        header["width"], header["height"] = rng.choice(BIG_SIZES)
        return _tngv_case(op, json.dumps(header), seed)
    if op == "types":
        return _tngv_case(op, _wrong_header(rng, header), seed)
    if op == "names":
        role = rng.choice(["video", "image"])
        header["models"] = {**header["models"], role: rng.choice(BAD_NAMES) + rng.choice(["", ":00ff", ":"])}
        return _tngv_case(op, json.dumps(header), seed)
    return _playlist_attack(rng, op, seed)


def _tng_bigclaim(rng: random.Random, seed: Seed) -> Case:
    d = bytearray(seed.data)
    w, h = rng.choice(BIG_SIZES)
    fixed = 6 + d[5] + 8
    struct.pack_into("<II", d, fixed, min(w, 2**32 - 1), min(h, 2**32 - 1))
    return Case("tng", "bigclaim", _fix_tng_crc(d))


def _tng_names(rng: random.Random, seed: Seed) -> Case:
    d = bytes(seed.data)
    name = rng.choice(BAD_NAMES).encode("utf-8", "replace")[:255]
    body = d[:5] + bytes([len(name)]) + name + d[6 + d[5]:-4]
    return Case("tng", "names", _fix_tng_crc(bytearray(body + b"\0\0\0\0")))


def _wrong_header(rng: random.Random, header: dict) -> str:
    r = rng.random()
    if r < 0.05:
        return "[" * 100_000 + "]" * 100_000
    if r < 0.1:
        return json.dumps(header)[:-1] + ',"x":' + "9" * 5000 + "}"
    if r < 0.15:
        return json.dumps(rng.choice([[], "x", 1, None, [header]]))
    key = rng.choice(HEADER_KEYS)
    if rng.random() < 0.15:
        header.pop(key, None)
    else:
        header[key] = rng.choice(WRONG_VALUES)
    return json.dumps(header)


def _tngv_case(op: str, comment: str, seed: Seed) -> Case:
    out = io.BytesIO()
    mux_raw(out, comment, list(seed.packets))
    return Case("tngv", op, out.getvalue())


def _playlist(*uris: str) -> bytes:
    lines = ["#EXTM3U", "#EXT-X-VERSION:7", "#EXT-X-TARGETDURATION:1"]
    for u in uris:
        lines += ["#EXTINF:0.200000,", u]
    return ("\n".join(lines + ["#EXT-X-ENDLIST"]) + "\n").encode()


def _playlist_attack(rng: random.Random, op: str, seed: Seed) -> Case:
    """A media (or master) playlist whose segment leads out of its folder or behind a protocol;
    each is refused by the checks alone, since decoys make every literal path exist."""
    if op == "protocol":
        uri = rng.choice(PROTOCOLS)
        return Case("m3u8", op, _playlist(uri), files=((uri, seed.data),), outside=seed.data)
    way = rng.choice(["file-link", "dir-link", "dotdot", "absolute", "nested", "master", "link-chain", "link-loop"])
    files, links, uri = [], [], "seg.tngv"
    if way == "file-link":
        links.append(("seg.tngv", f"{OUTSIDE}/secret.tngv"))
    elif way == "dir-link":
        links.append(("sub", OUTSIDE))
        uri = "sub/secret.tngv"
    elif way == "dotdot":
        uri = rng.choice(["../outside/secret.tngv", "a/../../outside/secret.tngv", "./../outside/secret.tngv"])
    elif way == "absolute":
        uri = rng.choice([f"{OUTSIDE}/secret.tngv", f"//{OUTSIDE}/secret.tngv", "\\\\host\\x.tngv"])
    elif way == "nested":  # an HLS list where a segment should be
        uri = rng.choice(["seg.m3u8", "seg.tngv"])
        files.append((uri, _playlist(f"{OUTSIDE}/secret.tngv")))
    elif way == "master":  # a rendition playlist outside the folder
        links.append(("r0", OUTSIDE))  # the worker puts list.m3u8 there, naming secret.tngv
        return Case("m3u8", "links", b"#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=1000\nr0/list.m3u8\n",
                    links=tuple(links), outside=seed.data)
    elif way == "link-chain":
        links += [("a.tngv", "b.tngv"), ("b.tngv", f"{OUTSIDE}/secret.tngv")]
        uri = "a.tngv"
    else:
        links += [("a.tngv", "b.tngv"), ("b.tngv", "a.tngv")]
        uri = "a.tngv"
    return Case("m3u8", "links", _playlist(uri), files=tuple(files), links=tuple(links), outside=seed.data)


def mux_raw(target, comment: str, packets: list[tuple[bytes, int, int]], time_base: Fraction = Fraction(1, 25)) -> None:
    """A `.tngv` container holding any text as its sequence header (nothing validated, unlike
    `write_tngv`): for headers crafted to be wrong."""
    import av

    from tngvideo.bitstream.container import add_frame_stream, mux_frame_packets

    target = target if hasattr(target, "write") else str(target)  # a path, or a binary file object
    with av.open(target, "w", format="mp4", options={"movflags": "use_metadata_tags"}) as out:
        mux_frame_packets(out, add_frame_stream(out, comment, time_base), packets, time_base)


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
        with TngvReader(dst) as r:
            timed = tuple((p.data, p.pts, p.duration) for p in r.packets())
        out.append((tng, Seed("tngv", data, tuple(packet_spans(data, packets)),
                              (at, len(header)) if at >= 0 else None, timed)))
    return [out[0][0], out[0][1]], [out[1][0], out[1][1]]


def cases(n: int, seeds: list[Seed], donors: list[Seed], seed: int = 0, *, attacks: bool = True):
    """`n` cases, alternating seeds; each a random mutation or (with `attacks`) a structured attack."""
    rng = random.Random(seed)
    for i in range(n):
        k = i % len(seeds)
        yield _mutate(rng, seeds[k], donors[k], attacks)


# ---------------------------------------------------------------- running

class LocalListener:
    """A TCP socket on 127.0.0.1 that counts (and drops) every connection made to it, served by
    a daemon thread until `close`."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.connections = 0
        self._stop = False
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            self.connections += 1
            conn.close()

    def close(self) -> None:
        self._stop = True
        self._thread.join()
        self.sock.close()


@dataclass
class _Env:
    """A worker's surroundings: its case folder, a folder outside it, and a local listener that
    counts connections (a crafted file must never make the decoder reach it)."""

    work: Path
    outside: Path
    listener: LocalListener

    @property
    def connections(self) -> int:
        return self.listener.connections

    def fill(self, text: str) -> str:
        return text.replace(OUTSIDE, str(self.outside)).replace(PORT, str(self.listener.port))


def _clear(folder: Path) -> None:
    for p in folder.iterdir():
        if p.is_symlink() or not p.is_dir():
            p.unlink()
        else:
            shutil.rmtree(p)


def _lay_out(case: Case, env: _Env) -> Path:
    """Write the case's files into the case folder (and the outside folder); returns the input."""
    _clear(env.work)
    if case.outside:
        (env.outside / "secret.tngv").write_bytes(case.outside)
        (env.outside / "list.m3u8").write_text(f"#EXTM3U\n#EXT-X-TARGETDURATION:1\n#EXTINF:0.2,\n"
                                               f"{env.outside / 'secret.tngv'}\n#EXT-X-ENDLIST\n")
    for name, data in case.files:
        p = env.work / env.fill(name)
        if p.resolve().is_relative_to(env.work.resolve()):  # decoys at literal paths, inside only
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_bytes(data.replace(OUTSIDE.encode(), str(env.outside).encode()))
    for name, target in case.links:
        (env.work / name).symlink_to(env.fill(target))
    src = env.work / ("index.m3u8" if case.kind == "m3u8" else f"in.{case.kind}")
    src.write_bytes(env.fill(case.data.decode()).encode() if case.kind == "m3u8" else case.data)
    return src


def _run_case(case: Case, env: _Env, main: Callable[[list[str]], int]) -> tuple[str, str]:
    src = _lay_out(case, env)
    before = {p.name for p in env.work.iterdir()}
    out = env.work / ("out.png" if case.kind == "tng" else "out.mkv")
    argv = (["image", "decode"] if case.kind == "tng" else ["decode"]) + [src.name, "-o", out.name, "-q"]
    err = io.StringIO()
    connections = env.connections
    try:
        os.chdir(env.work)  # relative names, as a user in that folder types them
        with redirect_stderr(err):
            code = main(argv)
    except MemoryError:
        return "memory", "MemoryError"
    except BaseException as exc:  # anything escaping the CLI is a crash
        return "crash", f"{exc.__class__.__name__}: {exc}"
    if case.kind == "m3u8":
        time.sleep(0.02)  # let the listener's thread count a connection
    if env.connections != connections:
        return "network", f"{env.connections - connections} connection(s) to the local listener"
    msg = err.getvalue().strip()
    left = sorted(p.name for p in env.work.iterdir() if p.name not in before)
    if code == 0 and case.kind == "m3u8":
        return "escaped", "a crafted playlist decoded"
    if code == 0:
        return ("decoded", "") if left == [out.name] else ("crash", f"exit 0 but outputs {left}")
    if code != 3 or not msg.startswith("tngvideo: error:") or "\n" in msg or "Traceback" in msg:
        return "crash", f"exit {code}: {msg[:300]}"
    if left:
        return "half-written", f"left {left} after: {msg[:200]}"
    return "rejected", msg[:200]


def _worker(conn, threads: int, main: Callable[[list[str]], int]) -> None:
    import torch

    torch.set_num_threads(threads)
    with tempfile.TemporaryDirectory() as tmp:
        env = _Env(Path(tmp) / "case", Path(tmp) / "outside", LocalListener())
        env.work.mkdir()
        env.outside.mkdir()
        try:
            while True:
                case = conn.recv()
                if case is None:
                    return
                outcome, msg = _run_case(case, env, main)
                rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
                conn.send((outcome, msg, rss_mb))
        finally:
            env.listener.close()


class _Worker:
    def __init__(self, ctx, threads: int, main: Callable[[list[str]], int]):
        self.conn, child = ctx.Pipe()
        self.proc = ctx.Process(target=_worker, args=(child, threads, main), daemon=True)
        self.proc.start()

    def stop(self) -> None:
        if self.proc.is_alive():
            self.proc.kill()
        self.proc.join()


def run(case_iter, *, main: Callable[[list[str]], int], timeout: float = 30.0, memory_mb: float = 4096,
        threads: int = 1, progress: Callable[[int], None] | None = None) -> FuzzReport:
    """Run each case through `main`, the command line's entry point (`tngvideo.cli.main`, handed
    in: this module never imports the CLI), in a watched worker process; `main` must be a
    module-level function, for it travels to the worker by name."""
    ctx = mp.get_context("spawn")
    report = FuzzReport()
    t0 = time.time()
    worker = _Worker(ctx, threads, main)
    try:
        for case in case_iter:
            worker.conn.send(case)
            if worker.conn.poll(timeout + 60 * (report.cases == 0)):  # the first case also imports torch
                try:
                    outcome, msg, rss = worker.conn.recv()
                except (EOFError, OSError):
                    outcome, msg, rss = "crash", "worker died", 0
                if outcome not in BAD and rss > memory_mb:
                    outcome, msg = "memory", f"peak {rss:.0f} MB"
            else:
                outcome, msg, rss = ("crash", "worker died", 0) if not worker.proc.is_alive() else ("hang", f"> {timeout} s", 0)
            if outcome in BAD or not worker.proc.is_alive() or rss > memory_mb:
                worker.stop()
                worker = _Worker(ctx, threads, main)
            report.cases += 1
            report.outcomes[outcome] += 1
            report.by_mutation.setdefault(f"{case.kind}:{case.mutation}", Counter())[outcome] += 1
            if outcome in BAD:
                report.failures.append({"kind": case.kind, "mutation": case.mutation, "outcome": outcome, "message": msg})
            if progress:
                progress(1)
    finally:
        try:
            worker.conn.send(None) if worker.proc.is_alive() else None
        except OSError:
            pass
        worker.stop()
    report.seconds = time.time() - t0
    report.by_mutation = {k: dict(v) for k, v in report.by_mutation.items()}
    return report


