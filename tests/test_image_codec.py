import struct
import zlib

import numpy as np
import pytest
import torch

from conftest import code_at_thread_counts, natural_image
from tngvideo.bitstream import pack_image, unpack_image
from tngvideo.image.codec import DecodeError, ImageCodec, to_rgb8
from tngvideo.image.model import TNGImageModel
from tngvideo.image.weights import load_weights, save_weights
from tngvideo.latent.model import ModelConfig
from tngvideo.latent.weights import build_tables
from tngvideo.metrics import psnr


def test_decode_reproduces_encoder_reconstruction_bit_exactly(tiny_codec):
    img = natural_image()
    for q in (1.0, 3.37, 8.0):
        res = tiny_codec.compress_with_info(img, q)
        assert np.array_equal(tiny_codec.decompress(res.data), res.reconstruction)


@pytest.mark.parametrize("shape", [(1, 1), (1, 97), (63, 65), (130, 17), (64, 64)])
def test_odd_sizes_round_trip(tiny_codec, shape):
    img = natural_image(*shape, seed=shape[0])
    res = tiny_codec.compress_with_info(img, 4.0)
    out = tiny_codec.decompress(res.data)
    assert out.shape == (*shape, 3) and out.dtype == np.uint8
    assert np.array_equal(out, res.reconstruction)


def test_estimated_bits_agree_with_file_payload(tiny_codec):
    res = tiny_codec.compress_with_info(natural_image(256, 256), 6.0)
    assert abs(res.estimated_bits - res.payload_bits) <= 0.01 * res.payload_bits + 128


def test_header_fields_are_carried(tiny_codec):
    data = tiny_codec.compress(natural_image(50, 70), 2.5)
    f = unpack_image(data)
    assert (f.width, f.height, f.quality, f.model) == (70, 50, 2.5, "tiny")
    assert f.weights_hash == tiny_codec.weights_hash


def test_greyscale_and_rgba_follow_the_conversion_rule(tiny_codec):
    grey = natural_image(40, 40)[:, :, 0]
    rgba = np.dstack([natural_image(40, 40), np.full((40, 40), 7, np.uint8)])
    assert np.array_equal(to_rgb8(grey), np.dstack([grey] * 3))
    assert np.array_equal(to_rgb8(rgba), rgba[:, :, :3])
    assert tiny_codec.decompress(tiny_codec.compress(grey, 3.0)).shape == (40, 40, 3)
    with pytest.raises(ValueError):
        to_rgb8(np.zeros((4, 4, 3), dtype=np.float32))


def test_quality_out_of_range_is_refused(tiny_codec):
    lo, hi = tiny_codec.quality_range
    for q in (lo - 0.5, hi + 0.5):
        with pytest.raises(ValueError, match="quality"):
            tiny_codec.compress(natural_image(8, 8), q)


def test_truncated_files_are_rejected_at_every_length(tiny_codec):
    data = tiny_codec.compress(natural_image(32, 48), 3.0)
    for n in range(len(data)):
        with pytest.raises(DecodeError):
            tiny_codec.decompress(data[:n])


def test_bit_flips_are_rejected(tiny_codec):
    data = tiny_codec.compress(natural_image(32, 48), 3.0)
    rng = np.random.default_rng(0)
    for pos in rng.choice(len(data) * 8, size=200, replace=False):
        bad = bytearray(data)
        bad[pos // 8] ^= 1 << (pos % 8)
        with pytest.raises(DecodeError):
            tiny_codec.decompress(bytes(bad))


def _recrc(data: bytes) -> bytes:
    return data[:-4] + struct.pack("<I", zlib.crc32(data[:-4]))


def test_payload_mismatch_with_valid_file_checksum_is_caught_by_symbol_checksum(tiny_codec):
    data = tiny_codec.compress(natural_image(64, 64), 5.0)
    f = unpack_image(data)
    start = len(data) - 4 - len(f.latent)
    bad = bytearray(data)
    bad[start + len(f.latent) // 2] ^= 0x5A
    with pytest.raises(DecodeError, match="symbols"):
        tiny_codec.decompress(_recrc(bytes(bad)))


def test_foreign_and_unknown_version_files_are_rejected(tiny_codec):
    data = tiny_codec.compress(natural_image(16, 16), 3.0)
    with pytest.raises(DecodeError, match="magic"):
        tiny_codec.decompress(b"\x89PNG\r\n\x1a\n" + data[8:])
    newer = bytearray(data)
    newer[4] = 99
    with pytest.raises(DecodeError, match="version"):
        tiny_codec.decompress(_recrc(bytes(newer)))


def test_huge_claimed_size_is_rejected_before_decoding(tiny_codec):
    f = unpack_image(tiny_codec.compress(natural_image(16, 16), 3.0))
    data = pack_image(f)
    off = 6 + len(f.model) + 8
    bad = bytearray(data)
    bad[off : off + 4] = struct.pack("<I", 1 << 30)
    with pytest.raises(DecodeError, match="size"):
        tiny_codec.decompress(_recrc(bytes(bad)))


def test_weights_mismatch_is_rejected(tiny_codec, tmp_path):
    torch.manual_seed(1)
    other = TNGImageModel(ModelConfig(channels=16, latent_channels=24))
    path = tmp_path / "tiny.safetensors"
    save_weights(other, path, name="tiny", tables=build_tables(other))
    data = ImageCodec(load_weights(path)).compress(natural_image(16, 16), 3.0)
    with pytest.raises(DecodeError, match="weights"):
        tiny_codec.decompress(data)


def test_codec_without_tables_fails_loudly(tiny_weights, tmp_path):
    loaded = load_weights(tiny_weights)
    path = tmp_path / "notables.safetensors"
    save_weights(loaded.model, path, name="x", tables=None)
    with pytest.raises(ValueError, match="tables"):
        ImageCodec(load_weights(path))


def test_bytes_and_decode_identical_across_thread_counts(tiny_weights):
    (data1, dec1), (data2, dec2) = code_at_thread_counts(tiny_weights, natural_image(128, 192), 4.5)
    assert data1 == data2
    assert np.array_equal(dec1, dec2)


def test_fp16_shipping_keeps_the_codec_consistent(tiny_weights, tmp_path):
    path = tmp_path / "half.safetensors"
    save_weights(load_weights(tiny_weights).model, path, name="half", tables=None, half=True)
    codec = ImageCodec(load_weights(path))
    res = codec.compress_with_info(natural_image(64, 80), 5.0)
    assert np.array_equal(codec.decompress(res.data), res.reconstruction)


def test_higher_quality_gives_more_bytes_and_higher_psnr_on_a_photo(shipped_codec):
    from tngvideo.api.image import sample_image

    img = sample_image()[::2, ::2]  # 256x300 natural photograph from matplotlib's sample data
    sizes, psnrs = [], []
    for q in (1.0, 3.0, 5.5, 8.0):
        res = shipped_codec.compress_with_info(img, q)
        sizes.append(len(res.data))
        psnrs.append(psnr(img, shipped_codec.decompress(res.data)))
    assert sizes == sorted(sizes) and len(set(sizes)) == len(sizes)
    assert psnrs == sorted(psnrs)


def test_latent_search_lowers_the_real_rd_cost_and_still_round_trips(shipped_codec):
    from tngvideo.api.image import sample_image

    img = sample_image()[:97, :131]  # odd size: the search scores real pixels, not padding
    q = 3.0
    lam = shipped_codec.model.lambda_at(q)

    def real_cost(res):
        dec = shipped_codec.decompress(res.data)
        assert np.array_equal(dec, res.reconstruction)
        mse = np.mean((dec.astype(np.float64) - img) ** 2)
        return lam * mse + len(res.data) * 8 / img[..., 0].size

    plain = shipped_codec.compress_with_info(img, q)
    searched = shipped_codec.compress_with_info(img, q, search_steps=12)
    assert searched.data != plain.data
    assert abs(searched.estimated_bits - searched.payload_bits) <= 0.01 * searched.payload_bits + 128
    assert real_cost(searched) < 0.98 * real_cost(plain)
    # the search is seeded: the same input gives the same file
    assert shipped_codec.compress_with_info(img, q, search_steps=12).data == searched.data


def test_latent_search_refuses_a_negative_step_count(tiny_codec):
    with pytest.raises(ValueError, match="search"):
        tiny_codec.compress_with_info(natural_image(), 4.0, search_steps=-1)
