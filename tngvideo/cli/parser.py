"""The command line's grammar: `tngvideo encode | batch | decode | segment | analyze | demo |
image encode | image decode | info`, built from the shared options of tngvideo.cli.options."""

from __future__ import annotations

import argparse

from tngvideo import __version__
from tngvideo.cli import commands as cmd
from tngvideo.cli.options import (HelpWithDefaults, add_encoder, add_gop, add_model, add_overwrite, add_quality,
                                  add_search, bitrate_kbps)


def build_parser() -> argparse.ArgumentParser:
    from tngvideo.image.registry import DEFAULT_MODEL

    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("-q", "--quiet", action="store_true", default=argparse.SUPPRESS, help="print only errors")
    common.add_argument("--threads", type=int, default=argparse.SUPPRESS, help="CPU threads for torch")
    p = argparse.ArgumentParser(prog="tngvideo", description="TNG learned image and video codec.",
                                formatter_class=HelpWithDefaults)
    p.add_argument("--version", action="version", version=f"tngvideo {__version__}")
    p.add_argument("-q", "--quiet", action="store_true", help="print only errors")
    p.add_argument("--threads", type=int, default=None, help="CPU threads for torch")
    sub = p.add_subparsers(dest="command", required=True)

    def add(group, name, **kw):  # every sub-command also takes -q and --threads
        return group.add_parser(name, parents=[common], formatter_class=HelpWithDefaults, **kw)

    ve = add(sub, "encode", help="video (anything FFmpeg reads) -> .tngv")
    ve.add_argument("input", help="a video file, a folder of numbered images, or - for stdin")
    ve.add_argument("-o", "--output", help="the .tngv to write, or - for stdout (default: INPUT.tngv)")
    add_quality(ve)
    ve.add_argument("--bitrate", type=bitrate_kbps, default=None, metavar="RATE",
                    help="aim the video stream at RATE (e.g. 500k, 1.5M) instead of a fixed quality: the quality is "
                         "searched by whole encodes (2-4 usually), starting from --quality")
    add_gop(ve)
    ve.add_argument("--start", type=int, default=0, metavar="N", help="skip the first N frames of the input")
    ve.add_argument("--frames", type=int, default=None, help="encode at most N frames (from --start)")
    ve.add_argument("-an", dest="no_audio", action="store_true", help="leave the audio out (subtitles are still copied)")
    add_model(ve)
    add_search(ve, help="encoder-side search of I-frame latents and P-frame motion: fewer bytes, a much slower encode")
    ve.add_argument("--fixed-gop", action="store_true",
                    help="I-frames only every --gop frames; by default a frame is also coded intra where "
                         "that costs less (scene cuts); the decision codes each P-frame intra as well, a slower encode")
    add_encoder(ve)
    ve.add_argument("--workers", type=int, default=1,
                    help="encode GOP-aligned chunks in parallel on N workers (Ray if installed, else processes)")
    ve.add_argument("--chunks", type=int, default=None, help="number of chunks (default: one per worker)")
    ve.add_argument("--ray-address", default=None, help="use a running Ray cluster (e.g. ray://host:10001)")
    add_overwrite(ve)
    ve.set_defaults(func=cmd.cmd_encode)

    ba = add(sub, "batch", help="encode a catalog: a folder of videos or a text file listing them")
    ba.add_argument("input", help="a folder, or a text file with one path per line")
    ba.add_argument("-o", "--output", required=True, help="output folder (one .tngv per input, manifest.jsonl)")
    add_quality(ba)
    add_gop(ba)
    add_model(ba)
    add_encoder(ba)
    ba.add_argument("--workers", type=int, default=1, help="files encoded at once (Ray if installed, else processes)")
    ba.add_argument("--ray-address", default=None, help="use a running Ray cluster")
    ba.set_defaults(func=cmd.cmd_batch)
    vd = add(sub, "decode", help=".tngv -> .mkv (lossless FFV1), .mp4 (H.264) or numbered PNGs")
    vd.add_argument("input", help="a .tngv file, a segment, or an HLS playlist (.m3u8) written by `segment`")
    vd.add_argument("-o", "--output", help="OUT.mkv, OUT.mp4, a directory, a pattern like f_%%05d.png, or - for a "
                                           "y4m stream on stdout as the frames decode (default: INPUT.mkv)")
    vd.add_argument("--start", type=int, default=0, help="first frame to output")
    vd.add_argument("--frames", type=int, default=None, help="number of frames to output")
    vd.add_argument("-an", dest="no_audio", action="store_true", help="leave the audio out")
    vd.add_argument("--rendition", type=int, default=0, help="which rendition of a master playlist (0 = first)")
    vd.add_argument("--on-error", choices=("stop", "conceal"), default="stop",
                    help="stop at a damaged frame (default), or conceal it by repeating the last good frame "
                         "until the next I-frame (exits with code 3 and lists the concealed frames)")
    add_overwrite(vd)
    vd.set_defaults(func=cmd.cmd_decode)

    sg = add(sub, "segment", help="GOP-aligned segments at a bitrate ladder, with HLS playlists")
    sg.add_argument("input")
    sg.add_argument("-o", "--output", required=True, help="output folder (master.m3u8, r0/, r1/, ...)")
    sg.add_argument("--segment-seconds", type=float, default=2.0, help="segment length in seconds of source time")
    sg.add_argument("--ladder", default=None,
                    help="renditions, e.g. 800k,400k@640x360,150k@50%% (default: three rungs sized to the source)")
    add_gop(sg, help="intra period inside a segment")
    sg.add_argument("--tolerance", type=float, default=0.05, help="rate control aim, relative to the target")
    sg.add_argument("--frames", type=int, default=None, help="segment only the first N frames")
    add_model(sg)
    add_encoder(sg)
    add_overwrite(sg, help="write into a non-empty output folder")
    sg.set_defaults(func=cmd.cmd_segment)

    an = add(sub, "analyze", help="per-frame rate-distortion analysis (CSV, JSON, charts, HTML)")
    an.add_argument("input", help="a video to encode, or a .tngv to decode (with --reference)")
    an.add_argument("-o", "--output", help="output folder (default: INPUT_analysis)")
    an.add_argument("--quality", type=float, nargs="+", default=[4.0], help="one or more qualities to encode at")
    add_gop(an)
    an.add_argument("--frames", type=int, default=None, help="analyse only the first N frames")
    an.add_argument("--compare", default="", help="peer codecs encoded in the same run: x264,x264-lowdelay,x265,svtav1")
    an.add_argument("--reference", help="the source video when INPUT is a .tngv")
    add_model(an)
    add_encoder(an)
    add_overwrite(an, help="write into a non-empty output folder")
    an.set_defaults(func=cmd.cmd_analyze)

    d = add(sub, "demo", help="compress and decompress a sample photo, print bpp and PSNR")
    d.add_argument("--quality", type=float, nargs="+", default=None,
                   help="default: four qualities spread over the model's range")
    add_model(d, default=DEFAULT_MODEL, help="image model")
    d.set_defaults(func=cmd.cmd_demo)

    img = sub.add_parser("image", help="still images (.tng)", formatter_class=HelpWithDefaults).add_subparsers(dest="image_command", required=True)
    e = add(img, "encode", help="image -> .tng")
    e.add_argument("input", help="any image Pillow reads, or - for stdin")
    e.add_argument("-o", "--output", help="the .tng to write, or - for stdout (default: INPUT.tng)")
    add_quality(e, default=6.0, help="1 (smallest) .. the model's top level (10 for the shipped model), fractional allowed")
    add_model(e, default=DEFAULT_MODEL, help="image model")
    add_search(e, help="encoder-side latent search: fewer bytes for the same picture quality, "
                       "about 0.5 s per step for a 768x512 image on 2 cores (try 30); decoding is unchanged")
    add_overwrite(e)
    e.set_defaults(func=cmd.cmd_image_encode)
    dd = add(img, "decode", help=".tng -> PNG (or another format by suffix)")
    dd.add_argument("input", help="a .tng file, or - for stdin")
    dd.add_argument("-o", "--output", help="the image to write, or - for stdout (default: INPUT.png)")
    add_overwrite(dd)
    dd.set_defaults(func=cmd.cmd_image_decode)

    i = add(sub, "info", help="show a .tng or .tngv file's header fields, sizes and rates")
    i.add_argument("input")
    i.add_argument("--json", action="store_true", help="print the fields as JSON")
    i.set_defaults(func=cmd.cmd_info)
    return p
