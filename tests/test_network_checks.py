"""Networks flag what they cannot measure; every estimator refuses bad inputs with one clear error.

Issue 31 (items 2 and 3): a network returned plausible shears for stamps x 1000, negated or all-zero
stamps with flag 0, and its ``measure`` accepted a pixel scale of 0, a PSF of the wrong size, a
negative noise sigma or one it was not trained at; a factory built an estimator for a negative
noise.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from shearbridge.config import SimConfig
from shearbridge.errors import EstimatorInputError, ShearbridgeError
from shearbridge.sim import stamps as simmod

SIM = SimConfig()
SCALE = SIM.pixel_scale_arcsec
GRID = (1e-5, 1e-4, 1e-3, 1e-2, 2e-2)
SCALE_MSG = "pixel_scale_arcsec must be a positive, finite number"
NOISE_MSG = "noise_sigma must be a positive, finite number"


def _galaxies(n: int, seed: int, sim: SimConfig = SIM) -> np.ndarray:
    labels = simmod.draw_population(sim, n, np.random.default_rng(seed))
    return simmod.render_rows(sim, labels, range(n))


def _psf(sim: SimConfig = SIM) -> np.ndarray:
    return simmod.render_psf(sim)


def _noisy(clean: np.ndarray, sigma: float, seed: int = 1) -> np.ndarray:
    noise = np.random.default_rng(seed).standard_normal(clean.shape, dtype=np.float32)
    return (clean.astype(np.float32) + np.float32(sigma) * noise).astype(np.float32)


class _Trained:
    """A trained per-level network as training writes its record (``meta``), predicting ``g``."""

    def __init__(self, g=(0.1, -0.05), sigma: float = 1e-3, experiment: bool = True):
        from shearbridge.estimators.network import psf_sigma_px

        self.g = np.asarray(g, np.float64)
        self.meta = {
            "stamp_size_px": 53,
            "pixel_scale_arcsec": SCALE,
            "psf_moment_sigma_px": psf_sigma_px(_psf()),
        }
        if experiment:
            self.meta["experiment"] = {
                "name": "baseline",
                "noise_sigma": sigma,
                "train_dataset": "train",
                "profile": {"name": "quick"},
            }

    def predict(self, stamps, batch_size):
        g = np.broadcast_to(self.g, (len(stamps), 2)) if self.g.ndim == 1 else self.g[: len(stamps)]
        return np.array(g)


def _net(strict: bool = False, **kw):
    from shearbridge.estimators.network import NetworkEstimator

    return NetworkEstimator(_Trained(**kw), "baseline", strict=strict)


# ------------------------------------------------------------------ flag bits


def test_every_flag_bit_is_named_distinct_and_documented():
    from shearbridge.estimators import base

    assert base.FLAG_UNPHYSICAL and base.FLAG_OUT_OF_DOMAIN
    bits = [v for k, v in vars(base).items() if k.startswith("FLAG_") and k != "FLAG_NAMES"]
    assert sorted(bits) == sorted(base.FLAG_NAMES), "FLAG_NAMES lists every bit"
    assert all(b & (b - 1) == 0 for b in bits), "single bits"
    assert len(set(bits)) == len(bits), "distinct bits"
    for bit, name in base.FLAG_NAMES.items():
        assert f"{bit:>3}  {name}" in base.__doc__, f"bit {bit} ({name}) is documented"


# ------------------------------------------------------------------ networks flag


def test_a_network_flags_scaled_negated_empty_and_hot_pixel_stamps():
    from shearbridge.estimators.base import FLAG_NONPOSITIVE_FLUX, FLAG_OUT_OF_DOMAIN

    x = _noisy(_galaxies(16, 3), 1e-3)
    net = _net()
    assert net.measure(x, _psf(), SCALE, 1e-3).flags.tolist() == [0] * 16
    hot = np.zeros((1, 53, 53), np.float32)
    hot[0, 20, 30] = 2.0
    for what, stamps, sigma, bit in (
        ("x 1000", x * 1000, 1e-3, FLAG_OUT_OF_DOMAIN),
        ("/ 1000", x / 1000, 1e-6, FLAG_OUT_OF_DOMAIN),
        ("negated", -x, 1e-3, FLAG_NONPOSITIVE_FLUX),
        ("all zero", np.zeros_like(x), 1e-3, FLAG_NONPOSITIVE_FLUX),
        ("hot pixel", hot, 1e-3, FLAG_OUT_OF_DOMAIN),
    ):
        flags = net.measure(stamps, _psf(), SCALE, sigma).flags
        assert np.all(flags == bit), f"{what}: {flags}"
    # the study's calls (noise not told) flag the same
    assert np.all(net.measure(-x).flags == FLAG_NONPOSITIVE_FLUX)
    assert np.all(net.measure(x * 1000).flags == FLAG_OUT_OF_DOMAIN)


def test_a_shear_off_the_unit_disk_or_not_finite_is_flagged():
    from shearbridge.estimators.base import FLAG_NONFINITE, FLAG_UNPHYSICAL

    g = np.array([[0.3, 0.4], [0.6, 0.8], [47.0, 0.0], [np.nan, 0.0], [0.999, 0.0]])
    x = _noisy(_galaxies(5, 4), 1e-3)
    flags = _net(g=g).measure(x, _psf(), SCALE, 1e-3).flags
    assert flags.tolist() == [0, FLAG_UNPHYSICAL, FLAG_UNPHYSICAL, FLAG_NONFINITE, 0]


def test_no_galaxy_of_the_projects_sets_is_flagged_at_any_noise_level():
    """Real galaxies (test, exponential, Moffat-PSF, wide-PSF and shear-test sets; the training's
    extremes: the largest faintest and the smallest brightest) at every noise level of the grid and
    at the metacal level sqrt(2) x 2e-2: no flux or size flag, with the noise told or not."""
    import dataclasses

    from shearbridge.estimators.base import FLAG_NONPOSITIVE_FLUX
    from shearbridge.estimators.network import PSFNetEstimator

    sets = [
        _galaxies(24, 5),
        _galaxies(12, 6, dataclasses.replace(SIM, galaxy="exp")),
        _galaxies(12, 7, dataclasses.replace(SIM, psf="moffat")),
        _galaxies(12, 8, dataclasses.replace(SIM, psf_sigma_arcsec=0.30)),
    ]
    n = 32
    extremes = {
        "g1": np.zeros(n),
        "g2": np.zeros(n),
        "dx_arcsec": np.full(n, 0.2),
        "dy_arcsec": np.full(n, 0.2),
        "size_arcsec": np.repeat([2.4, 0.141], n // 2),
        "flux": np.repeat([1.0, 5.0], n // 2),
    }
    clean = np.concatenate(sets + [simmod.render_rows(SIM, extremes, range(n))])
    net = _net()
    for sigma in (*GRID, 2e-2 * math.sqrt(2)):
        x = _noisy(clean, sigma, seed=round(1e6 * sigma))
        for told in (sigma, None):
            flags = net.measure(x, _psf(), SCALE, told).flags
            assert np.all(flags == 0), f"noise {sigma:g} (told {told}): {np.flatnonzero(flags)}"
        if sigma <= 1e-3:  # the control: the same test galaxies negated are flagged
            assert np.all(net.measure(-x[:24], _psf(), SCALE, sigma).flags == FLAG_NONPOSITIVE_FLUX)
    from shearbridge.models.psfnet import PSFNet

    # PSFNet's rules (its flux range, the told PSF's size), its output held at g = 0
    tiny = PSFNet(channels=(2,), dilations=(1,), hidden=8, head_layers=1)
    est = PSFNetEstimator(tiny, None, "psfnet")
    est.predict = lambda stamps, psfs, sigma: np.zeros((len(stamps), 3))
    for sigma in GRID:
        assert np.all(est.measure(_noisy(clean, sigma), _psf(), SCALE, sigma).flags == 0)


# ------------------------------------------------------------------ network inputs


def test_a_per_level_network_checks_its_inputs_with_one_clear_error_each():
    x = _noisy(_galaxies(2, 9), 1e-3)
    psf = _psf()
    for strict in (False, True):
        net = _net(strict=strict)
        for scale in (0, -0.141, float("nan"), float("inf"), "0.141"):
            with pytest.raises(EstimatorInputError, match=SCALE_MSG):
                net.measure(x, psf, scale, 1e-3)
        for sigma in (-1e-3, 0.0, float("nan")):
            with pytest.raises(EstimatorInputError, match=NOISE_MSG):
                net.measure(x, psf, SCALE, sigma)
        with pytest.raises(EstimatorInputError, match=r"shape \(53, 53\), got \(41, 41\)"):
            net.measure(x, psf[6:-6, 6:-6], SCALE, 1e-3)
        nan_psf = psf.copy()
        nan_psf[26, 26] = np.nan
        with pytest.raises(EstimatorInputError, match="psf_image contains NaN or infinite pixels"):
            net.measure(x, nan_psf, SCALE, 1e-3)
        with pytest.raises(EstimatorInputError, match="psf_image has non-positive total flux -1"):
            net.measure(x, -psf, SCALE, 1e-3)
    strict = _net(strict=True)
    with pytest.raises(EstimatorInputError, match=f"baseline: {SCALE_MSG}, got None"):
        strict.measure(x, psf, None, 1e-3)
    with pytest.raises(EstimatorInputError, match=r"trained on 0.141''/px stamps, got 0.2''/px"):
        strict.measure(x, psf, 0.2, 1e-3)
    with pytest.raises(EstimatorInputError, match="noise sigma") as err:
        strict.measure(x, psf, SCALE, 1e-2)
    for part in (
        "trained at noise sigma 0.001",
        "told 0.01",
        "python -m shearbridge train --config baseline --noise 0.01 --profile quick",
    ):
        assert part in str(err.value)
    strict.measure(x, psf, SCALE, 1e-3 * (1 + 1e-8))  # the same level
    # the studies' calls stay accepted: metacal's doubled variance, no noise or scale, a wider PSF
    net = _net()
    net.measure(x, psf, SCALE, 1e-3 * math.sqrt(2))
    net.measure(x)
    net.measure(x, _psf(SimConfig(psf_sigma_arcsec=0.30)), SCALE, 1e-2)


@pytest.mark.pipeline
def test_psfnet_checks_its_inputs_and_flags():
    import jax

    from shearbridge.estimators.base import FLAG_NONPOSITIVE_FLUX, FLAG_OUT_OF_DOMAIN
    from shearbridge.estimators.network import PSFNetEstimator
    from shearbridge.models.psfnet import PSFNet

    model = PSFNet(channels=(2,), dilations=(1,), hidden=8, head_layers=1)
    x = _noisy(_galaxies(4, 10), 1e-3)
    psf = _psf().astype(np.float32)
    params = model.init(
        jax.random.PRNGKey(0), x[:2], np.stack([psf, psf]), np.full(2, 1e-3, np.float32)
    )
    est = PSFNetEstimator(model, params, "psfnet", batch_size=4)
    assert est.measure(x, psf, SCALE, 5e-3).flags.tolist() == [0] * 4, "any positive noise level"
    assert np.all(est.measure(-x, psf, SCALE, 1e-3).flags == FLAG_NONPOSITIVE_FLUX)
    assert np.all(est.measure(1000 * x, psf, SCALE, 1e-3).flags == FLAG_OUT_OF_DOMAIN)
    for scale in (0, -0.141, None):
        with pytest.raises(EstimatorInputError, match=f"psfnet: {SCALE_MSG}"):
            PSFNetEstimator(model, params, "psfnet", strict=True).measure(x, psf, scale, 1e-3)
    with pytest.raises(EstimatorInputError, match="pixel_scale_arcsec must be a positive"):
        est.measure(x, psf, 0.0, 1e-3)
    with pytest.raises(EstimatorInputError, match=r"trained on 0.141''/px stamps, got 0.2''/px"):
        PSFNetEstimator(model, params, "psfnet", strict=True).measure(x, psf, 0.2, 1e-3)
    with pytest.raises(EstimatorInputError, match=f"psfnet: {NOISE_MSG}, got -0.001"):
        est.measure(x, psf, SCALE, -1e-3)
    nan_psf = psf.copy()
    nan_psf[0, 0] = np.inf
    with pytest.raises(EstimatorInputError, match="psf_image contains NaN or infinite pixels"):
        est.measure(x, nan_psf, SCALE, 1e-3)
    with pytest.raises(EstimatorInputError, match="non-positive total flux"):
        est.measure(x, -psf, SCALE, 1e-3)


def test_the_psf_moments_name_what_is_wrong_with_the_psf():
    from shearbridge.estimators.network import psf_sigma_px

    nan_psf = _psf()
    nan_psf[3, 3] = np.nan
    with pytest.raises(EstimatorInputError, match="NaN or infinite"):
        psf_sigma_px(nan_psf)
    with pytest.raises(EstimatorInputError, match="non-positive total flux"):
        psf_sigma_px(-_psf())


# ------------------------------------------------------------------ every estimator


def test_every_classical_estimator_refuses_a_missing_or_bad_pixel_scale_with_one_error():
    from shearbridge.estimators.hsm import HSMEstimator
    from shearbridge.estimators.mlfit import MLFitEstimator

    x = _noisy(_galaxies(1, 11), 1e-3)
    for est in (HSMEstimator("REGAUSS"), MLFitEstimator()):
        for scale in (None, "0.141", 0.0, float("nan")):
            with pytest.raises(EstimatorInputError, match=SCALE_MSG):
                est.measure(x, _psf(), scale, 1e-3)
        with pytest.raises(EstimatorInputError, match=f"{NOISE_MSG}, got None"):
            est.measure(x, _psf(), SCALE, None)
    assert issubclass(EstimatorInputError, ShearbridgeError)


@pytest.mark.parametrize("sigma", [-1e-3, 0.0, float("nan"), float("inf"), None])
def test_every_factory_refuses_a_bad_noise_sigma_at_construction(sigma):
    from shearbridge.estimators import factories
    from shearbridge.method import MethodContext

    def never(*args):
        raise AssertionError("nothing is loaded for a bad noise sigma")

    ctx = MethodContext(seed=1, noise_sigma=sigma, load_network=never, load_population=never)
    for build in (
        factories.mlfit,
        factories.hsm("REGAUSS"),
        factories.hsm("KSB"),
        factories.ngmix,
        factories.anacal,
        factories.psfnet,
        factories.network("baseline"),
    ):
        with pytest.raises(EstimatorInputError, match=NOISE_MSG):
            build(ctx)


def test_the_user_api_refuses_a_negative_noise_sigma():
    import shearbridge

    with pytest.raises(ShearbridgeError, match=f"hsm_regauss: {NOISE_MSG}"):
        shearbridge.estimator("hsm_regauss", -1e-3)
