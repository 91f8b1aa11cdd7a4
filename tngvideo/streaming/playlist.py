"""HLS playlists for `.tngv` segments: written as text, read back with the `m3u8` library."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import m3u8

from tngvideo.fileio import atomic_output

CODECS = "tngv.1"  # format name and version, the value of CODECS in the master playlist
HLS_VERSION = 7


@dataclass(frozen=True)
class PlaylistSegment:
    uri: str
    duration: float


@dataclass(frozen=True)
class VariantEntry:
    uri: str
    bandwidth: int  # peak segment bitrate, bits/s
    average_bandwidth: int  # whole-rendition bitrate, bits/s
    width: int
    height: int
    frame_rate: float


def _write_text(path: Path, text: str) -> None:
    with atomic_output(path) as tmp:
        tmp.write_text(text)


def write_media_playlist(path: Path, segments: list[PlaylistSegment]) -> None:
    target = max(1, math.ceil(max(s.duration for s in segments) - 1e-9))
    lines = ["#EXTM3U", f"#EXT-X-VERSION:{HLS_VERSION}", f"#EXT-X-TARGETDURATION:{target}",
             "#EXT-X-MEDIA-SEQUENCE:0", "#EXT-X-PLAYLIST-TYPE:VOD", "#EXT-X-INDEPENDENT-SEGMENTS"]
    for s in segments:
        lines += [f"#EXTINF:{s.duration:.6f},", s.uri]
    lines.append("#EXT-X-ENDLIST")
    _write_text(path, "\n".join(lines) + "\n")


def write_master_playlist(path: Path, variants: list[VariantEntry]) -> None:
    lines = ["#EXTM3U", f"#EXT-X-VERSION:{HLS_VERSION}", "#EXT-X-INDEPENDENT-SEGMENTS"]
    for v in variants:
        lines += [f"#EXT-X-STREAM-INF:BANDWIDTH={v.bandwidth},AVERAGE-BANDWIDTH={v.average_bandwidth},"
                  f'RESOLUTION={v.width}x{v.height},FRAME-RATE={v.frame_rate:.3f},CODECS="{CODECS}"', v.uri]
    _write_text(path, "\n".join(lines) + "\n")


class PlaylistError(ValueError):
    pass


def _load(path: Path) -> m3u8.M3U8:
    try:
        text = path.read_text()
    except UnicodeDecodeError:
        raise PlaylistError(f"{path}: not a text playlist") from None
    if not text.startswith("#EXTM3U"):
        raise PlaylistError(f"{path}: not an HLS playlist (no #EXTM3U)")
    try:
        return m3u8.loads(text, uri=str(path))
    except Exception as exc:  # the parser raises assorted types on malformed input
        raise PlaylistError(f"{path}: malformed playlist ({exc})") from None


def segment_files(path: str | Path, rendition: int = 0) -> list[tuple[Path, float]]:
    """The segment files (with playlist durations) of a media playlist, or of one rendition of a
    master playlist. Segment URIs must be relative paths under the playlist's folder."""
    path = Path(path)
    pl = _load(path)
    if pl.is_variant:
        if not 0 <= rendition < len(pl.playlists):
            raise PlaylistError(f"{path}: rendition {rendition} not found (it lists {len(pl.playlists)})")
        path = _child(path, pl.playlists[rendition].uri)
        pl = _load(path)
        if pl.is_variant:
            raise PlaylistError(f"{path}: a master playlist where a media playlist was expected")
    if not pl.segments:
        raise PlaylistError(f"{path}: no segments")
    return [(_child(path, s.uri), float(s.duration)) for s in pl.segments]


def _child(playlist: Path, uri: str) -> Path:
    if "://" in uri or uri.startswith("/") or ".." in Path(uri).parts:
        raise PlaylistError(f"{playlist}: only relative local segment paths are supported ({uri!r})")
    return playlist.parent / uri
