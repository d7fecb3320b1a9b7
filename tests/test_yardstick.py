"""The shear-noise yardstick: n_eff formula, van Trees bound, the calibrated two-realisation
scatter on synthetic estimates with known noise, and realisation B's independent noise."""

from __future__ import annotations

import numpy as np
import pytest

from shearbridge.config import get_profile
from shearbridge.steps.yardstick import second_noise
from shearbridge.summaries.yardstick import (
    _score,
    neff_fraction,
    van_trees_rmse,
    weighted_neff_fraction,
)


def test_neff_is_one_at_the_bound_and_falls_with_noise_and_losses():
    assert neff_fraction(0.01, 0.01, 0.26) == pytest.approx(1.0)
    assert neff_fraction(0.26, 0.0, 0.26) == pytest.approx(
        0.5
    )  # measurement noise equal to shape noise
    assert neff_fraction(0.01, 0.01, 0.26, fail=0.2) == pytest.approx(0.8)
    assert neff_fraction(0.05, 0.01, 0.26) < neff_fraction(0.02, 0.01, 0.26) < 1.0


def test_van_trees_lies_below_the_crlb_and_reaches_it_at_high_snr():
    crlb = np.full((100, 2), 0.01)
    assert van_trees_rmse(crlb, 0.26) == pytest.approx(0.01 / np.sqrt(1 + (0.01 / 0.26) ** 2))
    assert (
        van_trees_rmse(np.full((10, 2), 1.0), 0.26) < 0.26
    )  # prior-dominated: below the prior width
    assert van_trees_rmse(crlb, None) == pytest.approx(
        0.01
    )  # no prior: the harmonic mean of the bound
    mixed = np.concatenate([np.full((50, 2), 0.01), np.full((50, 2), 1.0)])
    assert van_trees_rmse(mixed, None) < np.sqrt(np.mean(mixed**2))  # <F>^-1/2 is not the RMS bound


def _synthetic(rng, n, noise, shrink, flags_b=None):
    g = rng.normal(0, 0.26, (n, 2))
    est = {
        "g_a": shrink * (g + rng.normal(0, noise, (n, 2))),
        "g_b": shrink * (g + rng.normal(0, noise, (n, 2))),
        "flags_a": np.zeros(n, int),
        "flags_b": np.zeros(n, int) if flags_b is None else flags_b,
        "g_true": g,
    }
    return est


def test_calibrated_scatter_recovers_the_noise_whatever_the_shrinkage():
    rng = np.random.default_rng(3)
    crlb = np.full((4000, 2), 0.02)
    for shrink in (1.0, 0.8):
        r = _score(_synthetic(rng, 4000, 0.03, shrink), shrink, crlb, 0.26, 50, rng)
        assert r["sigma_meas"] == pytest.approx(0.03, rel=0.03), (
            r
        )  # shrinkage undone by the response
        assert r["meas_over_crlb"] == pytest.approx(1.5, rel=0.03)
        assert 0 < r["neff_lost_pct_err"] < 1.0
        expected = 100 * (1 - neff_fraction(0.03, 0.02, 0.26))
        assert r["neff_lost_pct"] == pytest.approx(expected, abs=3 * r["neff_lost_pct_err"])


def test_flagged_galaxies_count_as_lost_and_a_negative_response_is_not_calibrated():
    rng = np.random.default_rng(4)
    flags = np.zeros(1000, int)
    flags[:100] = 1
    r = _score(
        _synthetic(rng, 1000, 0.02, 1.0, flags), 1.0, np.full((1000, 2), 0.02), 0.26, 20, rng
    )
    assert r["fail"] == pytest.approx(0.1) and r["n_used"] == 900
    assert r["neff_fraction"] == pytest.approx(0.9, rel=0.01)
    bad = _score(_synthetic(rng, 100, 0.02, 1.0), -0.5, np.full((100, 2), 0.02), 0.26, 5, rng)
    assert bad["calibratable"] is False


def test_realisation_b_is_deterministic_and_not_the_test_noise():
    profile = get_profile("quick")
    a, b = second_noise(profile, 3, 53), second_noise(profile, 3, 53)
    np.testing.assert_array_equal(a, b)
    assert abs(float(np.corrcoef(a[0].ravel(), a[1].ravel())[0, 1])) < 0.1
    ss = np.random.SeedSequence(
        entropy=profile.seed, spawn_key=(1, 1, 0)
    )  # the test set's own field of galaxy 0
    own = np.random.default_rng(ss).standard_normal((53, 53), dtype=np.float32)
    assert abs(float(np.corrcoef(a[0].ravel(), own.ravel())[0, 1])) < 0.1


def test_anacal_tuning_score_charges_noise_response_and_losses():
    from shearbridge.steps.tune_anacal import anacal_score

    rng = np.random.default_rng(5)
    e = rng.normal(0, 0.1, (2000, 2))
    r = np.full((2000, 2), 0.5)
    base = anacal_score(e, r, np.zeros(2000))
    assert base == pytest.approx(0.04, rel=0.1)  # var(e) / R^2 = 0.01 / 0.25
    assert anacal_score(e, 2 * r, np.zeros(2000)) == pytest.approx(base / 4)
    flags = np.zeros(2000)
    flags[:500] = 1
    assert anacal_score(e, r, flags) == pytest.approx(
        anacal_score(e[500:], r[500:], flags[500:]) / 0.75
    )


def test_the_bound_is_that_of_the_galaxies_the_method_measured():
    """A method that flags the faint galaxies is compared with the bound of the ones it kept."""
    rng = np.random.default_rng(6)
    flags = np.zeros(2000, int)
    flags[:1000] = 1
    crlb = np.full((2000, 2), 0.02)
    crlb[:1000] = 0.5  # the flagged half is much noisier
    r = _score(_synthetic(rng, 2000, 0.02, 1.0, flags), 1.0, crlb, 0.26, 20, rng)
    assert r["sigma_crlb"] == pytest.approx(0.02) and r["meas_over_crlb"] == pytest.approx(
        1.0, rel=0.05
    )
    assert r["fail"] == pytest.approx(0.5)


def test_weighted_neff_is_the_unweighted_one_for_equal_errors_and_charges_wrong_weights():
    n, e = 1000, 0.26
    d2, c2 = np.full(n, 0.03**2), np.full(n, 0.02**2)
    assert weighted_neff_fraction(d2, d2, c2, e) == pytest.approx(neff_fraction(0.03, 0.02, e))
    assert weighted_neff_fraction(c2, c2, c2, e) == pytest.approx(1.0), (
        "the bound itself, weighted by itself"
    )
    rng = np.random.default_rng(1)
    mixed = (
        np.where(rng.random(n) < 0.5, 0.02, 0.5) ** 2
    )  # half the galaxies far noisier than the shape noise
    assert weighted_neff_fraction(mixed, mixed, mixed, e) == pytest.approx(1.0)
    flat = weighted_neff_fraction(
        mixed, np.full(n, mixed.mean()), mixed, e
    )  # no weights: loses density
    wrong = weighted_neff_fraction(
        mixed, mixed[::-1], mixed, e
    )  # weights of other galaxies: loses more
    assert wrong < flat < 1.0
    assert weighted_neff_fraction(mixed[: n // 2], mixed[: n // 2], mixed, e) < 1.0, (
        "a lost galaxy is lost"
    )


def test_a_predicted_error_is_scored_with_inverse_variance_weights():
    rng = np.random.default_rng(5)
    n = 3000
    noise = np.where(rng.random(n) < 0.5, 0.02, 0.3)[:, None]
    g = rng.normal(0, 0.26, (n, 2))
    z = {
        "g_a": g + noise * rng.normal(size=(n, 2)),
        "g_b": g + noise * rng.normal(size=(n, 2)),
        "flags_a": np.zeros(n, int),
        "flags_b": np.zeros(n, int),
        "g_true": g,
        "sigma_g_a": noise[:, 0],
        "sigma_g_b": noise[:, 0],
    }
    r = _score(z, 1.0, np.repeat(noise, 2, axis=1), 0.26, 30, rng)
    assert r["neff_w_lost_pct"] == pytest.approx(0.0, abs=4 * r["neff_w_lost_pct_err"] + 0.5)
    assert r["neff_w_lost_pct_err"] > 0
    assert "neff_w_lost_pct" not in _score(
        {k: v for k, v in z.items() if not k.startswith("sigma")},
        1.0,
        np.repeat(noise, 2, axis=1),
        0.26,
        5,
        rng,
    )
