"""AnaCal / FPFS behind the common interface: shear recovery, centroids, inputs, determinism.

The galaxies are the package's own (``shearbridge.sim.stamps``: 53-px stamps of 0.141"
pixels, a 0.25" Gaussian PSF, offsets up to 0.2"), in its paired shear-test layout
(16 stamps per galaxy: four orientations 45 degrees apart x ``+g, -g`` x ``+n, -n``,
``g = 0.02`` along one component per galaxy), noise-free, 96 galaxies per profile.
Measured with the defaults (kernel 0.52", ``c0 = 8 sigma_m00``), ``sum e / sum R``:

* Gaussian: m1 = +2.8e-4, m2 = +2.75e-4 (both from the ``+g`` stamps alone and from the
  paired ``+g - (-g)`` test, jackknife error ~2e-5); exponential: +2.9e-4, +3.0e-4.
* c: paired |c| < 1e-9; from the ``+g`` stamps alone the cross component leaks < 1e-7
  (the four orientations cancel the intrinsic shape; the old two, 90 degrees apart,
  left up to 6e-4).
* renoised at sigma_n = 1e-4 (one antithetic noise field per galaxy and orientation,
  renoising images shared by fours and negated on the ``-n`` stamps): see the test's output.
* measured at the stamp centre instead of the image centroid: m1 = -7.3 %.
"""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("anacal")

from shearbridge.config import SimConfig  # noqa: E402
from shearbridge.estimators.anacal import (  # noqa: E402
    AnaCalEstimator,
    ensemble_shear,
    weighted_centroid,
)
from shearbridge.estimators.base import (  # noqa: E402
    FLAG_NONPOSITIVE_FLUX,
    EstimatorInputError,
    ShapeEstimator,
)
from shearbridge.sim import stamps as simstamps  # noqa: E402
from shearbridge.stats.bias import paired_ensemble_bias  # noqa: E402

SCALE = 0.141
G = 0.02
N_PAIRS = 96  # galaxies per profile (x16 stamps)
TINY_NOISE = 1e-6  # the interface needs noise_sigma > 0; the stamps are noise-free


def _population(galaxy: str, seed: int):
    sim = SimConfig(galaxy=galaxy, shear_test=True, applied_shear=G)
    labels = simstamps.draw_population(sim, N_PAIRS, np.random.default_rng(seed))
    plus_n = np.flatnonzero(labels["noise_sign"] > 0)  # a -n stamp repeats its +n neighbour
    stamps = np.repeat(simstamps.render_rows(sim, labels, plus_n), 2, axis=0)
    return sim, labels, stamps, simstamps.render_psf(sim)


@pytest.fixture(scope="module", params=["gauss", "exp"])
def population(request):
    return _population(request.param, seed=11 if request.param == "gauss" else 12)


@pytest.fixture(scope="module")
def gauss_population():
    return _population("gauss", seed=11)


def _plus_shear_bias(result, labels):
    """m, c per component from ``sum e / sum R`` over the +g stamps (all orientations)."""
    out = {}
    comp = labels["pair_id"] % 2
    plus = labels["sign"] == 1
    for k in (0, 1):
        sel = result.ok & plus & (comp == k)
        g = ensemble_shear(result.g, result.extra["response"], mask=sel)
        out[f"m{k + 1}"] = g[k] / G - 1.0
        out[f"c{1 - k + 1}"] = g[1 - k]  # the other component: no shear applied
    return out


def test_is_a_shape_estimator():
    assert isinstance(AnaCalEstimator(), ShapeEstimator)


def test_ensemble_shear_recovers_applied_shear(population):
    sim, labels, stamps, psf = population
    est = AnaCalEstimator(noise_rev=False)
    res = est.measure(stamps, psf, SCALE, TINY_NOISE)
    assert np.all(res.flags == 0)
    b = _plus_shear_bias(res, labels)
    print(
        f"\n{sim.galaxy}: +g stamps m1={b['m1']:+.2e} m2={b['m2']:+.2e} "
        f"c1={b['c1']:+.1e} c2={b['c2']:+.1e}"
    )
    assert abs(b["m1"]) < 1e-2 and abs(b["m2"]) < 1e-2
    # the four orientations cancel the intrinsic shape (measured |c| < 1e-7; two at 90 degrees
    # apart left up to 6e-4)
    assert abs(b["c1"]) < 1e-6 and abs(b["c2"]) < 1e-6
    p = paired_ensemble_bias(res.g, res.extra["response"], labels, res.flags, n_blocks=16)
    print(
        f"{sim.galaxy}: paired m1={p['m1']:+.2e}±{p['m1_err']:.1e} "
        f"m2={p['m2']:+.2e}±{p['m2_err']:.1e} c1={p['c1']:+.1e} c2={p['c2']:+.1e}"
    )
    assert abs(p["m1"]) < 1e-2 and abs(p["m2"]) < 1e-2
    assert abs(p["c1"]) < 1e-4 and abs(p["c2"]) < 1e-4
    assert p["n_dropped"] == 0
    # e is not a shear: about half of g for these galaxies, with a response to match
    r = res.extra["response"]
    assert 0.3 < np.mean(r) < 0.8


def _antithetic_noise(labels, sigma, seed):
    """One field per galaxy and orientation, held by its four stamps with sign ``noise_sign``
    (the layout of the package's shear-test datasets)."""
    fields = np.random.default_rng(seed).normal(0.0, sigma, size=(N_PAIRS, 4, 53, 53))
    return labels["noise_sign"][:, None, None] * fields[labels["pair_id"], labels["orient"]]


@pytest.mark.pipeline
def test_renoised_mode_recovers_shear_at_low_noise(gauss_population):
    """Renoised at sigma_n = 1e-4 with antithetic pixel noise. Measured (noise seeds 3-5):
    antithetic renoising m = +2.7e-4 .. +2.8e-4 +- 2e-5 (the noise-free m, +2.8e-4), c ~ 1e-6;
    renoising images shared by fours but not negated on the -n stamps: m = -4e-4 .. +8e-4
    +- 2e-4 .. 5e-4, c +- 1e-4 (the renoising noise no longer cancels)."""
    sim, labels, stamps, psf = gauss_population
    sigma = 1e-4
    noisy = stamps + _antithetic_noise(labels, sigma, seed=3)
    clean = AnaCalEstimator(noise_rev=False).measure(stamps, psf, SCALE, TINY_NOISE)
    p0 = paired_ensemble_bias(clean.g, clean.extra["response"], labels, clean.flags, n_blocks=16)
    res = AnaCalEstimator(noise_rev=True, seed=5, noise_share=4, antithetic=True).measure(
        noisy, psf, SCALE, sigma
    )
    p = paired_ensemble_bias(res.g, res.extra["response"], labels, res.flags, n_blocks=16)
    plain = AnaCalEstimator(noise_rev=True, seed=5, noise_share=4).measure(noisy, psf, SCALE, sigma)
    q = paired_ensemble_bias(plain.g, plain.extra["response"], labels, plain.flags, n_blocks=16)
    print(
        f"\nrenoised, sigma_n={sigma}: antithetic m1={p['m1']:+.2e}±{p['m1_err']:.1e} "
        f"m2={p['m2']:+.2e}±{p['m2_err']:.1e}; not antithetic m1={q['m1']:+.2e}±{q['m1_err']:.1e} "
        f"m2={q['m2']:+.2e}±{q['m2_err']:.1e}"
    )
    assert abs(p["m1"]) < 1e-2 and abs(p["m2"]) < 1e-2
    assert p["n_dropped"] == 0
    for k in (1, 2):
        assert abs(p[f"m{k}"] - p0[f"m{k}"]) < 1e-4, (p, p0)
        assert p[f"m{k}_err"] < 5e-5 and abs(p[f"c{k}"]) < 1e-5
        # negating the renoising image on the -n stamps keeps the noise cancelling
        assert q[f"m{k}_err"] > 3 * p[f"m{k}_err"], (p, q)


def test_centroid_from_the_image_not_the_stamp_centre(gauss_population):
    sim, labels, stamps, psf = gauss_population
    true_x = (stamps.shape[-1] - 1) / 2 + labels["dx_arcsec"] / SCALE
    true_y = (stamps.shape[-1] - 1) / 2 + labels["dy_arcsec"] / SCALE
    x, y, status = weighted_centroid(stamps)
    assert np.all(status == 0)
    assert np.max(np.hypot(x - true_x, y - true_y)) < 1e-2
    assert np.max(np.hypot(labels["dx_arcsec"], labels["dy_arcsec"])) / SCALE > 0.5

    at_centroid = AnaCalEstimator(noise_rev=False).measure(stamps, psf, SCALE, TINY_NOISE)
    at_centre = AnaCalEstimator(noise_rev=False, detection="centre").measure(
        stamps, psf, SCALE, TINY_NOISE
    )
    assert np.allclose(at_centroid.extra["x"], x) and np.allclose(at_centroid.extra["y"], y)
    assert np.all(at_centre.extra["x"] == 26.0)
    assert np.max(np.abs(at_centroid.g - at_centre.g)) > 1e-3
    m_cen = _plus_shear_bias(at_centroid, labels)
    m_mid = _plus_shear_bias(at_centre, labels)
    print(f"\nm at the centroid {m_cen['m1']:+.2e}, at the stamp centre {m_mid['m1']:+.2e}")
    assert abs(m_cen["m1"]) < 1e-2 and m_mid["m1"] < -1e-2


def test_mosaic_matches_one_anacal_call_per_stamp(gauss_population):
    import anacal.fpfs as fpfs

    _, _, stamps, psf = gauss_population
    stamps = stamps[:6]
    est = AnaCalEstimator(noise_rev=False, c0=0.05, c0_units="m00", chunk=4)
    res = est.measure(stamps, psf, SCALE, TINY_NOISE)
    cfg = fpfs.FpfsConfig(npix=64, sigma_shapelets1=est.sigma_arcsec, c0=0.05)
    psf64 = np.zeros((64, 64))
    psf64[6:59, 6:59] = psf / psf.sum()  # centre pixel 26 -> 32
    for i in range(len(stamps)):
        det = np.array([(res.extra["y"][i], res.extra["x"][i])], dtype=[("y", "f8"), ("x", "f8")])
        one = fpfs.process_image(
            fpfs_config=cfg,
            pixel_scale=SCALE,
            noise_variance=TINY_NOISE**2,
            mag_zero=31.4,
            gal_array=stamps[i].astype(np.float32),
            psf_array=psf64,
            detection=det,
        )
        assert np.isclose(one["fpfs1_e1"][0], res.g1[i], rtol=0, atol=1e-12)
        assert np.isclose(one["fpfs1_e2"][0], res.g2[i], rtol=0, atol=1e-12)
        assert np.isclose(one["fpfs1_de1_dg1"][0], res.extra["response"][i, 0], rtol=0, atol=1e-12)


def test_deterministic_and_batch_independent(gauss_population):
    _, _, stamps, psf = gauss_population
    stamps = stamps[:12] + np.random.default_rng(0).normal(0.0, 1e-3, size=stamps[:12].shape)
    a = AnaCalEstimator(seed=7).measure(stamps, psf, SCALE, 1e-3)
    b = AnaCalEstimator(seed=7).measure(stamps, psf, SCALE, 1e-3)
    assert np.array_equal(a.g, b.g) and np.array_equal(a.extra["response"], b.extra["response"])
    split = AnaCalEstimator(seed=7)
    parts = [
        split.measure(stamps[:5], psf, SCALE, 1e-3),
        split.measure(stamps[5:], psf, SCALE, 1e-3),
    ]
    # the same numbers up to round-off (each stamp's place in AnaCal's mosaic differs)
    assert np.allclose(np.concatenate([p.g for p in parts]), a.g, rtol=0, atol=1e-10)
    other = AnaCalEstimator(seed=8).measure(stamps, psf, SCALE, 1e-3)
    assert not np.array_equal(other.g, a.g)  # the renoising image differs
    plain = AnaCalEstimator(noise_rev=False)
    assert np.array_equal(
        plain.measure(stamps, psf, SCALE, 1e-3).g, plain.measure(stamps, psf, SCALE, 1e-3).g
    )
    # shared renoising images: stamps 4i..4i+3 get one image
    shared = AnaCalEstimator(seed=7, noise_share=4)
    imgs = shared._noise_images(8, 5, 1.0)
    assert np.array_equal(imgs[0], imgs[3]) and not np.array_equal(imgs[3], imgs[4])
    # antithetic: the odd stamps of a group (the -n stamps) get the negated image
    anti = AnaCalEstimator(seed=7, noise_share=4, antithetic=True)._noise_images(8, 5, 1.0)
    assert np.array_equal(anti[0::2], imgs[0::2]) and np.array_equal(anti[1::2], -imgs[1::2])
    # counted across calls: a batch starting at an odd stamp starts negated
    anti_est = AnaCalEstimator(seed=7, noise_rev=True, noise_share=4, antithetic=True)
    anti_parts = [
        anti_est.measure(stamps[:5], psf, SCALE, 1e-3),
        anti_est.measure(stamps[5:], psf, SCALE, 1e-3),
    ]
    anti_all = AnaCalEstimator(seed=7, noise_rev=True, noise_share=4, antithetic=True).measure(
        stamps, psf, SCALE, 1e-3
    )
    assert np.allclose(np.concatenate([p.g for p in anti_parts]), anti_all.g, rtol=0, atol=1e-10)
    assert not np.array_equal(
        anti_all.g, AnaCalEstimator(seed=7, noise_share=4).measure(stamps, psf, SCALE, 1e-3).g
    )


def test_progress_and_flags(gauss_population):
    _, _, stamps, psf = gauss_population
    batch = stamps[:5].copy()
    batch[2] = 0.0  # no galaxy: no centroid
    seen = []
    res = AnaCalEstimator(noise_rev=False, chunk=2, progress=seen.append).measure(
        batch, psf, SCALE, TINY_NOISE
    )
    assert sum(seen) == 5 and len(seen) == 3
    assert res.flags[2] & FLAG_NONPOSITIVE_FLUX
    assert np.isnan(res.g1[2]) and np.all(np.isnan(res.extra["response"][2]))
    assert np.all(res.flags[[0, 1, 3, 4]] == 0) and np.all(np.isfinite(res.g[[0, 1, 3, 4]]))


def test_input_errors(gauss_population):
    _, _, stamps, psf = gauss_population
    est = AnaCalEstimator(noise_rev=False)
    bad = stamps[:3].copy()
    bad[1, 5, 5] = np.nan
    with pytest.raises(EstimatorInputError, match="NaN"):
        est.measure(bad, psf, SCALE, 1e-3)
    with pytest.raises(EstimatorInputError, match="shape"):
        est.measure(stamps[:3], psf[:-1, :-1], SCALE, 1e-3)
    with pytest.raises(EstimatorInputError):
        est.measure(stamps[:3, None], psf, SCALE, 1e-3)
    with pytest.raises(EstimatorInputError, match="noise_sigma"):
        est.measure(stamps[:3], psf, SCALE, 0.0)
    with pytest.raises(EstimatorInputError, match="npix"):
        AnaCalEstimator(npix=48).measure(stamps[:3], psf, SCALE, 1e-3)
    for kwargs in (
        {"npix": 63},
        {"c0_units": "flux"},
        {"sigma_arcsec": 3.5},
        {"c0": -1.0},
        {"detection": "peak"},
        {"noise_share": 0},
    ):
        with pytest.raises(ValueError):
            AnaCalEstimator(**kwargs)
    # the true-position control takes positions, and only it does
    centre = np.full(3, (stamps.shape[1] - 1) / 2.0)
    with pytest.raises(EstimatorInputError, match="positions"):
        AnaCalEstimator(detection="truth").measure(stamps[:3], psf, SCALE, 1e-3)
    with pytest.raises(EstimatorInputError, match="positions"):
        est.measure(stamps[:3], psf, SCALE, 1e-3, positions=(centre, centre))
    with pytest.raises(EstimatorInputError, match="3 finite"):
        AnaCalEstimator(detection="truth").measure(
            stamps[:3], psf, SCALE, 1e-3, positions=(centre[:2], centre[:2])
        )


def test_truth_control_measures_where_it_is_told():
    """At the stamp centre the control equals ``detection="centre"``, number for number."""
    import galsim

    psf = galsim.Gaussian(sigma=0.25).drawImage(nx=53, ny=53, scale=SCALE).array
    gal = galsim.Convolve(
        galsim.Exponential(half_light_radius=0.4).shear(g1=0.2, g2=-0.1),
        galsim.Gaussian(sigma=0.25),
    )
    stamps = np.stack([gal.drawImage(nx=53, ny=53, scale=SCALE).array] * 2)
    centre = np.full(2, 26.0)
    a = AnaCalEstimator(detection="truth", noise_rev=False).measure(
        stamps, psf, SCALE, 1e-3, positions=(centre, centre)
    )
    b = AnaCalEstimator(detection="centre", noise_rev=False).measure(stamps, psf, SCALE, 1e-3)
    assert np.array_equal(a.g, b.g) and np.array_equal(a.extra["response"], b.extra["response"])


def test_ensemble_shear_function():
    e = np.array([[0.1, 0.0], [0.3, -0.2], [np.nan, 0.0]])
    r = np.array([[0.5, 0.5], [0.5, 0.4], [0.5, 0.5]])
    g1, g2 = ensemble_shear(e, r)  # the non-finite row is left out
    assert np.isclose(g1, 0.4 / 1.0) and np.isclose(g2, -0.2 / 0.9)
    assert np.isclose(ensemble_shear(e, r, mask=np.array([True, False, False]))[0], 0.2)
    with pytest.raises(ValueError):
        ensemble_shear(e, r, mask=np.array([True, True, True]))
    with pytest.raises(ValueError):
        ensemble_shear(e[:, :1], r[:, :1])
