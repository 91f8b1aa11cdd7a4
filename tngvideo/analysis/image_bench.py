"""Rate-distortion benchmark of the TNG image codec against JPEG, WebP and AVIF (Pillow).

Every rate is counted from the bytes of whole files (headers included). Quality figures are
means over images at each codec setting; BD-rates use PSNR-RGB with PCHIP interpolation.
"""

from __future__ import annotations

import io
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm import tqdm

from tngvideo.analysis.bdrate import bd_rate
from tngvideo.metrics import ms_ssim, psnr
from tngvideo.image.codec import ImageCodec
from tngvideo.media import read_image

CLASSIC_SWEEPS: dict[str, tuple[str, list[int]]] = {
    "jpeg": ("JPEG", [5, 10, 15, 20, 30, 40, 50, 60, 70, 80, 90, 95]),
    "webp": ("WEBP", [5, 10, 20, 30, 40, 50, 60, 70, 80, 90, 95]),
    "avif": ("AVIF", [10, 20, 30, 40, 50, 60, 70, 80, 90]),
}


def model_qualities(codec: ImageCodec, count: int | None = None) -> list[float]:
    """`count` qualities evenly over the model's range (default: every level)."""
    lo, hi = codec.quality_range
    n = count or int(hi - lo) + 1
    return [round(lo + (hi - lo) * k / (n - 1), 2) for k in range(n)]


@dataclass
class RDPoint:
    setting: float  # codec quality parameter
    bpp: float
    psnr: float
    ms_ssim: float
    encode_ms: float
    decode_ms: float
    estimated_over_actual_pct: float | None = None  # TNG only: (estimated - actual) / actual payload bits


@dataclass
class BenchResult:
    images: list[str]
    model: str
    weights_hash: str
    curves: dict[str, list[RDPoint]] = field(default_factory=dict)  # "tng", "tng-search", classics
    bd_rate_psnr: dict[str, float] = field(default_factory=dict)  # of "tng" vs each classic
    search_steps: int = 0  # encoder-side latent search steps of the "tng-search" curve (0: none)
    bd_rate_psnr_search: dict[str, float] = field(default_factory=dict)  # of "tng-search" vs "tng" and classics

    def to_json(self) -> dict:
        return {
            "images": self.images,
            "model": self.model,
            "weights_hash": self.weights_hash,
            "curves": {k: [asdict(p) for p in v] for k, v in self.curves.items()},
            "bd_rate_psnr_vs": self.bd_rate_psnr,
            "search_steps": self.search_steps,
            "bd_rate_psnr_search_vs": self.bd_rate_psnr_search,
        }


def _mean_point(setting: float, rows: list[dict]) -> RDPoint:
    est = [r["est"] for r in rows if r.get("est") is not None]
    ssim = [r["ms_ssim"] for r in rows if not np.isnan(r["ms_ssim"])]
    return RDPoint(
        setting=setting,
        bpp=float(np.mean([r["bpp"] for r in rows])),
        psnr=float(np.mean([r["psnr"] for r in rows])),
        ms_ssim=float(np.mean(ssim)) if ssim else float("nan"),
        encode_ms=float(np.mean([r["enc"] for r in rows])),
        decode_ms=float(np.mean([r["dec"] for r in rows])),
        estimated_over_actual_pct=float(np.mean(est)) if est else None,
    )


def _measure(img: np.ndarray, dec: np.ndarray, nbytes: int, enc_s: float, dec_s: float, with_msssim: bool) -> dict:
    h, w = img.shape[:2]
    return {
        "bpp": nbytes * 8 / (h * w),
        "psnr": psnr(img, dec),
        "ms_ssim": ms_ssim(img, dec) if with_msssim else float("nan"),
        "enc": enc_s * 1000,
        "dec": dec_s * 1000,
    }


def bench_tng(codec: ImageCodec, images: list[np.ndarray], qualities: list[float], *, with_msssim: bool = True,
              progress: bool = True, search_steps: int = 0, exact: bool = True) -> list[RDPoint]:
    points = []
    desc = (f"tng (search {search_steps})" if search_steps else "tng") + ("" if exact else " float")
    bar = tqdm(total=len(images) * len(qualities), desc=desc, disable=not progress)
    for q in qualities:
        rows = []
        for img in images:
            t0 = time.perf_counter()
            res = codec.compress_with_info(img, q, search_steps=search_steps, exact=exact)
            t1 = time.perf_counter()
            dec = codec.decompress(res.data)
            t2 = time.perf_counter()
            if not np.array_equal(dec, res.reconstruction):
                raise RuntimeError("decoder output differs from the encoder's reconstruction")
            row = _measure(img, dec, len(res.data), t1 - t0, t2 - t1, with_msssim)
            row["est"] = 100.0 * (res.estimated_bits - res.payload_bits) / res.payload_bits
            rows.append(row)
            bar.update(1)
        points.append(_mean_point(q, rows))
    bar.close()
    return points


def bench_classic(name: str, images: list[np.ndarray], *, settings: list[int] | None = None,
                  with_msssim: bool = True, progress: bool = True) -> list[RDPoint]:
    fmt, default = CLASSIC_SWEEPS[name]
    settings = settings or default
    points = []
    bar = tqdm(total=len(images) * len(settings), desc=name, disable=not progress)
    for s in settings:
        rows = []
        for img in images:
            buf = io.BytesIO()
            t0 = time.perf_counter()
            kwargs = {"quality": s}
            if fmt == "JPEG":
                kwargs["subsampling"] = "4:2:0"
            Image.fromarray(img).save(buf, format=fmt, **kwargs)
            t1 = time.perf_counter()
            data = buf.getvalue()
            dec = np.array(Image.open(io.BytesIO(data)).convert("RGB"))
            t2 = time.perf_counter()
            rows.append(_measure(img, dec, len(data), t1 - t0, t2 - t1, with_msssim))
            bar.update(1)
        points.append(_mean_point(float(s), rows))
    bar.close()
    return points


def run_image_benchmark(codec: ImageCodec, paths: list[Path], *, qualities: list[float] | None = None,
                        classics: tuple[str, ...] = ("jpeg", "webp", "avif"), with_msssim: bool = True,
                        progress: bool = True, search_steps: int = 0, with_float: bool = False) -> BenchResult:
    """TNG at `qualities` (and, with search_steps > 0, again with encoder-side latent search; with
    `with_float`, again with the float reconstruction of format 1 files, as "tng-float") against
    each classic codec's sweep, all on the same images."""
    images = [read_image(p) for p in paths]
    result = BenchResult(images=[p.name for p in paths], model=codec.name, weights_hash=codec.weights_hash.hex(),
                         search_steps=search_steps)
    qualities = qualities or model_qualities(codec)
    result.curves["tng"] = bench_tng(codec, images, qualities, with_msssim=with_msssim, progress=progress)
    if search_steps:
        result.curves["tng-search"] = bench_tng(codec, images, qualities, with_msssim=with_msssim,
                                                progress=progress, search_steps=search_steps)
    if with_float:
        result.curves["tng-float"] = bench_tng(codec, images, qualities, with_msssim=with_msssim, progress=progress,
                                               exact=False)
    for name in classics:
        result.curves[name] = bench_classic(name, images, with_msssim=with_msssim, progress=progress)

    def bd(anchor: str, test: str) -> float:
        a, t = result.curves[anchor], result.curves[test]
        return bd_rate([p.bpp for p in a], [p.psnr for p in a], [p.bpp for p in t], [p.psnr for p in t])

    result.bd_rate_psnr = {name: bd(name, "tng") for name in (*classics, *(["tng-float"] if with_float else []))}
    if search_steps:
        result.bd_rate_psnr_search = {name: bd(name, "tng-search") for name in ("tng", *classics)}
    return result


def plot_rd(result: BenchResult, path: Path, *, title: str = "Kodak") -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    metrics = [("psnr", "PSNR-RGB (dB)")]
    if any(not np.isnan(p.ms_ssim) for p in result.curves.get("tng", [])):
        metrics.append(("ms_ssim", "MS-SSIM (dB)"))
    fig, axes = plt.subplots(1, len(metrics), figsize=(6.5 * len(metrics), 4.8), squeeze=False)
    for ax, (key, label) in zip(axes[0], metrics):
        for name, pts in result.curves.items():
            x = [p.bpp for p in pts]
            y = [getattr(p, key) for p in pts]
            if key == "ms_ssim":
                y = [-10 * np.log10(max(1 - v, 1e-9)) for v in y]
            style = dict(lw=2.2, marker="o") if name.startswith("tng") else dict(lw=1.2, marker=".")
            lab = {"tng": f"TNG ({result.model})", "tng-search": f"TNG, search {result.search_steps}"}.get(
                name, name.upper())
            if key == "psnr" and name in result.bd_rate_psnr:
                bds = [f"TNG {result.bd_rate_psnr[name]:+.1f}%"]
                if name in result.bd_rate_psnr_search:
                    bds.append(f"search {result.bd_rate_psnr_search[name]:+.1f}%")
                lab += f"  [BD-rate {', '.join(bds)}]"
            ax.plot(x, y, label=lab, **style)
        ax.set_xlabel("bits per pixel (whole files)")
        ax.set_ylabel(label)
        ax.set_xlim(0, 2.0)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
        ax.set_title(f"{title}: {len(result.images)} images")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
