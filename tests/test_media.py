"""Decoded video as a player sees it: the colours a player shows are the frames we wrote."""

from fractions import Fraction

import av
import numpy as np
import pytest

from tngvideo.media import VideoFrame, write_video

BARS = [(185, 185, 185), (0, 185, 0), (194, 0, 183), (180, 180, 16), (16, 180, 180), (200, 30, 30),
        (30, 30, 200), (128, 128, 128)]


def colour_bars() -> np.ndarray:
    rgb = np.zeros((64, 128, 3), np.uint8)
    for i, c in enumerate(BARS):
        rgb[:, i * 16:(i + 1) * 16] = c
    return rgb


def as_a_player_shows_it(path) -> tuple[np.ndarray, dict]:
    """The first frame converted to RGB by FFmpeg with the stream's own colour tags."""
    with av.open(str(path)) as c:
        s = c.streams.video[0]
        cc = s.codec_context
        tags = {k: int(getattr(cc, k)) for k in ("colorspace", "color_range", "color_primaries", "color_trc")}
        return next(c.decode(s)).to_ndarray(format="rgb24"), tags


@pytest.mark.parametrize("colour", [{"colorspace": 1, "color_primaries": 1, "color_trc": 1, "color_range": 1},
                                    {}, {"colorspace": 6, "color_range": 2}],
                         ids=["bt709-tagged", "untagged", "bt601-full-range"])
@pytest.mark.parametrize("suffix", [".mp4", ".mkv"])
def test_written_video_shows_the_written_colours_under_its_own_tags(tmp_path, colour, suffix):
    """The RGB-to-Y'CbCr conversion uses the matrix and range the stream is tagged with (BT.709
    tagged where the source said nothing), and the lossless .mkv is tagged RGB, full range: a
    player reading the tags gets the bars back (a BT.601 conversion tagged BT.709 turned green 185
    into 158)."""
    bars = colour_bars()
    out = tmp_path / f"bars{suffix}"
    write_video(out, [VideoFrame(bars, i, 1) for i in range(3)], width=128, height=64, time_base=Fraction(1, 25),
                frame_rate=Fraction(25), colour=colour)
    shown, tags = as_a_player_shows_it(out)
    middles = np.s_[:, 4::16]  # away from the chroma edges between bars
    assert np.abs(shown[middles].astype(int) - bars[middles]).max() <= (0 if suffix == ".mkv" else 4)
    if suffix == ".mkv":
        assert tags["colorspace"] == 0 and tags["color_range"] == 2
        assert tags["color_primaries"] == colour.get("color_primaries", 2)  # the source's, or unspecified
    else:
        assert tags["colorspace"] == colour.get("colorspace", 1) and tags["colorspace"] != 2
        assert tags["color_range"] == colour.get("color_range", 1)


def test_odd_sized_mp4_is_4_2_0_at_an_even_size_and_says_so(tmp_path):
    """Browsers and hardware decoders refuse 4:4:4 H.264: an odd-sized picture goes out 4:2:0 at the
    next even size, its last column and row repeated, with a note; the picture itself is intact."""
    yy, xx = np.mgrid[0:33, 0:51]
    rgb = np.stack([4 * xx + 20, 6 * yy + 10, 2 * (xx + yy) + 30], -1).astype(np.uint8)  # smooth: little chroma loss
    out = tmp_path / "odd.mp4"
    n, notes = write_video(out, [VideoFrame(rgb, 0, 1)], width=51, height=33, time_base=Fraction(1, 25),
                           frame_rate=Fraction(25))
    with av.open(str(out)) as c:
        s = c.streams.video[0]
        assert (s.codec_context.width, s.codec_context.height, s.codec_context.pix_fmt) == (52, 34, "yuv420p")
    assert n == 1 and any("52x34" in w for w in notes)
    shown, _ = as_a_player_shows_it(out)
    assert shown.shape == (34, 52, 3)
    err = np.abs(shown[:33, :51].astype(int) - rgb)
    assert err.mean() < 3 and err.max() <= 16  # H.264 at crf 16 (a shifted picture is off by tens)
