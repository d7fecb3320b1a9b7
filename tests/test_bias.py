"""m and c estimators: injected-bias recovery and jackknife-error calibration.

A synthetic "estimator" returns ``g_hat = (1 + m)(e_rot + g_applied) + c + n + eps``
with the 16-stamp structure of the shear-test set (stamp ``16 i + 4 orient + 2 s + f``):
intrinsic shape ``e`` at four orientations 45 degrees apart (``e * i**orient``), applied
shear ``+/-g`` along ``pair_id % 2`` (``sign``), a noise term ``n`` shared by the four
stamps of one galaxy and orientation with sign ``noise_sign`` (one antithetic noise field
per orientation) and a small independent term ``eps``. Tolerances are k-sigma of the
jackknife errors.
"""

from __future__ import annotations

import numpy as np
import pytest

from shearbridge.stats.bias import jackknife, linear_bias, paired_shear_bias

K_SIGMA = 4.0
PER = 16


def synthetic_paired(rng, n_gal, g, m, c, sigma_e=0.26, sigma_shared=1e-2, sigma_eps=1e-3):
    """Per-stamp labels and estimates of the 16-stamp shear test with known m, c."""
    slot = np.tile(np.arange(PER), n_gal)
    pair_id = np.repeat(np.arange(n_gal), PER)
    orient = slot // 4
    sign = np.where((slot // 2) % 2 == 0, 1, -1)
    noise_sign = np.where(slot % 2 == 0, 1, -1)
    comp = pair_id % 2
    applied = np.zeros((PER * n_gal, 2))
    applied[np.arange(PER * n_gal), comp] = sign * g
    e_int = rng.normal(0.0, sigma_e, (n_gal, 2))
    e_c = (e_int[:, 0] + 1j * e_int[:, 1])[pair_id] * np.array([1, 1j, -1, -1j])[orient]
    e_rot = np.stack([e_c.real, e_c.imag], axis=1)
    field = rng.normal(0.0, sigma_shared, (n_gal, 4, 2))[pair_id, orient]
    shared = noise_sign[:, None] * field
    eps = rng.normal(0.0, sigma_eps, (PER * n_gal, 2))
    g_hat = (1.0 + m) * (e_rot + applied) + np.asarray(c) + shared + eps
    labels = {
        "applied_g1": applied[:, 0],
        "applied_g2": applied[:, 1],
        "pair_id": pair_id,
        "orient": orient,
        "sign": sign,
        "noise_sign": noise_sign,
    }
    return g_hat, labels


def test_paired_recovers_injected_m_and_c():
    rng = np.random.default_rng(20251123)
    m_true, c_true = 0.012, (2e-4, -3e-4)
    g_hat, labels = synthetic_paired(rng, 4000, 0.02, m_true, c_true)
    res = paired_shear_bias(g_hat, labels, n_blocks=50)
    for k in (1, 2):
        assert abs(res[f"m{k}"] - m_true) < K_SIGMA * res[f"m{k}_err"], res
        assert abs(res[f"c{k}"] - c_true[k - 1]) < K_SIGMA * res[f"c{k}_err"], res
    # the design removes shape noise and the antithetic noise term: D is a difference of
    # means of 8 stamps each, sigma(D) = sigma_eps / 2, so sigma(m) ~ sigma_eps / (4 g sqrt(N_k)),
    # not sigma_e nor sigma_shared
    expected = 1e-3 / 2 / (2 * 0.02 * np.sqrt(2000)) * (1 + m_true)
    assert res["m1_err"] < 3 * expected
    assert res["n_galaxies"] == 4000 and res["n_dropped"] == 0


@pytest.mark.pipeline
def test_jackknife_error_matches_scatter_over_realisations():
    """The jackknife sigma(m) agrees with the spread of m over independent runs."""
    rng = np.random.default_rng(7)
    n_real = 200
    ms, errs = [], []
    for _ in range(n_real):
        g_hat, labels = synthetic_paired(rng, 400, 0.02, 0.0, (0.0, 0.0))
        res = paired_shear_bias(g_hat, labels, n_blocks=40)
        ms.append(res["m1"])
        errs.append(res["m1_err"])
    ratio = np.std(ms, ddof=1) / np.mean(errs)
    # standard error of a sample std from n_real draws ~ 1/sqrt(2 (n_real - 1))
    tol = K_SIGMA / np.sqrt(2 * (n_real - 1))
    assert abs(ratio - 1.0) < tol, ratio


def test_flagged_stamp_drops_its_whole_galaxy():
    rng = np.random.default_rng(3)
    g_hat, labels = synthetic_paired(rng, 200, 0.02, 0.0, (0.0, 0.0))
    flags = np.zeros(len(g_hat), dtype=int)
    flags[PER * 3 + 5] = 1  # galaxy 3
    flags[PER * 3 + 11] = 1  # galaxy 3 again: still one galaxy
    g_hat[PER * 7 + 9] = np.nan  # galaxy 7
    res = paired_shear_bias(g_hat, labels, flags=flags)
    assert res["n_dropped"] == 2 and res["n_galaxies"] == 198


def test_paired_rejects_broken_structure():
    rng = np.random.default_rng(4)
    g_hat, labels = synthetic_paired(rng, 20, 0.02, 0.0, (0.0, 0.0))
    with pytest.raises(ValueError, match="pair_id"):
        paired_shear_bias(g_hat[:-1], {k: v[:-1] for k, v in labels.items()})
    with pytest.raises(ValueError, match="lack"):
        paired_shear_bias(g_hat, {k: v for k, v in labels.items() if k != "orient"})
    with pytest.raises(ValueError, match="lack"):
        paired_shear_bias(g_hat, {k: v for k, v in labels.items() if k != "noise_sign"})
    with pytest.raises(ValueError, match="lack"):  # the old four-stamp labels
        old = {k: v for k, v in labels.items() if k not in ("orient", "noise_sign")}
        paired_shear_bias(g_hat, dict(old, rot90=labels["orient"] % 2))
    bad = dict(labels, sign=labels["sign"] * 2)
    with pytest.raises(ValueError, match="sign"):
        paired_shear_bias(g_hat, bad)
    bad = dict(labels, noise_sign=labels["noise_sign"] * 2)
    with pytest.raises(ValueError, match="noise_sign"):
        paired_shear_bias(g_hat, bad)
    bad = dict(labels, orient=labels["orient"] + 1)  # orient 4 does not exist
    with pytest.raises(ValueError, match="orient"):
        paired_shear_bias(g_hat, bad)
    dup = dict(labels, noise_sign=np.ones_like(labels["noise_sign"]))  # two stamps per slot
    with pytest.raises(ValueError, match="exactly one stamp"):
        paired_shear_bias(g_hat, dup)


def test_linear_bias_recovers_injected_m_and_c():
    rng = np.random.default_rng(11)
    n = 20000
    g_true = rng.normal(0.0, 0.26, (n, 2))
    m_true, c_true = np.array([-0.02, 0.03]), np.array([1e-3, -2e-3])
    g_hat = (1 + m_true) * g_true + c_true + rng.normal(0.0, 0.01, (n, 2))
    res = linear_bias(g_true, g_hat, n_blocks=50)
    for k in (0, 1):
        assert abs(res[f"m{k + 1}"] - m_true[k]) < K_SIGMA * res[f"m{k + 1}_err"], res
        assert abs(res[f"c{k + 1}"] - c_true[k]) < K_SIGMA * res[f"c{k + 1}_err"], res
    # the jackknife error of the slope is close to the OLS formula sigma / (sqrt(N) sd(x))
    ols = 0.01 / (np.sqrt(n) * 0.26)
    assert 0.5 < res["m1_err"] / ols < 2.0


def test_jackknife_of_the_mean_is_the_standard_error():
    x = np.random.default_rng(5).normal(size=1000)
    val, err = jackknife(lambda mask: np.mean(x[mask]), x.size, n_blocks=x.size)
    np.testing.assert_allclose(val, x.mean())
    np.testing.assert_allclose(err, x.std(ddof=1) / np.sqrt(x.size), rtol=1e-10)
