"""The options several commands share, each declared once (`add_*`), their value parsers, the help
formatter that shows defaults, and the encoder's options read back from the parsed arguments."""

from __future__ import annotations

import argparse

from tngvideo.video import (DEFAULT_GOP, DEFAULT_INTRA_OFFSET, DEFAULT_MOTION_ESTIMATORS, DEFAULT_P_OFFSETS,
                            DEFAULT_PRESET, MOTION_ESTIMATORS, PRESET_NAMES)

VIDEO_QUALITY_HELP = "1 (smallest) .. 8 (best), fractional allowed"
VIDEO_MODEL_HELP = "video model (default: the newest shipped)"
PRESET_HELP = ("encoder speed against bytes: how often each P-frame tries every motion mode "
               "(fast: one motion quality; medium: all every 4th P-frame; slow: all on every frame)")


class HelpWithDefaults(argparse.HelpFormatter):
    """Every option's help ends with its default ("(default: 4)"), unless the help already says
    it or there is none to show (a flag, or an option whose absence means "not used")."""

    def _get_help_string(self, action) -> str:
        text = action.help or ""
        default = action.default
        if (default in (None, False, "", argparse.SUPPRESS) or isinstance(default, bool) or "default" in text.lower()
                or not action.option_strings):
            return text
        if isinstance(default, (list, tuple)):
            shown = ("," if isinstance(default, tuple) else " ").join(_plain(v) for v in default)
        else:
            shown = _plain(default)
        return f"{text} (default: {shown.replace('%', '%%')})".strip()


def _plain(v) -> str:
    return f"{v:g}" if isinstance(v, float) else str(v)


def offsets(text: str) -> tuple[float, ...]:
    try:
        return tuple(float(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, not {text!r}") from None


def bitrate_kbps(text: str) -> float:
    """'500k', '1.5M' or bits per second -> kbps."""
    scale = {"k": 1.0, "m": 1000.0}.get(text[-1:].lower())
    try:
        v = float(text[:-1]) * scale if scale else float(text) / 1000
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a bitrate like 500k or 1.5M, not {text!r}") from None
    if not (v > 0 and v < 1e7):
        raise argparse.ArgumentTypeError(f"the bitrate must be positive and finite, not {text!r}")
    return v


def names(text: str) -> tuple[str, ...]:
    return tuple(v.strip() for v in text.split(",") if v.strip())


def add_quality(p, *, default: float = 4.0, help: str = VIDEO_QUALITY_HELP) -> None:
    p.add_argument("--quality", type=float, default=default, help=help)


def add_gop(p, *, help: str = "intra period in frames") -> None:
    p.add_argument("--gop", type=int, default=DEFAULT_GOP, help=help)


def add_model(p, *, default: str | None = None, help: str = VIDEO_MODEL_HELP) -> None:
    p.add_argument("--model", default=default, help=help)


def add_search(p, *, help: str) -> None:
    p.add_argument("--search", type=int, default=0, metavar="STEPS", help=help)


def add_encoder(p) -> None:
    """The video encoder's options (EncoderOptions) every command that encodes video takes:
    --preset, the quality cascade and the motion estimators."""
    p.add_argument("--preset", choices=PRESET_NAMES, default=DEFAULT_PRESET, help=PRESET_HELP)
    p.add_argument("--intra-offset", type=float, default=DEFAULT_INTRA_OFFSET, metavar="D",
                   help=f"I-frames at quality + D (default: {DEFAULT_INTRA_OFFSET:g})")
    p.add_argument("--p-offsets", type=offsets, default=DEFAULT_P_OFFSETS, metavar="D1,D2,...",
                   help="the k-th P-frame after an I-frame at quality + D[(k-1) mod n] (default: "
                        f"{','.join(f'{d:g}' for d in DEFAULT_P_OFFSETS)}; negative lists as --p-offsets=-1,0)")
    p.add_argument("--motion-estimators", type=names, default=DEFAULT_MOTION_ESTIMATORS, metavar="NAMES",
                   help=f"flow estimators each P-frame tries, cheapest kept ({', '.join(MOTION_ESTIMATORS)}; "
                        f"default: {','.join(DEFAULT_MOTION_ESTIMATORS)})")


def add_overwrite(p, *, help: str = "overwrite the output") -> None:
    p.add_argument("-y", dest="overwrite", action="store_true", help=help)


def encoder_options(args) -> dict:
    """The EncoderOptions fields from the command line (commands without --search or --fixed-gop
    use the defaults for them), checked by the API where its argument checks reach them."""
    return {"preset": args.preset, "search_steps": getattr(args, "search", 0),
            "adaptive_intra": not getattr(args, "fixed_gop", False), "intra_offset": args.intra_offset,
            "p_offsets": args.p_offsets, "motion_estimators": args.motion_estimators}
