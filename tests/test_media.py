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


# -- photos: EXIF orientation and ICC profiles ------------------------------------------------

def _s15(v: float) -> bytes:
    import struct

    return struct.pack(">i", round(v * 65536))


def linear_rgb_icc() -> bytes:
    """A minimal ICC v2 display profile: sRGB's primaries with a linear (gamma 1.0) curve, so
    that a pixel value v means what sRGB calls 255 * (v / 255) ** (1 / 2.4) or so: mid-grey is
    much lighter in sRGB."""
    import struct

    def xyz(x, y, z):
        return b"XYZ " + b"\0" * 4 + _s15(x) + _s15(y) + _s15(z)

    curv = b"curv" + b"\0" * 4 + struct.pack(">IH", 1, 0x0100) + b"\0\0"
    text = b"linear RGB"
    desc = b"desc" + b"\0" * 4 + struct.pack(">I", len(text) + 1) + text + b"\0" + b"\0" * 78
    tags = [(b"desc", desc), (b"wtpt", xyz(0.9642, 1.0, 0.8249)), (b"rXYZ", xyz(0.4361, 0.2225, 0.0139)),
            (b"gXYZ", xyz(0.3851, 0.7169, 0.0971)), (b"bXYZ", xyz(0.1431, 0.0606, 0.7141)),
            (b"rTRC", curv), (b"gTRC", curv), (b"bTRC", curv), (b"cprt", b"text" + b"\0" * 4 + b"none\0\0\0\0")]
    offset = 128 + 4 + 12 * len(tags)
    table, body = b"", b""
    for sig, data in tags:
        data += b"\0" * (-len(data) % 4)
        table += sig + struct.pack(">II", offset + len(body), len(data))
        body += data
    header = (struct.pack(">I", offset + len(body)) + b"\0" * 4 + struct.pack(">I", 0x02100000) + b"mntrRGB XYZ "
              + b"\0" * 12 + b"acsp" + b"\0" * 28 + _s15(0.9642) + _s15(1.0) + _s15(0.8249) + b"\0" * 48)
    return header + struct.pack(">I", len(tags)) + table + body


def test_a_photo_with_exif_orientation_comes_out_upright(tmp_path):
    """A portrait JPEG stored landscape with EXIF orientation 6 (turn 90 degrees clockwise to
    show) is read as the portrait picture a viewer shows, and its size is probed as such."""
    from PIL import Image

    from tngvideo.media import probe_image, read_image

    stored = np.full((32, 48, 3), 40, np.uint8)
    stored[:8, :8] = (230, 20, 20)  # a red mark at the stored top-left corner
    exif = Image.Exif()
    exif[0x0112] = 6
    path = tmp_path / "portrait.jpg"
    Image.fromarray(stored).save(path, quality=95, exif=exif)
    rgb = read_image(path)
    assert rgb.shape == (48, 32, 3) and probe_image(path) == (32, 48)
    assert rgb[:8, -8:, 0].mean() > 180 and rgb[:8, :8, 0].mean() < 80  # the mark is now top-right


def test_a_photo_with_a_non_srgb_icc_profile_is_converted_to_srgb(tmp_path):
    """Pixel values under an embedded profile other than sRGB are converted to sRGB (linear
    mid-grey 128 is about 188 in sRGB); an sRGB profile leaves the values exactly as stored."""
    from PIL import Image, ImageCms

    from tngvideo.media import read_image

    grey = np.full((8, 8, 3), 128, np.uint8)
    Image.fromarray(grey).save(tmp_path / "linear.png", icc_profile=linear_rgb_icc())
    assert abs(int(read_image(tmp_path / "linear.png")[0, 0, 1]) - 188) <= 2
    srgb = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    Image.fromarray(grey).save(tmp_path / "srgb.png", icc_profile=srgb)
    assert np.array_equal(read_image(tmp_path / "srgb.png"), grey)
