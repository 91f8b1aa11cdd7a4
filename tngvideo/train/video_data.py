"""Reading training clips: video files (through PyAV, or OpenCV where PyAV is missing, as on
a lent GPU machine) and frame folders (Vimeo-90k septuplets, exported frames). The batches are
drawn on the device by `tngvideo.train.device_data`.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
from PIL import Image

from tngvideo.train.data import IMAGE_SUFFIXES

VIDEO_SUFFIXES = {".mp4", ".mkv", ".avi", ".264", ".h264", ".webm", ".mov", ".y4m"}
FRAME_NAME = re.compile(r"^im(\d+)$")  # frame folders: im1.png, im2.png ... (Vimeo-90k) or im0001.webp ...


def frame_folders(root: str | Path) -> list[tuple[Path, list[Path]]]:
    """Folders under `root` holding frames named im<N> (any image format), with their frames
    in numeric order."""
    found: dict[Path, list[tuple[int, Path]]] = {}
    for p in Path(root).rglob("im*"):
        m = FRAME_NAME.match(p.stem)
        if m and p.suffix.lower() in IMAGE_SUFFIXES:
            found.setdefault(p.parent, []).append((int(m.group(1)), p))
    return [(d, [p for _, p in sorted(frames)]) for d, frames in sorted(found.items())]


def read_frames(files: list[Path], *, max_frames: int) -> list[np.ndarray]:
    """The first `max_frames` frames of a frame folder (as listed by `frame_folders`) as RGB8."""
    return [np.asarray(Image.open(p).convert("RGB")) for p in files[:max_frames]]


def _read_with_opencv(path: Path, max_frames: int) -> list[np.ndarray]:
    import cv2

    cap = cv2.VideoCapture(str(path))
    frames = []
    try:
        while len(frames) < max_frames:
            ok, bgr = cap.read()
            if not ok:
                break
            frames.append(np.ascontiguousarray(bgr[:, :, ::-1]))
    finally:
        cap.release()
    if not frames:
        raise ValueError(f"{path}: no frames could be read")
    return frames


def read_clip(path: str | Path, *, max_frames: int, max_side: int) -> list[np.ndarray]:
    """The first `max_frames` frames of a video file as RGB8, halved while larger than `max_side`."""
    try:
        from tngvideo.media import read_video  # PyAV only where video files are read
    except ImportError:  # no PyAV (a lent GPU machine): OpenCV's FFmpeg reads the packed clips
        frames = _read_with_opencv(Path(path), max_frames)
    else:
        frames = [fr.rgb for fr in read_video(path, max_frames=max_frames)]
    while frames and max(frames[0].shape[:2]) > max_side:
        frames = [np.asarray(Image.fromarray(x).reduce(2)) for x in frames]
    return frames


def clip_sources(roots: list[str | Path]) -> list[tuple[str, Path | list[Path]]]:
    """Every clip under (or named by) `roots`, named for export: (name, video file) or (name,
    frame files of a frame folder); names are paths below their root with '/' turned to '_'."""
    jobs: list[tuple[str, Path | list[Path]]] = []
    for root in map(Path, roots):
        if root.is_file():
            jobs.append((root.stem, root))
            continue
        jobs += [(f.relative_to(root).with_suffix("").as_posix().replace("/", "_"), f)
                 for f in sorted(root.rglob("*")) if f.suffix.lower() in VIDEO_SUFFIXES]
        jobs += [(d.relative_to(root).as_posix().replace("/", "_") or root.name, files)
                 for d, files in frame_folders(root)]
    return jobs


def named_clips(roots: list[str | Path], *, max_frames: int, max_side: int) -> list[tuple[Path, list[np.ndarray]]]:
    """Every video file and frame folder under (or named by) `roots`: its path and its first
    `max_frames` RGB8 frames."""
    clips = []
    for root in roots:
        root = Path(root)
        for f in sorted(root.rglob("*")) if root.is_dir() else [root]:
            if f.suffix.lower() in VIDEO_SUFFIXES:
                clips.append((f, read_clip(f, max_frames=max_frames, max_side=max_side)))
        for folder, files in frame_folders(root):
            clips.append((folder, read_frames(files, max_frames=max_frames)))
    return clips


def read_clips(roots: list[str | Path], *, max_frames: int, max_side: int) -> list[list[np.ndarray]]:
    """The frames of `named_clips`."""
    return [frames for _, frames in named_clips(roots, max_frames=max_frames, max_side=max_side)]
