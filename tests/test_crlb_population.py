"""Cramér–Rao bounds of the survey-like population: autodiff (gauss, exp) against GalSim
finite differences."""

from __future__ import annotations

import numpy as np
import pytest
from numpy.testing import assert_allclose

from shearbridge.sim.population import (
    GALAXY_FAMILIES,
    POPULATION_LABELS,
    PopulationConfig,
    draw_population,
    render_pair,
)
from shearbridge.stats import crlb_population as cp
from shearbridge.stats.crlb import crlb_sigma

CFG = PopulationConfig()


def _labels(galaxies, psfs, n, seed):
    return draw_population(CFG, n, np.random.default_rng(seed), galaxies=galaxies, psfs=psfs)


def _fd_bounds(lab, rows, central=True):
    render = lambda r: render_pair(CFG, r)[0]  # noqa: E731
    return np.array(
        [
            crlb_sigma(
                cp.fisher_fd_render(
                    render, {k: lab[k][i] for k in POPULATION_LABELS}, central=central
                )
            )
            for i in rows
        ]
    )


@pytest.mark.pipeline
def test_forward_differences_give_the_central_bound_for_the_profiles_without_autodiff():
    """The study's Sersic and bulge+disk bounds use forward differences (half the renders); they
    must stay within 0.15% of central differences on g (measured <= 9e-4), the flux derivative
    being exact."""
    for galaxy, psf in (("sersic", "moffat"), ("bulge_disk", "kolmogorov")):
        lab = _labels([galaxy], [psf], 2, seed=13)
        fwd, cen = _fd_bounds(lab, [0, 1], central=False), _fd_bounds(lab, [0, 1])
        assert_allclose(fwd[:, 4:], cen[:, 4:], rtol=1.5e-3)
        assert not np.array_equal(fwd, cen), "the two schemes are different computations"


@pytest.mark.parametrize("galaxy", ["gauss", "exp"])
def test_autodiff_bound_agrees_with_galsim_finite_differences(galaxy):
    # the brief asks for 1% on g1, g2; measured <= 2e-5 (g) and <= 6e-5 (flux, size), so the test
    # holds 1e-4 on g: tight enough to catch a renormalised truncated PSF image (a 2.5e-4 - 5e-4
    # error with a Moffat)
    lab = _labels([galaxy], ["gauss", "moffat"], 8, seed=11)
    lab["size_arcsec"][0] = 1.4  # a large galaxy: the periodic images of the 128-px DFT grid
    lab["g1"][1], lab["g2"][1] = 0.6, -0.3  # an elongated one
    rows = [0, 1, 2, 3]
    assert set(lab["psf_id"][rows].tolist()) == {0, 1}  # both PSF families
    ad = cp.population_crlb(CFG, lab, rows)
    fd = _fd_bounds(lab, rows)
    assert_allclose(ad[:, 4:], fd[:, 4:], rtol=1e-4)
    assert_allclose(ad, fd, rtol=1e-3)


def test_kolmogorov_psf_wings_outside_the_stamp_cost_little():
    # 0.6% of a Kolmogorov PSF's flux falls outside the 53-px PSF image; not renormalising it
    # leaves ~2e-4
    lab = _labels(["exp"], ["kolmogorov"], 1, seed=12)
    assert_allclose(cp.population_crlb(CFG, lab), _fd_bounds(lab, [0]), rtol=1e-3)


@pytest.mark.pipeline
def test_bound_scales_inversely_with_flux():
    lab = _labels(["gauss", "exp"], ["gauss", "moffat", "kolmogorov"], 8, seed=13)
    doubled = dict(lab, flux=2.0 * lab["flux"])
    a, b = cp.population_crlb(CFG, lab), cp.population_crlb(CFG, doubled)
    assert_allclose(b[:, 1:], 0.5 * a[:, 1:], rtol=1e-6)  # centroid, size, g: 1 / flux
    assert_allclose(
        b[:, 0], a[:, 0], rtol=1e-6
    )  # sigma(flux) itself is unchanged: sigma(flux) / flux halves


@pytest.mark.pipeline
def test_rows_subset_returns_those_rows_in_order():
    lab = _labels(["gauss", "exp", "sersic"], ["gauss", "moffat"], 8, seed=14)
    sersic = int(np.flatnonzero(lab["galaxy_id"] == GALAXY_FAMILIES.index("sersic"))[0])
    others = np.flatnonzero(lab["galaxy_id"] != GALAXY_FAMILIES.index("sersic"))
    calls = []
    full = cp.population_crlb(CFG, lab, others, progress=calls.append)
    assert sum(calls) == len(others)
    rows = [int(others[3]), int(others[0]), sersic]
    sub = cp.population_crlb(CFG, lab, rows)
    assert sub.shape == (3, 6)
    assert_allclose(sub[:2], full[[3, 0]], rtol=1e-10)
    assert_allclose(sub[2], _fd_bounds(lab, [sersic], central=False)[0], rtol=1e-12)
    assert cp.population_crlb(CFG, lab, []).shape == (0, 6)


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda lab: lab.pop("psf_fwhm_arcsec"), "lack.*psf_fwhm_arcsec"),
        (lambda lab: lab["g2"].__setitem__(2, np.nan), "g2.*NaN"),
        (lambda lab: lab.__setitem__("flux", lab["flux"][:3]), "one length"),
        (lambda lab: lab["size_arcsec"].__setitem__(0, -0.1), "size_arcsec > 0"),
        (lambda lab: lab["galaxy_id"].__setitem__(1, 7), "galaxy_id"),
        (lambda lab: lab["psf_id"].__setitem__(1, 3), "psf_id"),
    ],
)
def test_bad_labels_raise_value_error_naming_the_problem(change, message):
    lab = _labels(["gauss"], ["gauss"], 4, seed=15)
    change(lab)
    with pytest.raises(ValueError, match=message):
        cp.population_crlb(CFG, lab)


def test_bad_rows_and_steps_raise_value_error():
    lab = _labels(["gauss"], ["gauss"], 4, seed=15)
    with pytest.raises(ValueError, match="rows must be integer indices into 4 rows"):
        cp.population_crlb(CFG, lab, [0, 4])
    with pytest.raises(ValueError, match="rows must be integer"):
        cp.population_crlb(CFG, lab, [0.5])
    with pytest.raises(ValueError, match="rel_step"):
        cp.fisher_fd_render(
            lambda r: render_pair(CFG, r)[0], {k: lab[k][0] for k in lab}, rel_step=0.1
        )
    with pytest.raises(ValueError, match="model"):
        cp.fisher_population_autodiff(CFG, [{k: lab[k][0] for k in lab}], "sersic")


def test_sersic_and_bulge_disk_use_finite_differences(monkeypatch):
    a, b = (
        _labels(["sersic"], ["moffat"], 2, seed=16),
        _labels(["bulge_disk"], ["kolmogorov"], 2, seed=16),
    )
    lab = {k: np.concatenate([a[k], b[k]]) for k in a}
    fd_calls = []
    real_fd = cp.fisher_fd_render
    monkeypatch.setattr(
        cp, "fisher_fd_render", lambda *a, **k: fd_calls.append(1) or real_fd(*a, **k)
    )
    monkeypatch.setattr(
        cp, "fisher_population_autodiff", lambda *a, **k: pytest.fail("autodiff path used")
    )
    out = cp.population_crlb(CFG, lab)
    assert len(fd_calls) == 4 and lab["galaxy_id"].tolist() == [2, 2, 3, 3]
    assert np.all(np.isfinite(out)) and np.all(out > 0)


def test_sersic_n1_is_the_exponential():
    # the brief asks for 2%; with forward differences measured <= 1e-3 on g (2.1e-3 on flux, size)
    lab = _labels(["sersic"], ["gauss", "moffat"], 3, seed=17)
    lab["sersic_n"][:] = 1.0
    as_exp = dict(lab, galaxy_id=np.full(3, GALAXY_FAMILIES.index("exp")), sersic_n=np.zeros(3))
    fd, ad = cp.population_crlb(CFG, lab), cp.population_crlb(CFG, as_exp)
    assert_allclose(fd[:, 4:], ad[:, 4:], rtol=1e-3)
    assert_allclose(fd, ad, rtol=3e-3)  # forward differences: measured 2.1e-3 on flux and size
