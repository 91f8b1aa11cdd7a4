"""Per-frame rate-distortion analysis of tngvideo (and classic codecs for comparison).

Metrics: PSNR-RGB and PSNR-Y (BT.601 luma) computed here with NumPy, MS-SSIM from
pytorch-msssim (NaN for frames under 161 pixels on a side), BD-rate with PCHIP
(`tngvideo.analysis.bdrate`).
"""

from __future__ import annotations

import base64
import bisect
import csv
import html
import io
import json
import math
import tempfile
import time
from dataclasses import asdict, dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Callable

import numpy as np

from tngvideo.analysis.bdrate import bd_rate
from tngvideo.metrics import ms_ssim, psnr, psnr_y
from tngvideo.analysis.peers import PEERS, run_peer
from tngvideo.bitstream.container import SequenceHeader, TngvReader
from tngvideo.fileio import atomic_write_bytes
from tngvideo.errors import DecodeError
from tngvideo.media import VideoFrame, probe_video, read_video
from tngvideo.video import EncoderOptions
from tngvideo.video.registry import VideoCodecs, load_video_codecs
from tngvideo.video.sequence import SequenceDecoder, codecs_for
from tngvideo.videofile import encode_sequence

COMPONENTS = ("intra", "motion", "residual", "header")


@dataclass
class FrameRow:
    codec: str
    setting: float
    index: int
    pts: int
    time_s: float
    type: str
    bytes: int
    bits_intra: int
    bits_motion: int
    bits_residual: int
    bits_header: int
    bpp: float
    psnr_rgb: float
    psnr_y: float
    ms_ssim: float
    estimated_bits: float | None
    actual_bits: int | None
    encode_ms: float | None
    decode_ms: float | None
    motion_quality: float | None = None  # tngvideo P-frames with coded motion: the quality it is coded at


@dataclass
class Summary:
    codec: str
    setting: float
    frames: int
    file_bytes: int
    kbps: float
    bpp: float
    psnr_rgb: float
    psnr_y: float
    ms_ssim: float
    encode_fps: float
    decode_fps: float


@dataclass
class Analysis:
    source: str
    width: int
    height: int
    rows: list[FrameRow] = field(default_factory=list)
    summaries: list[Summary] = field(default_factory=list)
    bd_rate_psnr: dict[str, float] = field(default_factory=dict)  # tngvideo vs each peer
    warnings: list[str] = field(default_factory=list)
    models: dict[str, str] = field(default_factory=dict)  # tngvideo's model ids (name:weights hash)
    out_dir: Path | None = None  # where the report was written (tngvideo.analyze)


def _metrics(ref: np.ndarray, dec: np.ndarray, with_msssim: bool) -> tuple[float, float, float]:
    return psnr(ref, dec), psnr_y(ref, dec), ms_ssim(ref, dec) if with_msssim else float("nan")


def _finite_mean(values) -> float:
    v = [x for x in values if not math.isnan(x) and not math.isinf(x)]
    return float(np.mean(v)) if v else float("nan")


def _summary(codec: str, setting: float, rows: list[FrameRow], file_bytes: int, seconds: float,
             enc_s: float, dec_s: float, pixels: int) -> Summary:
    n = len(rows)
    return Summary(codec, setting, n, file_bytes, file_bytes * 8 / 1000 / max(seconds, 1e-9),
                   file_bytes * 8 / (pixels * n), _finite_mean(r.psnr_rgb for r in rows),
                   _finite_mean(r.psnr_y for r in rows), _finite_mean(r.ms_ssim for r in rows),
                   n / max(enc_s, 1e-9) if enc_s else float("nan"), n / max(dec_s, 1e-9))


@dataclass(frozen=True)
class _Decoded:
    rows: list[FrameRow]
    decode_seconds: float
    header: SequenceHeader
    seconds: float  # the scored frames' time span (first pts to the end of the last frame)
    bytes: int  # the scored frames' packet bytes
    complete: bool  # every packet of the file was scored


def _rows_from_tngv(path: Path, reference: list[VideoFrame], ref_tb: Fraction, codecs: VideoCodecs,
                    setting: float | None, enc_ms: list[float] | None, est: list[float] | None, with_msssim: bool,
                    progress: Callable[[int], None] | None) -> _Decoded:
    """Decode `path` and score each frame against the reference frame shown at the same time
    (a segment or a part of a file pairs with the right source frames); `setting` None: the
    median of the packets' qualities. Stops where the reference ends."""
    rows: list[FrameRow] = []
    times = [f.pts * ref_tb for f in reference]  # increasing
    ref_end = times[-1]
    with TngvReader(path) as r:
        h = r.header
        dec = SequenceDecoder(h, codecs)
        if h.width != reference[0].rgb.shape[1] or h.height != reference[0].rgb.shape[0]:
            raise DecodeError("reference video size differs from the coded video")
        total_dec = 0.0
        tb = Fraction(h.tb)
        span = None
        qualities = []
        half = min((b - a for a, b in zip(times, times[1:])), default=1 / Fraction(*h.frame_rate)) / 2
        complete = True
        for n, pk in enumerate(r.packets()):
            t = pk.pts * tb
            if t > ref_end + half:
                complete = False
                break
            k = bisect.bisect_left(times, t)
            k = min((i for i in (k - 1, k) if 0 <= i < len(times)), key=lambda i: abs(times[i] - t))
            if abs(times[k] - t) >= half:  # time bases may differ: the frame shown at t is the nearest
                raise DecodeError(f"frame {n} at {float(t):.3f} s: the reference has no frame at that time")
            ref_rgb = reference[k].rgb
            t0 = time.perf_counter()
            f = dec.decode(pk.data, pts=pk.pts, duration=pk.duration)  # a bad frame: DecodeError naming it
            dt = time.perf_counter() - t0
            total_dec += dt
            rec = f.record
            payload = sum(rec.bits.values())
            ps, py, ss = _metrics(ref_rgb, f.rgb, with_msssim)
            qualities.append(rec.quality)
            end = t + (pk.duration * tb if pk.duration else 1 / Fraction(*h.frame_rate))
            span = (span[0] if span else t, end)
            rows.append(FrameRow(
                "tngvideo", setting, n, pk.pts, float((pk.pts - h.start_pts) * tb), "IP"[rec.frame_type], len(pk.data),
                rec.bits.get("intra", 0), rec.bits.get("motion", 0), rec.bits.get("residual", 0), 8 * rec.header_bytes,
                len(pk.data) * 8 / (h.width * h.height), ps, py, ss,
                est[n] if est else None, payload if est else None,
                enc_ms[n] if enc_ms else None, dt * 1000, rec.motion_quality,
            ))
            if progress:
                progress(1)
    if setting is None and rows:
        for row in rows:
            row.setting = float(np.median(qualities))
    return _Decoded(rows, total_dec, h, float(span[1] - span[0]) if span else 0.0, sum(r.bytes for r in rows), complete)


def analyze(src: str | Path, *, qualities: list[float], gop: int, compare: list[str] = (), max_frames: int | None = None,
            model: str | None = None, tngv: str | Path | None = None, with_msssim: bool = True,
            progress: Callable[[int], None] | None = None, options: EncoderOptions = EncoderOptions()) -> Analysis:
    """Encode `src` at each quality with the encoder `options` (or, with `tngv`, only decode that
    file against `src`)."""
    info = probe_video(src)
    reference = list(read_video(src, max_frames=max_frames))
    if not reference:
        raise DecodeError("the input has no video frames")
    pixels = info.width * info.height
    seconds = float((reference[-1].pts - reference[0].pts + reference[-1].duration) * info.time_base)
    ref_tb = Fraction(info.time_base)
    out = Analysis(str(src), info.width, info.height)
    with tempfile.TemporaryDirectory() as tmp:
        if tngv is not None:
            with TngvReader(tngv) as r:
                codecs = codecs_for(r.header)
            out.models = codecs.model_ids()
            d = _rows_from_tngv(Path(tngv), reference, ref_tb, codecs, None, None, None, with_msssim, progress)
            if not d.rows:
                raise DecodeError("the coded video and the reference share no frame times")
            out.rows += d.rows
            file_bytes = Path(tngv).stat().st_size if d.complete else d.bytes  # a reference cut short: its frames only
            out.summaries.append(_summary("tngvideo", d.rows[0].setting, d.rows, file_bytes, d.seconds,
                                          0.0, d.decode_seconds, pixels))
        else:
            codecs = load_video_codecs(model)
            out.models = codecs.model_ids()
            for q in qualities:
                seq = encode_sequence(reference, codecs, width=info.width, height=info.height,
                                      time_base=info.time_base, frame_rate=info.frame_rate, quality=q, gop=gop,
                                      options=options)
                enc_ms, est = seq.encode_ms, [st.estimated_bits for st in seq.stats]
                path = Path(tmp) / f"q{q}.tngv"
                seq.write(path)
                d = _rows_from_tngv(path, reference, ref_tb, codecs, q, enc_ms, est, with_msssim, progress)
                out.rows += d.rows
                out.summaries.append(_summary("tngvideo", q, d.rows, path.stat().st_size, d.seconds, sum(enc_ms) / 1000,
                                              d.decode_seconds, pixels))
        frames = [f.rgb for f in reference]
        rate = info.frame_rate or 25
        for peer in compare:
            for setting in PEERS[peer][3]:
                run = run_peer(peer, frames, setting, rate=rate, gop=gop)
                rows = []
                for n, (f, dec, nbytes) in enumerate(zip(reference, run.decoded, run.frame_bytes)):
                    ref_rgb = f.rgb[: dec.shape[0], : dec.shape[1]]
                    ps, py, ss = _metrics(ref_rgb, dec, with_msssim)
                    rows.append(FrameRow(peer, setting, n, f.pts, float((f.pts - reference[0].pts) * info.time_base), "",
                                         nbytes, 0, 0, 0, 0, nbytes * 8 / pixels, ps, py, ss, None, None, None, None))
                out.rows += rows
                out.summaries.append(_summary(peer, setting, rows, run.file_bytes, seconds, run.encode_seconds,
                                              run.decode_seconds, pixels))
                if progress:
                    progress(len(frames))
    tng = [s for s in out.summaries if s.codec == "tngvideo"]
    for peer in compare:
        pts = [s for s in out.summaries if s.codec == peer]
        if len(tng) >= 2:
            out.bd_rate_psnr[peer] = bd_rate([s.kbps for s in pts], [s.psnr_rgb for s in pts],
                                             [s.kbps for s in tng], [s.psnr_rgb for s in tng])
            if min(len(tng), len(pts)) < 4:
                out.warnings.append(f"the BD-rate against {peer} rests on {len(tng)} tngvideo and {len(pts)} {peer} "
                                    "points (4 or more make it reliable)")
    return out


# -- outputs ----------------------------------------------------------------------------------

def write_csv(analysis: Analysis, path: Path) -> None:
    buf = io.StringIO()
    names = list(FrameRow.__dataclass_fields__)
    w = csv.DictWriter(buf, fieldnames=names, lineterminator="\n")
    w.writeheader()
    for r in analysis.rows:
        w.writerow({k: ("" if v is None else v) for k, v in asdict(r).items()})
    atomic_write_bytes(path, buf.getvalue().encode())


def to_json(analysis: Analysis) -> dict:
    def clean(v):
        return None if isinstance(v, float) and (math.isnan(v) or math.isinf(v)) else v

    return {
        "source": analysis.source, "width": analysis.width, "height": analysis.height, "models": analysis.models,
        "summaries": [{k: clean(v) for k, v in asdict(s).items()} for s in analysis.summaries],
        "bd_rate_psnr_rgb": {k: clean(v) for k, v in analysis.bd_rate_psnr.items()},
        "warnings": analysis.warnings,
        "frames": [{k: clean(v) for k, v in asdict(r).items()} for r in analysis.rows],
        "gop_profile": {str(st): [{k: clean(v) for k, v in p.items()} for p in gop_profile(rows)]
                        for st, rows in tng_encodes(analysis).items()},
    }


def tng_encodes(analysis: Analysis) -> dict[float, list[FrameRow]]:
    """tngvideo's rows by setting (one encode each), settings in increasing order."""
    groups: dict[float, list[FrameRow]] = {}
    for r in analysis.rows:
        if r.codec == "tngvideo":
            groups.setdefault(r.setting, []).append(r)
    return dict(sorted(groups.items()))


def gop_profile(rows: list[FrameRow]) -> list[dict]:
    """Mean bytes by component and mean PSNR-RGB per position in the GOP (0: the I-frame, k: the
    k-th frame after it), over the rows of one encode."""
    at: dict[int, list[FrameRow]] = {}
    k = 0
    for r in sorted(rows, key=lambda r: r.index):
        k = 0 if r.type == "I" else k + 1
        at.setdefault(k, []).append(r)
    return [{"position": k, "frames": len(rs), "psnr_rgb": _finite_mean(r.psnr_rgb for r in rs),
             **{f"bytes_{c}": sum(getattr(r, f"bits_{c}") for r in rs) / 8 / len(rs) for c in COMPONENTS}}
            for k, rs in sorted(at.items())]


def _png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    return buf.getvalue()


def charts(analysis: Analysis) -> dict[str, bytes]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = {}
    encodes = tng_encodes(analysis)
    if encodes:
        fig, axes = plt.subplots(len(encodes), 1, figsize=(10, 2.6 * len(encodes)), squeeze=False)
        for ax, (s, rows) in zip(axes[:, 0], encodes.items()):
            x = [r.index for r in rows]
            bottom = np.zeros(len(rows))
            for comp in COMPONENTS:
                v = np.array([getattr(r, f"bits_{comp}") for r in rows], dtype=float) / 8000
                ax.bar(x, v, bottom=bottom, label=comp, width=0.85)
                bottom += v
            for r in rows:
                if r.type == "I":
                    ax.axvline(r.index, color="k", lw=0.6, ls=":")
            ax.set_ylabel("kB")
            ax.set_title(f"tngvideo quality {s:g}: bytes per frame by component (dotted: I-frames)", fontsize=9)
            ax.legend(fontsize=7, ncol=4)
        axes[-1, 0].set_xlabel("frame")
        fig.tight_layout()
        out["bits_per_frame.png"] = _png(fig)
        plt.close(fig)
        fig, ax = plt.subplots(figsize=(10, 3.6))
        for s, rows in encodes.items():
            ax.plot([r.index for r in rows], [r.psnr_rgb for r in rows], marker=".", label=f"quality {s:g}")
        ax.set_xlabel("frame")
        ax.set_ylabel("PSNR-RGB (dB)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
        fig.tight_layout()
        out["psnr_per_frame.png"] = _png(fig)
        plt.close(fig)
        fig, axes = plt.subplots(len(encodes), 1, figsize=(10, 2.6 * len(encodes)), squeeze=False)
        for ax, (s, rows) in zip(axes[:, 0], encodes.items()):
            prof = gop_profile(rows)
            x = [p["position"] for p in prof]
            bottom = np.zeros(len(prof))
            for comp in COMPONENTS:
                v = np.array([p[f"bytes_{comp}"] for p in prof]) / 1000
                ax.bar(x, v, bottom=bottom, label=comp, width=0.85)
                bottom += v
            ax.set_ylabel("mean kB")
            ax.legend(fontsize=7, ncol=4, loc="upper left")
            ax2 = ax.twinx()
            ax2.plot(x, [p["psnr_rgb"] for p in prof], color="k", marker="o", lw=1.2)
            ax2.set_ylabel("PSNR-RGB (dB)")
            ax.set_title(f"tngvideo quality {s:g}: GOP profile, mean per position after the I-frame "
                         "(bars: bytes by component, line: PSNR)", fontsize=9)
        axes[-1, 0].set_xlabel("position in the GOP (0: I-frame)")
        fig.tight_layout()
        out["gop_profile.png"] = _png(fig)
        plt.close(fig)
    if len({s.codec for s in analysis.summaries}) > 1 or len(analysis.summaries) > 1:
        fig, ax = plt.subplots(figsize=(7, 4.8))
        draw_rd(ax, analysis)
        fig.tight_layout()
        out["rd.png"] = _png(fig)
        plt.close(fig)
    return out


def draw_rd(ax, analysis: Analysis) -> None:
    """RD curves (kbps from whole files vs PSNR-RGB) of every codec, BD-rates in the legend."""
    for codec in dict.fromkeys(s.codec for s in analysis.summaries):
        pts = sorted((s for s in analysis.summaries if s.codec == codec), key=lambda s: s.kbps)
        bd = analysis.bd_rate_psnr.get(codec)
        label = codec + (f" (tngvideo BD-rate {bd:+.1f}%)" if bd is not None else "")
        ax.plot([s.kbps for s in pts], [s.psnr_rgb for s in pts], marker="o", label=label,
                lw=2.5 if codec == "tngvideo" else 1.2)
    ax.set_xscale("log")
    ax.set_xlabel("kbps (whole files)")
    ax.set_ylabel("PSNR-RGB (dB)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7)


def _table(headers: list[str], rows: list[list]) -> str:
    def cell(v):
        if isinstance(v, float):
            return "" if math.isnan(v) else f"{v:.4g}"
        return html.escape(str(v))

    head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{cell(v)}</td>" for v in r) + "</tr>" for r in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def html_report(analysis: Analysis, images: dict[str, bytes]) -> str:
    summ = _table(list(Summary.__dataclass_fields__), [list(asdict(s).values()) for s in analysis.summaries])
    bd = _table(["peer", "tngvideo BD-rate (PSNR-RGB)"], [[k, f"{v:+.2f}%"] for k, v in analysis.bd_rate_psnr.items()])
    frames = _table(list(FrameRow.__dataclass_fields__), [list(asdict(r).values()) for r in analysis.rows])
    imgs = "".join(f'<h2>{html.escape(n)}</h2><img src="data:image/png;base64,{base64.b64encode(b).decode()}">'
                   for n, b in images.items())
    style = ("body{font-family:sans-serif;margin:2em}table{border-collapse:collapse;font-size:12px}"
             "td,th{border:1px solid #ccc;padding:2px 6px;text-align:right}img{max-width:100%}")
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>tngvideo analysis</title><style>{style}</style>"
            f"</head><body><h1>Rate-distortion analysis: {html.escape(analysis.source)} "
            f"({analysis.width}x{analysis.height})</h1><h2>Summary</h2>{summ}"
            f"{'<h2>BD-rate</h2>' + bd if analysis.bd_rate_psnr else ''}"
            f"{''.join(f'<p><b>Warning:</b> {html.escape(w)}</p>' for w in analysis.warnings)}{imgs}<h2>Per frame</h2>{frames}</body></html>")


def write_outputs(analysis: Analysis, out_dir: Path) -> list[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    written = [out_dir / "frames.csv", out_dir / "analysis.json"]
    write_csv(analysis, written[0])
    atomic_write_bytes(written[1], (json.dumps(to_json(analysis), indent=1) + "\n").encode())
    images = charts(analysis)
    for name, data in images.items():
        atomic_write_bytes(out_dir / name, data)
        written.append(out_dir / name)
    atomic_write_bytes(out_dir / "report.html", html_report(analysis, images).encode())
    written.append(out_dir / "report.html")
    return written
