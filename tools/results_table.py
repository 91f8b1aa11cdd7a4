#!/usr/bin/env python3
"""Print the README's results tables (Markdown) from results/kodak.json, results/video_dev.json and
results/speedrun.json.

    python tools/results_table.py
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def kodak(path: Path) -> list[str]:
    r = json.loads(path.read_text())
    out = [f"Kodak ({len(r['images'])} images), model `{r['model']}` ({r['weights_hash']}), {r.get('device', '')}:", "",
           "| TNG quality | bpp (file bytes) | PSNR-RGB dB | MS-SSIM | est. vs actual bits | encode ms | decode ms |",
           "| ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    steps = r.get("search_steps", 0)
    for curve, tag in (("tng", ""), ("tng-search", f", search {steps}")):
        for p in r["curves"].get(curve, []):
            out.append(f"| {p['setting']:g}{tag} | {p['bpp']:.3f} | {p['psnr']:.2f} | {p['ms_ssim']:.4f} | "
                       f"{p['estimated_over_actual_pct']:+.2f}% | {p['encode_ms']:.0f} | {p['decode_ms']:.0f} |")
    classics = list(r["bd_rate_psnr_vs"])
    out += ["", "| BD-rate (PSNR-RGB) of | " + " | ".join(f"vs {k.upper()}" for k in classics) + " |",
            "| --- | " + " | ".join("---:" for _ in classics) + " |",
            "| TNG | " + " | ".join(f"{r['bd_rate_psnr_vs'][k]:+.1f}%" for k in classics) + " |"]
    search = r.get("bd_rate_psnr_search_vs", {})
    if search:
        out.append(f"| TNG, search {steps} | " + " | ".join(f"{search[k]:+.1f}%" for k in classics) + " |")
        out += ["", f"Encoder-side search ({steps} steps) against the same model without it: "
                    f"BD-rate {search['tng']:+.1f}%."]
    return out


def video(path: Path) -> list[str]:
    r = json.loads(path.read_text())
    models = r.get("models", {})
    model = f", models `{models['video']}` + `{models['image']}`" if models else ""
    preset = f", encoder preset {r['preset']}" if "preset" in r else ""
    out = [f"Dev clips (first {r['frames_per_clip']} frames, GOP {r['clips'][0]['gop']}{preset}){model}, {r['device']}:", "",
           "| clip | tngvideo quality | kbps | bpp | PSNR-RGB dB | I-frames (share of bits) | P-frame est. vs actual bits "
           "| encode fps | decode fps |",
           "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for c in r["clips"]:
        for s in c["summaries"]:
            if s["codec"] != "tngvideo":
                continue
            types = c["tngvideo_frame_types"].get(str(s["setting"]), {})
            est = types.get("p_estimated_over_actual")
            est = f"{100 * (est - 1):+.2f}%" if est else "n/a"
            n_i = f"{types['i_frames']} " if "i_frames" in types else ""  # older records lack the count
            out.append(f"| {c['clip']} | {s['setting']:g} | {s['kbps']:.0f} | {s['bpp']:.3f} | {s['psnr_rgb']:.2f} | "
                       f"{n_i}({100 * types.get('i_share', float('nan')):.0f}%) | {est} | {s['encode_fps']:.2f} | "
                       f"{s['decode_fps']:.2f} |")
    peers = list(dict.fromkeys(k for c in r["clips"] for k in c["bd_rate_psnr_rgb"]))
    out += ["", "| BD-rate of tngvideo (PSNR-RGB) vs | " + " | ".join(peers) + " |",
            "| --- | " + " | ".join("---:" for _ in peers) + " |"]
    for c in r["clips"]:
        out.append(f"| {c['clip']} | " + " | ".join(
            f"{c['bd_rate_psnr_rgb'][p]:+.0f}%" if p in c["bd_rate_psnr_rgb"] else "n/a" for p in peers) + " |")
    return out


def _yes(v) -> str:
    return "yes" if v else "no"


def speedrun(path: Path) -> list[str]:
    runs = json.loads(path.read_text())
    out = ["| speed run | crops per step | Haar shortcuts | compiled step | bf16 | EMA | quantization | steps "
           "| Kodak bpp | PSNR-RGB dB | BD-rate vs JPEG |",
           "| --- | ---: | :---: | :---: | :---: | :---: | :---: | ---: | ---: | ---: | ---: |"]
    for r in runs:
        cfg, pts = r["recipe"], r["rd_points"]
        out.append(f"| {r['label']} ({r['budget_minutes']:g} min) | {cfg['batch']} x {cfg['crop']}x{cfg['crop']} | "
                   f"{_yes(r.get('model', {}).get('shortcuts', True))} | {_yes(cfg.get('compile'))} | "
                   f"{_yes(cfg.get('amp', True))} | {cfg['ema_decay'] if cfg.get('ema_decay') else 'no'} | "
                   f"{cfg.get('quantization', 'mixed')} | {r['steps']:,} | "
                   f"{pts[0]['bpp']:.2f}-{pts[-1]['bpp']:.2f} | {pts[0]['psnr']:.1f}-{pts[-1]['psnr']:.1f} | "
                   f"{r['bd_rate_vs_jpeg_psnr']:+.1f}% |")
    return out


def main() -> int:
    lines = []
    for name, fn in (("kodak.json", kodak), ("video_dev.json", video), ("speedrun.json", speedrun)):
        p = ROOT / "results" / name
        if p.exists():
            lines += fn(p) + [""]
    if not lines:
        print("no results yet", file=sys.stderr)
        return 1
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
