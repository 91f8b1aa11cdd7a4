"""Media I/O: still images through Pillow, video through PyAV. Errors become `MediaError`."""

from __future__ import annotations

import functools
import io
import os
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Iterable, Iterator

import av
import cv2
import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from tngvideo.errors import MediaError
from tngvideo.bitstream.container import COLOUR_KEYS
from tngvideo.fileio import atomic_files, atomic_output
from tngvideo.media_passthrough import add_passthrough, mux_passthrough

Image.MAX_IMAGE_PIXELS = 1 << 27


def read_image(path: str | os.PathLike) -> np.ndarray:
    """Any image Pillow reads -> (H, W, 3) uint8 sRGB, upright. The EXIF orientation is applied
    (a portrait photo stored sideways comes out portrait); an embedded ICC profile other than
    sRGB is converted to sRGB (pixels without a profile are taken as sRGB). Greyscale is
    replicated, alpha dropped, 16-bit scaled."""
    try:
        with Image.open(path) as im:
            im.load()
            im = ImageOps.exif_transpose(im)
            if im.mode in ("I;16", "I;16B", "I;16L", "I"):
                a = np.asarray(im, dtype=np.float64)
                im = Image.fromarray(np.clip(a / 257.0 + 0.5, 0, 255).astype(np.uint8))
            return np.array(_srgb(im))
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        raise MediaError(f"not a readable image ({exc.__class__.__name__})") from None


_ICC_MODES = {"RGB": "RGB", "GRAY": "L", "CMYK": "CMYK"}  # an ICC profile's colour space -> the Pillow mode it describes


def _srgb(im: Image.Image) -> Image.Image:
    """`im` as 8-bit RGB in sRGB: converted through its ICC profile when it carries one that is
    not sRGB (Display P3, Adobe RGB, a CMYK press profile, ...); a profile LittleCMS cannot use
    is ignored, as a browser would."""
    icc = im.info.get("icc_profile")
    if not icc:
        return im.convert("RGB")
    from PIL import ImageCms

    try:
        profile = ImageCms.ImageCmsProfile(io.BytesIO(icc))
        mode = _ICC_MODES.get(profile.profile.xcolor_space.strip())
        if mode is None:
            return im.convert("RGB")
        transform = ImageCms.buildTransform(profile, _srgb_profile(), mode, "RGB")
        if mode == "RGB":  # an sRGB profile (by whatever name) leaves the pixels exactly as they are
            probe = _rgb_probe()
            if np.abs(np.asarray(ImageCms.applyTransform(probe, transform), np.int16)
                      - np.asarray(probe, np.int16)).max() <= 2:
                return im.convert("RGB")
        return ImageCms.applyTransform(im if im.mode == mode else im.convert(mode), transform)
    except (ImageCms.PyCMSError, OSError, ValueError, TypeError):
        return im.convert("RGB")


@functools.lru_cache(maxsize=1)
def _rgb_probe() -> Image.Image:
    """Every combination of 16 levels per channel."""
    v = np.arange(0, 256, 17, dtype=np.uint8)
    return Image.fromarray(np.stack(np.meshgrid(v, v, v, indexing="ij"), -1).reshape(64, 64, 3))


@functools.lru_cache(maxsize=1)
def _srgb_profile():
    from PIL import ImageCms

    return ImageCms.createProfile("sRGB")


# EXIF orientations that turn the picture a quarter (width and height swap on display)
_QUARTER_TURNS = (5, 6, 7, 8)


def probe_image(path: str | os.PathLike) -> tuple[int, int]:
    """(width, height) as displayed (EXIF orientation applied), from the image's header alone:
    nothing is decoded."""
    try:
        with Image.open(path) as im:
            w, h = im.size
            return (h, w) if im.getexif().get(0x0112) in _QUARTER_TURNS else (w, h)
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        raise MediaError(f"not a readable image ({exc.__class__.__name__})") from None


def write_image(path: str | os.PathLike, rgb: np.ndarray, *, overwrite: bool = True) -> None:
    """Write an (H, W, 3) uint8 array; the format follows the suffix (PNG by default)."""
    path = Path(path)
    fmt = Image.registered_extensions().get(path.suffix.lower(), "PNG")
    with atomic_output(path, overwrite=overwrite) as tmp:
        Image.fromarray(rgb).save(tmp, format=fmt)


# -- video ------------------------------------------------------------------------------------

DEFAULT_TIME_BASE = Fraction(1, 25)


@dataclass(frozen=True)
class VideoInfo:
    width: int
    height: int
    time_base: Fraction
    frame_rate: Fraction
    frames_hint: int  # from the container; 0 when unknown
    colour: dict
    audio_streams: int
    rotation: int = 0  # display rotation in degrees, from the display matrix


@dataclass(frozen=True)
class VideoFrame:
    rgb: np.ndarray  # (H, W, 3) uint8
    pts: int  # in VideoInfo.time_base
    duration: int


def _colour(stream) -> dict:
    cc = stream.codec_context
    out = {}
    for key in COLOUR_KEYS:
        value = getattr(cc, key, None)
        unspecified = 0 if key == "color_range" else 2
        if value is not None and int(value) != unspecified:
            out[key] = int(value)
    return out


# FFmpeg's matrix codes (AVColorSpace) -> the matrix swscale converts RGB with
_SWS_MATRIX = {1: "ITU709", 4: "FCC", 5: "ITU601", 6: "ITU601", 7: "SMPTE240M", 9: "BT2020"}  # not 10: constant luminance
BT709 = {"color_primaries": 1, "color_trc": 1, "colorspace": 1}
RGB_TAGS = {"colorspace": 0, "color_range": 2}  # AVCOL_SPC_RGB, full range: what an RGB (FFV1 bgr0) stream is
# (its primaries and transfer are still the source's)


def yuv_tags(colour: dict | None) -> dict:
    """The colour tags a Y'CbCr output carries: the source's where it names a matrix we can
    convert with, else BT.709; limited range unless the source says full."""
    colour = {k: v for k, v in (colour or {}).items() if k in COLOUR_KEYS}
    tags = dict(colour) if colour.get("colorspace") in _SWS_MATRIX else {**colour, **BT709}
    tags["color_range"] = 2 if colour.get("color_range") == 2 else 1
    return tags


def _rotation(container, stream) -> int:
    """Display rotation of the first frame (PyAV applies the stream's display matrix to frames)."""
    try:
        for frame in container.decode(stream):
            return int(round(getattr(frame, "rotation", 0) or 0)) % 360
    except av.FFmpegError:
        pass
    return 0


INPUT_OPTIONS = {"protocol_whitelist": "file"}  # an input (or a list such as HLS inside it) never reaches the network


def _open_video(path: str | os.PathLike):
    """Open a video file, or a numbered image sequence given as a folder or a %d pattern."""
    p = Path(path)
    kwargs: dict = {"options": dict(INPUT_OPTIONS)}
    if p.is_dir():
        files = sorted(f for f in p.iterdir() if f.suffix.lower() in (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff"))
        if not files:
            raise MediaError("folder holds no numbered images")
        p, first = _sequence_pattern(files[0])
        kwargs = {"format": "image2", "options": {**INPUT_OPTIONS, "framerate": "25", "start_number": str(first)}}
    elif "%" in p.name:
        kwargs = {"format": "image2", "options": {**INPUT_OPTIONS, "framerate": "25"}}
    try:
        c = av.open(str(p), **kwargs)
    except (av.FFmpegError, OSError, ValueError) as exc:
        raise MediaError(f"not a readable video ({exc.__class__.__name__})") from None
    if not c.streams.video:
        c.close()
        raise MediaError("no video stream")
    return c


def _sequence_pattern(first: Path) -> tuple[Path, int]:
    """frame_000123.png -> frame_%06d.png (with the start number found by the demuxer)."""
    import re

    m = re.search(r"(\d+)(?=\.[^.]+$)", first.name)
    if not m:
        raise MediaError(f"{first.name}: images in a folder must be numbered")
    pattern = first.with_name(first.name[: m.start()] + f"%0{len(m.group(1))}d" + first.name[m.end():])
    return pattern, int(m.group(1))


def probe_video(path: str | os.PathLike) -> VideoInfo:
    with _open_video(path) as c:
        v = c.streams.video[0]
        rate = v.average_rate or v.guessed_rate or Fraction(25)
        tb = v.time_base or DEFAULT_TIME_BASE
        return VideoInfo(
            width=v.codec_context.width, height=v.codec_context.height, time_base=Fraction(tb),
            frame_rate=Fraction(rate), frames_hint=int(v.frames or 0), colour=_colour(v),
            audio_streams=len(c.streams.audio), rotation=_rotation(c, v),
        )


def count_frames(path: str | os.PathLike, *, limit: int | None = None) -> int:
    """The number of video frames (at most `limit`): the container's count where it keeps one
    (MP4), else the video packets counted by demuxing alone, nothing decoded (Matroska, y4m,
    numbered images: one packet per frame)."""
    with _open_video(path) as c:
        v = c.streams.video[0]
        if v.frames:
            return min(int(v.frames), limit) if limit is not None else int(v.frames)
        n = 0
        try:
            for p in c.demux(v):
                if p.size:
                    n += 1
                    if limit is not None and n >= limit:
                        break
        except av.FFmpegError as exc:
            raise MediaError(f"damaged video ({exc.__class__.__name__})") from None
        return n


def read_video(path: str | os.PathLike, *, max_frames: int | None = None, start: int = 0) -> Iterator[VideoFrame]:
    """Decode every frame to RGB8 with its pts (frames without timing get 1/frame_rate steps);
    `start`: skip the first `start` frames (each keeps its own timestamp), then at most `max_frames`."""
    if start:
        from itertools import islice

        yield from islice(read_video(path, max_frames=None if max_frames is None else start + max_frames), start, None)
        return
    info = probe_video(path)
    step = max(1, round(1 / (info.frame_rate * info.time_base))) if info.frame_rate else 1
    with _open_video(path) as c:
        v = c.streams.video[0]
        v.thread_type = "AUTO"
        pending = None
        n = 0
        try:
            for frame in c.decode(v):
                pts = frame.pts if frame.pts is not None else (pending.pts + step if pending else 0)
                if pending is not None and pts <= pending.pts:
                    pts = pending.pts + 1  # keep timestamps strictly increasing
                if pending is not None:
                    yield VideoFrame(pending.rgb, pending.pts, pts - pending.pts)
                    n += 1
                    if max_frames is not None and n >= max_frames:
                        return
                pending = VideoFrame(frame.to_ndarray(format="rgb24"), pts, step)
        except av.FFmpegError as exc:
            raise MediaError(f"damaged video ({exc.__class__.__name__})") from None
        if pending is not None and (max_frames is None or n < max_frames):
            dur = int(frame.duration) if getattr(frame, "duration", None) else step
            yield VideoFrame(pending.rgb, pending.pts, max(1, dur))


def resized(rgb: np.ndarray, width: int, height: int) -> np.ndarray:
    """An RGB8 picture at width x height: area averaging when it shrinks, bicubic when it grows."""
    if rgb.shape[:2] == (height, width):
        return rgb
    shrink = width * height < rgb.shape[0] * rgb.shape[1]
    interp = cv2.INTER_AREA if shrink else cv2.INTER_CUBIC
    return np.ascontiguousarray(cv2.resize(rgb, (width, height), interpolation=interp))


def read_resized(path: str | os.PathLike, width: int, height: int, frames: int) -> list[np.ndarray]:
    """The first `frames` frames of a clip at width x height (`resized`); MediaError if it has fewer."""
    rgb = [resized(f.rgb, width, height) for f in read_video(path, max_frames=frames)]
    if len(rgb) < frames:
        raise MediaError(f"{path} has only {len(rgb)} frames")
    return rgb


def _write_frames(pattern: Path, frames: Iterable[VideoFrame], overwrite: bool) -> int:
    """Numbered images, written into a temporary folder and moved into place once all are done."""
    n = 0
    with atomic_files(pattern.parent, overwrite=overwrite) as tmp:
        for n, f in enumerate(frames, 1):
            write_image(tmp / (pattern.name % (n - 1)), f.rgb)
    return n


VIDEO_OUTPUTS = {
    # suffix: (codec, pixel format, options) -- .mkv is lossless RGB, .mp4 is for viewing
    ".mkv": ("ffv1", "bgr0", {}),
    ".mp4": ("libx264", "yuv420p", {"crf": "16", "preset": "medium"}),
}


def write_video(path: str | os.PathLike, frames: Iterable[VideoFrame], *, width: int, height: int,
                time_base: Fraction, frame_rate: Fraction, colour: dict | None = None, rotation: int = 0,
                passthrough_source: str | os.PathLike | None = None,
                trim_passthrough: bool = False, passthrough_tngv: bool = False,
                passthrough_drop: tuple[str, ...] = (), trim_from_first_frame: bool = True,
                overwrite: bool = True) -> tuple[int, list[str]]:
    """Write frames to .mkv (FFV1, lossless RGB) or .mp4 (H.264 for viewing), or to a folder
    of numbered PNGs when `path` is a directory or contains '%'. Colour description and display
    rotation are tagged; audio, subtitles and chapters of `passthrough_source` are copied (with
    `trim_passthrough`, only packets that start within the time span of the written frames, or
    before its end when not `trim_from_first_frame`; not the stream types in `passthrough_drop`;
    with `passthrough_tngv`, the source is opened as a `.tngv` file and nothing else).
    Nothing is left behind on an error or an interruption; without `overwrite` no existing file
    is replaced. Returns (frame count, warnings about what could not be carried)."""
    path = Path(path)
    if path.is_dir() or "%" in path.name:
        pattern = path / "frame_%06d.png" if path.is_dir() else path
        n = _write_frames(pattern, frames, overwrite)
        return n, (["audio, subtitles, rotation and colour tags are not carried into image files"]
                   if passthrough_source or rotation or colour else [])
    if path.suffix.lower() not in VIDEO_OUTPUTS:
        raise MediaError(f"unsupported output type '{path.suffix}' (use .mkv, .mp4 or a PNG pattern)")
    codec, pix_fmt, options = VIDEO_OUTPUTS[path.suffix.lower()]
    n = 0
    with atomic_output(path, overwrite=overwrite) as tmp:
        fmt = "matroska" if path.suffix.lower() == ".mkv" else "mp4"
        # keep copied audio at its own timestamps (AAC priming starts before the first frame)
        out = av.open(str(tmp), "w", format=fmt, options={"avoid_negative_ts": "disabled"})
        pt = None
        try:
            opts = dict(options)
            if codec == "ffv1" and min(width, height) < 32:
                opts["level"] = "1"  # FFV1's sliced default levels cannot code a frame one pixel wide
            s = out.add_stream(codec, rate=frame_rate, options=opts)
            # 4:2:0 (what browsers and hardware decoders play) needs even sizes: repeat the last
            # column / row where the size is odd, and say so
            pad_w, pad_h = (width % 2, height % 2) if pix_fmt == "yuv420p" else (0, 0)
            notes = ([f"{width}x{height} is odd: the .mp4 is {width + pad_w}x{height + pad_h} (4:2:0 needs even sizes), "
                      "its last column/row repeated"] if pad_w or pad_h else [])
            s.width, s.height, s.pix_fmt = width + pad_w, height + pad_h, pix_fmt
            s.time_base = time_base
            s.codec_context.time_base = time_base
            # convert RGB to Y'CbCr ourselves, with the matrix and range the stream is tagged with
            # (left to the encoder, FFmpeg converts with BT.601 whatever the tags say)
            tags = ({**{k: v for k, v in (colour or {}).items() if k in ("color_primaries", "color_trc")}, **RGB_TAGS}
                    if pix_fmt == "bgr0" else yuv_tags(colour))
            for key, value in tags.items():
                setattr(s.codec_context, key, int(value))
            if rotation:
                s.set_display_rotation(rotation)
            pt = (add_passthrough(str(passthrough_source), out, tngv=passthrough_tngv, drop=passthrough_drop)
                  if passthrough_source is not None else None)
            span = None
            for f in frames:
                rgb = np.pad(f.rgb, ((0, pad_h), (0, pad_w), (0, 0)), mode="edge") if pad_w or pad_h else f.rgb
                vf = av.VideoFrame.from_ndarray(rgb, format="rgb24")
                if pix_fmt != "bgr0":
                    vf = vf.reformat(format=pix_fmt, dst_colorspace=_SWS_MATRIX[tags["colorspace"]],
                                     src_color_range="JPEG", dst_color_range="JPEG" if tags["color_range"] == 2 else "MPEG",
                                     interpolation="BICUBIC")
                vf.pts = f.pts
                vf.time_base = time_base
                for p in s.encode(vf):
                    out.mux(p)
                n += 1
                span = (span[0] if span else f.pts * time_base, (f.pts + max(1, f.duration)) * time_base)
            for p in s.encode(None):
                out.mux(p)
            if pt is not None:
                window = (span[0] if trim_from_first_frame else None, span[1]) if span else None
                mux_passthrough(pt, out, window if trim_passthrough else None)
        except BaseException as exc:
            if pt is not None:
                pt.source.close()
            try:  # closing writes the header; its own error must not hide the one that stopped us
                out.close()
            except Exception:
                pass
            if isinstance(exc, av.FFmpegError):
                raise OSError(f"cannot encode {path.name} ({exc})") from None
            raise
        try:
            out.close()
        except av.FFmpegError as exc:
            raise OSError(f"cannot encode {path.name} ({exc})") from None
    return n, notes + (pt.warnings if pt is not None else [])


# -- y4m to a pipe ----------------------------------------------------------------------------

Y4M_HD_LINES = 576  # taller pictures are converted with BT.709, others with BT.601: what players assume of
# a y4m stream, which names no matrix (SDL's automatic mode in ffplay, mpv)


def y4m_matrix(height: int) -> str:
    return "ITU709" if height > Y4M_HD_LINES else "ITU601"


def write_y4m(stream, frames: Iterable[VideoFrame], *, width: int, height: int, frame_rate: Fraction) -> int:
    """Write frames as a YUV4MPEG2 stream (4:2:0, limited range, the matrix players assume for
    the size: `y4m_matrix`) to a binary file object such as a pipe, each frame flushed as soon
    as it is converted, so a player reading the pipe starts at once. The stream is constant
    rate (`frame_rate`): y4m carries no timestamps. Returns the number of frames written."""
    rate = Fraction(frame_rate) if frame_rate else Fraction(25)
    stream.write(f"YUV4MPEG2 W{width} H{height} F{rate.numerator}:{rate.denominator} Ip A1:1 C420jpeg "
                 "XCOLORRANGE=LIMITED\n".encode())
    stream.flush()
    matrix = y4m_matrix(height)
    n = 0
    for f in frames:
        vf = av.VideoFrame.from_ndarray(np.ascontiguousarray(f.rgb), format="rgb24").reformat(
            format="yuv420p", dst_colorspace=matrix, src_color_range="JPEG", dst_color_range="MPEG",
            interpolation="BICUBIC")
        planes = [np.frombuffer(p, np.uint8).reshape(p.height, p.line_size)[:, : p.width] for p in vf.planes]
        stream.write(b"FRAME\n" + b"".join(np.ascontiguousarray(p).tobytes() for p in planes))
        stream.flush()
        n += 1
    return n
