"""HLS playlists for `.tngv` segments: written as text, read back with the `m3u8` library."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path

import m3u8

from tngvideo.fileio import atomic_output

MAX_PLAYLIST_BYTES = 2 << 20  # 2 MiB: some 50,000 segment lines as `segment` writes them
MAX_PLAYLIST_ENTRIES = 20_000  # segments (or renditions) one playlist may list: 11 hours of 2 s segments
_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:")  # `http:`, `file:`, `concat:`, ... (FFmpeg reads them as protocols)
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


def write_media_playlist(path: Path, segments: list[PlaylistSegment], init_uri: str | None = None) -> None:
    """A VOD media playlist; `init_uri`: the fragmented-MP4 init segment every segment needs
    (EXT-X-MAP)."""
    target = max(1, math.ceil(max(s.duration for s in segments) - 1e-9))
    lines = ["#EXTM3U", f"#EXT-X-VERSION:{HLS_VERSION}", f"#EXT-X-TARGETDURATION:{target}",
             "#EXT-X-MEDIA-SEQUENCE:0", "#EXT-X-PLAYLIST-TYPE:VOD", "#EXT-X-INDEPENDENT-SEGMENTS"]
    if init_uri is not None:
        lines.append(f'#EXT-X-MAP:URI="{init_uri}"')
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


def _read_text(path: Path) -> str:
    """The playlist's text, refused early (before any parsing) when it is too large or too long."""
    if not path.is_file():
        raise PlaylistError(f"{path}: not a regular file")
    with path.open("rb") as f:
        raw = f.read(MAX_PLAYLIST_BYTES + 1)
    if len(raw) > MAX_PLAYLIST_BYTES:
        raise PlaylistError(f"{path}: playlist larger than {MAX_PLAYLIST_BYTES} bytes")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise PlaylistError(f"{path}: not a text playlist") from None
    entries = sum(1 for ln in text.splitlines() if ln.strip() and not ln.lstrip().startswith("#"))
    if entries > MAX_PLAYLIST_ENTRIES:
        raise PlaylistError(f"{path}: more than {MAX_PLAYLIST_ENTRIES} entries")
    return text


def _load(path: Path) -> m3u8.M3U8:
    text = _read_text(path)
    if not text.startswith("#EXTM3U"):
        raise PlaylistError(f"{path}: not an HLS playlist (no #EXTM3U)")
    try:
        return m3u8.loads(text, uri=str(path))
    except Exception as exc:  # the parser raises assorted types on malformed input
        raise PlaylistError(f"{path}: malformed playlist ({exc})") from None


def segment_files(path: str | Path, rendition: int = 0) -> list[tuple[Path, float]]:
    """The segment files (with playlist durations) of a media playlist, or of one rendition of a
    master playlist. Segment URIs must be relative paths under the playlist's folder."""
    return [(p, d) for p, d, _ in segment_entries(path, rendition)]


def segment_entries(path: str | Path, rendition: int = 0) -> list[tuple[Path, float, Path | None]]:
    """(segment file, playlist duration, its init segment or None) for each segment of a media
    playlist or of one rendition of a master playlist: fragmented-MP4 segments name their init
    segment with EXT-X-MAP; complete `.tngv` segments (written before) have none. Every URI must
    be a relative path under the playlist's folder."""
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
    inits: dict[str, Path] = {}

    def init_of(seg) -> Path | None:
        section = getattr(seg, "init_section", None)
        if section is None or not section.uri:
            return None
        if section.uri not in inits:
            inits[section.uri] = _child(path, section.uri)
        return inits[section.uri]

    return [(_child(path, s.uri), float(s.duration), init_of(s)) for s in pl.segments]


def _child(playlist: Path, uri: str) -> Path:
    """The file `uri` names, resolved (symbolic links included): a relative local path that stays
    inside the playlist's folder. A `scheme:` prefix is refused even where a file of that name
    exists, since FFmpeg would read it as a protocol (`http:host/x`, `file:/abs`)."""
    if not uri or _SCHEME.match(uri) or uri.startswith(("/", "\\")) or "\\" in uri or "\0" in uri:
        raise PlaylistError(f"{playlist}: only relative local segment paths are supported ({uri[:200]!r})")
    root = playlist.parent.resolve()
    try:
        target = (root / uri).resolve()
    except (OSError, RuntimeError) as exc:  # a symbolic link loop
        raise PlaylistError(f"{playlist}: cannot resolve {uri[:200]!r} ({exc.__class__.__name__})") from None
    if not target.is_relative_to(root):
        raise PlaylistError(f"{playlist}: {uri[:200]!r} leads outside the playlist's folder")
    return target
