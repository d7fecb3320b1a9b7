"""The survey-like population: families, per-stamp PSFs, held-out families.

The held-out families never enter training.
"""

from __future__ import annotations

import galsim
import numpy as np
import pytest
from numpy.testing import assert_allclose

from shearbridge.config import ConfigError
from shearbridge.sim.population import (
    GALAXY_FAMILIES,
    POPULATION_LABELS,
    PSF_FAMILIES,
    PopulationConfig,
    draw_population,
    render_pair,
    render_population,
    training_families,
)

CFG = PopulationConfig()


def test_training_families_exclude_the_held_out_ones():
    galaxies, psfs = training_families(CFG)
    assert CFG.held_out_galaxy not in galaxies and CFG.held_out_psf not in psfs
    assert set(galaxies) | {CFG.held_out_galaxy} == set(CFG.galaxy_families)
    assert set(psfs) | {CFG.held_out_psf} == set(CFG.psf_families)
    lab = draw_population(CFG, 2000, np.random.default_rng(0), galaxies=galaxies, psfs=psfs)
    assert GALAXY_FAMILIES.index(CFG.held_out_galaxy) not in set(lab["galaxy_id"].tolist())
    assert PSF_FAMILIES.index(CFG.held_out_psf) not in set(lab["psf_id"].tolist())
    assert {GALAXY_FAMILIES[i] for i in lab["galaxy_id"]} == set(
        galaxies
    )  # every training family occurs


def test_labels_are_complete_deterministic_and_in_range():
    a = draw_population(
        CFG, 500, np.random.default_rng(3), galaxies=GALAXY_FAMILIES, psfs=PSF_FAMILIES
    )
    b = draw_population(
        CFG, 500, np.random.default_rng(3), galaxies=GALAXY_FAMILIES, psfs=PSF_FAMILIES
    )
    assert tuple(a) == POPULATION_LABELS
    for k in a:
        assert_allclose(a[k], b[k], rtol=0, atol=0)
    assert np.all(np.hypot(a["psf_g1"], a["psf_g2"]) < CFG.psf_g_max)
    assert np.all(
        (a["psf_fwhm_arcsec"] >= CFG.psf_fwhm_min) & (a["psf_fwhm_arcsec"] <= CFG.psf_fwhm_max)
    )
    sersic = a["galaxy_id"] == GALAXY_FAMILIES.index("sersic")
    assert set(a["sersic_n"][sersic].tolist()) <= set(CFG.sersic_n) and np.all(
        a["sersic_n"][~sersic] == 0
    )


def test_a_rendered_pair_is_the_galsim_convolution_and_its_psf():
    lab = draw_population(CFG, 1, np.random.default_rng(5), galaxies=["exp"], psfs=["moffat"])
    row = {k: v[0] for k, v in lab.items()}
    stamp, psf = render_pair(CFG, row)
    p = galsim.Moffat(beta=CFG.moffat_beta, fwhm=row["psf_fwhm_arcsec"]).shear(
        g1=row["psf_g1"], g2=row["psf_g2"]
    )
    ref_psf = p.drawImage(nx=53, ny=53, scale=0.141, dtype=np.float64).array
    assert_allclose(psf, ref_psf, atol=1e-6)
    gal = galsim.Exponential(
        half_light_radius=row["size_arcsec"] * np.sqrt(2 * np.log(2)), flux=row["flux"]
    )
    ref = (
        galsim.Convolve(gal.shear(g1=row["g1"], g2=row["g2"]), p)
        .drawImage(
            nx=53,
            ny=53,
            scale=0.141,
            dtype=np.float64,
            offset=(row["dx_arcsec"] / 0.141, row["dy_arcsec"] / 0.141),
        )
        .array
    )
    assert_allclose(stamp, ref, atol=1e-5 * ref.max())
    stamps, psfs = render_population(CFG, lab)
    assert stamps.dtype == np.float32 and stamps.shape == (1, 53, 53)
    assert_allclose(stamps[0], stamp, rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize(
    "change, match",
    [
        ({"held_out_galaxy": "spiral"}, "held_out_galaxy"),
        ({"psf_families": ("gauss",), "held_out_psf": "gauss"}, "held_out_psf"),
        ({"sersic_n": (9.0,)}, "sersic_n"),
        ({"psf_g_max": 0.7}, "psf_g_max"),
        ({"psf_fwhm_min": 0.9}, "PSF FWHM"),
    ],
)
def test_a_bad_config_is_named(change, match):
    with pytest.raises(ConfigError, match=match):
        CFG.replace(**change)


def test_draw_refuses_a_family_outside_the_config():
    cfg = CFG.replace(galaxy_families=("gauss", "exp"), held_out_galaxy="exp")
    with pytest.raises(ConfigError, match="galaxies"):
        draw_population(cfg, 3, np.random.default_rng(0), galaxies=["sersic"], psfs=["gauss"])
