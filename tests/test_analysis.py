import math

import numpy as np
import pytest

from tngvideo.analysis.bdrate import bd_psnr, bd_rate
from tngvideo.metrics import ms_ssim, psnr

RATES = [0.12, 0.25, 0.5, 0.9]
PSNRS = [28.0, 30.5, 33.0, 35.8]


def test_bd_rate_of_identical_curves_is_zero():
    assert bd_rate(RATES, PSNRS, RATES, PSNRS) == pytest.approx(0.0, abs=1e-9)


@pytest.mark.parametrize("factor", [0.5, 0.9, 1.25])
def test_bd_rate_of_a_uniformly_scaled_curve_is_the_scale(factor):
    assert bd_rate(RATES, PSNRS, [r * factor for r in RATES], PSNRS) == pytest.approx((factor - 1) * 100, abs=1e-6)


def test_bd_psnr_of_a_shifted_curve_is_the_shift():
    assert bd_psnr(RATES, PSNRS, RATES, [p + 0.7 for p in PSNRS]) == pytest.approx(0.7, abs=1e-9)


def test_bd_rate_without_overlap_is_nan():
    assert math.isnan(bd_rate(RATES, PSNRS, RATES, [p + 20 for p in PSNRS]))


# Published curve pairs with the values of the JCT-VC/JVET common-test-conditions PCHIP
# BD-rate (the Excel sheet of JCTVC-L1100 / JVET-T2010), as reproduced by the FAU-LMS
# `bjontegaard` package 1.3.0 (method="pchip"), which matches that sheet to 10 decimals.
# Pair 1: x265 presets measured with ffmpeg (the package's README example).
# Pair 2: "Sample 3" of the widely copied VCEG-M33 reference script.
PUBLISHED = [
    (([9487.76, 4593.60, 2486.44, 1358.24], [40.037, 38.615, 36.845, 34.851]),
     ([9787.80, 4469.00, 2451.52, 1356.24], [40.121, 38.651, 36.970, 34.987]),
     -4.417485350589045, 0.11969278542479489),
    (([686.76, 309.58, 157.11, 85.95], [40.28, 37.18, 34.24, 31.42]),
     ([893.34, 407.8, 204.93, 112.75], [40.39, 37.21, 34.17, 31.24]),
     31.379878202397627, -1.1834724046224592),
]


@pytest.mark.parametrize("anchor,test,rate,dpsnr", PUBLISHED)
def test_bd_metrics_match_the_published_pchip_values(anchor, test, rate, dpsnr):
    assert bd_rate(*anchor, *test) == pytest.approx(rate, abs=1e-9)
    assert bd_psnr(*anchor, *test) == pytest.approx(dpsnr, abs=1e-9)


def test_psnr_matches_hand_computation():
    a = np.zeros((4, 4, 3), np.uint8)
    b = a.copy()
    b[0, 0, 0] = 10  # MSE = 100 / 48
    assert psnr(a, b) == pytest.approx(10 * math.log10(255**2 / (100 / 48)))
    assert psnr(a, a) == math.inf


def test_ms_ssim_is_one_for_identical_images_and_lower_for_noisy_ones():
    rng = np.random.default_rng(0)
    a = rng.integers(0, 256, (192, 192, 3), dtype=np.uint8)
    noisy = np.clip(a.astype(int) + rng.integers(-40, 41, a.shape), 0, 255).astype(np.uint8)
    assert ms_ssim(a, a) == pytest.approx(1.0)
    assert ms_ssim(a, noisy) < 0.99
    assert math.isnan(ms_ssim(a[:100, :100], a[:100, :100]))


def test_carry_history_copies_earlier_runs_but_not_the_init_state(tmp_path):
    import json

    from tngvideo.analysis.records import carry_history

    init, out = tmp_path / "init.json", tmp_path / "out.json"
    init.write_text(json.dumps({"training_state": {"steps": 5}, "config": {}, "shipped_as": "fp16",
                                "gpu_runs": [{"run": 1}], "cpu_runs": [{"run": 2}]}))
    out.write_text(json.dumps({"training_state": {"steps": 9}, "config": {"batch": 4}}))
    carry_history(init, out)
    got = json.loads(out.read_text())
    assert got == {"training_state": {"steps": 9}, "config": {"batch": 4},
                   "gpu_runs": [{"run": 1}], "cpu_runs": [{"run": 2}]}
