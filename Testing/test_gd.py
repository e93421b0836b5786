"""Signal to Gd conversion: signal equations against closed forms, inversion, series conversion."""

from __future__ import annotations

import math

import numpy as np
import pytest

from qperf.errors import ValidationError
from qperf.gd import (
    NATIVE_T1_MS,
    R1_RELAXIVITY,
    GdLookupTable,
    SrSequence,
    pd_signal,
    ratio_to_gd,
    series_to_gd,
    sr_pd_ratio,
    sr_signal,
)
from qperf.types import PerfusionSeries

FLASH = SrSequence("flash", 1.5, 110.0, 12.0, 5.0, 2.5, 20)
SSFP = SrSequence("ssfp", 3.0, 100.0, 50.0, 5.0, 2.8, 25)
METADATA = {
    "readout": "flash",
    "field_strength_t": 1.5,
    "saturation_time_ms": 110.0,
    "flip_angle_deg": 12.0,
    "pd_flip_angle_deg": 5.0,
    "echo_spacing_ms": 2.5,
    "n_pe_to_center": 20,
}


def _flash_closed_form(gd: np.ndarray, seq: SrSequence, tissue: str, mz0_one: bool = False) -> np.ndarray:
    """Spoiled GRE after saturation: geometric approach to the steady state (closed form)."""
    key = 1.5 if abs(seq.field_strength_t - 1.5) < 0.2 else 3.0
    r1 = 1.0 / NATIVE_T1_MS[tissue][key] + R1_RELAXIVITY[key] * gd / 1000.0
    alpha = math.radians(seq.pd_flip_angle_deg if mz0_one else seq.flip_angle_deg)
    tr, n = seq.echo_spacing_ms, seq.n_pe_to_center
    td = seq.saturation_time_ms - n * tr
    e1 = np.exp(-tr * r1)
    ce = math.cos(alpha) * e1
    mss = (1.0 - e1) / (1.0 - ce)
    mz_td = np.ones_like(r1) if mz0_one else 1.0 - np.exp(-td * r1)
    return (mss + (mz_td - mss) * ce**n) * math.sin(alpha)


@pytest.mark.parametrize("tissue", ["blood", "myocardium"])
def test_flash_signal_matches_closed_form(tissue: str) -> None:
    gd = np.linspace(0.0, 15.0, 31)
    np.testing.assert_allclose(sr_signal(gd, FLASH, tissue), _flash_closed_form(gd, FLASH, tissue), rtol=1e-10)
    pd = _flash_closed_form(np.zeros(1), FLASH, tissue, mz0_one=True)[0]
    assert pd_signal(FLASH, tissue) == pytest.approx(pd, rel=1e-10)


def test_flash_without_readout_pulses_is_pure_saturation_recovery() -> None:
    seq = SrSequence("flash", 3.0, 100.0, 15.0, 5.0, 2.0, 0)
    gd = np.array([0.0, 0.5, 2.0, 8.0])
    r1 = 1.0 / 1300.0 + 4.9188 * gd / 1000.0
    expected = (1.0 - np.exp(-100.0 * r1)) * math.sin(math.radians(15.0)) / math.sin(math.radians(5.0))
    np.testing.assert_allclose(sr_pd_ratio(gd, seq, "myocardium"), expected, rtol=1e-12)


def test_ssfp_signal_limits() -> None:
    # No readout relaxation (TR -> 0, n = 0): the a/2-prepared signal is Mz(TS) sin(a/2).
    seq = SrSequence("ssfp", 1.5, 60.0, 60.0, 5.0, 0.001, 0)
    gd = np.array([0.0, 1.0, 5.0])
    r1 = 1.0 / 1700.0 + 5.565 * gd / 1000.0
    expected = (1.0 - np.exp(-60.0 * r1)) * math.sin(math.radians(30.0))
    np.testing.assert_allclose(sr_signal(gd, seq, "blood"), expected, rtol=1e-4)
    # Scheffler's transient approximation for an a/2-prepared train (independent formula).
    seq = SrSequence("ssfp", 1.5, 100.0, 50.0, 5.0, 2.8, 25)
    gd = np.array([0.0, 0.5, 1.0, 2.0, 4.0])
    r1 = 1.0 / 1700.0 + 5.565 * gd / 1000.0
    r2 = 1.0 / 250.0 + 5.78 * gd / 1000.0
    a = math.radians(50.0)
    tr, n = 2.8, 25
    td = 100.0 - n * tr
    mz = 1.0 - np.exp(-(td - tr / 2) * r1)
    e1, e2 = np.exp(-tr * r1), np.exp(-tr * r2)
    s_ss = (1 - e1) * math.sin(a) / (1 - (e1 - e2) * math.cos(a) - e1 * e2)
    lam = e1 * math.cos(a / 2) ** 2 + e2 * math.sin(a / 2) ** 2
    approx = math.sin(a / 2) * mz * lam ** (n + 0.5) + s_ss * (1 - lam ** (n + 0.5))
    np.testing.assert_allclose(sr_signal(gd, seq, "blood"), approx, rtol=0.05)


@pytest.mark.parametrize("seq", [FLASH, SSFP, SrSequence("flash", 3.0, 60.0, 10.0, 5.0, 2.2, 12)])
@pytest.mark.parametrize("tissue", ["blood", "myocardium"])
def test_lookup_table_inverts_the_signal_equation(seq: SrSequence, tissue: str) -> None:
    table = GdLookupTable(seq, tissue)
    assert np.all(np.diff(table.ratio) > 0)
    gd = np.linspace(0.0, min(10.0, table.gd_mmol_l[-1] - 0.5), 57)
    np.testing.assert_allclose(ratio_to_gd(sr_pd_ratio(gd, seq, tissue), seq, tissue), gd, atol=2e-3)
    # Below the native ratio (noise): linear extrapolation to negative values, no clipping.
    low = ratio_to_gd(table.ratio[0] * 0.9, seq, tissue)
    assert low < 0
    # Above the table: the largest concentration of the table.
    assert ratio_to_gd(table.ratio[-1] * 2, seq, tissue) == pytest.approx(table.gd_mmol_l[-1])


def test_series_conversion_removes_coil_shading_and_recovers_gd(rng: np.random.Generator) -> None:
    ny, nx, n_pd, nt = 20, 24, 3, 30
    yy, xx = np.mgrid[0:ny, 0:nx]
    coil = 500.0 * np.exp(-((yy - 3) ** 2 + (xx - 2) ** 2) / 400.0) + 50.0
    gd_true = np.clip(rng.gamma(2.0, 0.4, size=(nt, ny, nx)), 0.0, 8.0)
    gd_true[:5] = 0.0
    dynamic = coil * sr_signal(gd_true, FLASH, "myocardium")
    pd = np.broadcast_to(coil * pd_signal(FLASH, "myocardium"), (n_pd, ny, nx))
    data = np.concatenate([pd, dynamic]).astype(np.float32)
    data[:, 0, 0] = 0.0  # an air pixel
    series = PerfusionSeries(data, np.arange(n_pd + nt) * 0.9, units="signal", n_pd_frames=n_pd, metadata=METADATA)
    out = series_to_gd(series, tissue="myocardium")
    assert out.units == "gd_mmol_l" and out.n_pd_frames == 0 and out.data.shape == (nt, ny, nx)
    np.testing.assert_allclose(out.time_s, series.time_s[n_pd:])
    ok = np.ones((ny, nx), dtype=bool)
    ok[0, 0] = False
    np.testing.assert_allclose(out.data[:, ok], gd_true[:, ok], atol=5e-3)
    assert np.all(out.data[:, 0, 0] == 0.0)
    assert "gd_conversion" in out.metadata and series.units == "signal"


def test_series_already_in_gd_is_used_as_is() -> None:
    series = PerfusionSeries(np.ones((5, 3, 3)), np.arange(5.0), units="gd_mmol_l")
    assert series_to_gd(series) is series


@pytest.mark.parametrize("missing", sorted(METADATA))
def test_missing_metadata_names_the_key(missing: str) -> None:
    metadata = {k: v for k, v in METADATA.items() if k != missing}
    series = PerfusionSeries(np.ones((6, 3, 3)), np.arange(6.0), n_pd_frames=2, metadata=metadata)
    with pytest.raises(ValidationError, match=missing) as info:
        series_to_gd(series)
    assert "\n" not in str(info.value)
    # Given explicitly, the conversion works.
    out = series_to_gd(series, **{missing: METADATA[missing]})
    assert out.units == "gd_mmol_l"


def test_bad_sequences_and_series_are_refused() -> None:
    with pytest.raises(ValidationError, match="n_pd_frames"):
        series_to_gd(PerfusionSeries(np.ones((6, 3, 3)), np.arange(6.0), metadata=METADATA))
    with pytest.raises(ValidationError, match="field_strength_t"):
        SrSequence("flash", 7.0, 100.0, 12.0, 5.0, 2.5, 20)
    with pytest.raises(ValidationError, match="saturation_time_ms"):
        SrSequence("flash", 1.5, 10.0, 12.0, 5.0, 2.5, 20)
    with pytest.raises(ValidationError, match="readout"):
        SrSequence("epi", 1.5, 100.0, 12.0, 5.0, 2.5, 20)
    with pytest.raises(ValidationError, match="n_pe_to_center"):
        SrSequence("flash", 1.5, 100.0, 12.0, 5.0, 2.5, 2.5)  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match="tissue"):
        sr_signal(1.0, FLASH, "liver")


@pytest.mark.parametrize("readout", ["flash", "ssfp"])
def test_phantom_signal_converts_to_its_true_concentration(readout: str) -> None:
    from scipy import ndimage as ndi

    from qperf import phantom

    ps = phantom.generate_study(seed=0, noise=False, motion=False, blur=False, readout=readout, n_slices=1, n_frames=30)
    series, truth = ps.study.slices[0], ps.truth.slices[0]
    gd = series_to_gd(series, tissue="myocardium")
    myo = ndi.binary_erosion(truth.labels_ref == 2)
    expected = truth.gd_noise_free[-gd.n_frames :][:, myo]
    assert myo.sum() > 50 and expected.max() > 0.3
    np.testing.assert_allclose(gd.data[:, myo], expected, atol=0.01 * expected.max())
