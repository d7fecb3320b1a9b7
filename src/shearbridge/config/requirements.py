"""The shear-bias requirements the study is held to, and the shear test's precision targets."""

from __future__ import annotations

__all__ = [
    "LSST_M_REQUIREMENT",
    "LSST_C_REQUIREMENT",
    "EUCLID_M_REQUIREMENT",
    "EUCLID_C_REQUIREMENT",
    "SIGMA_M_TARGET_HIGH_SNR",
    "SIGMA_M_TARGET_SURVEY",
    "SIGMA_M_HIGH_SNR",
    "SIGMA_M_SURVEY_TEST_HIGH_SNR",
]


# Shear-bias requirements on isolated galaxies (LSST DESC Science Requirements Document,
# Mandelbaum et al. 2018, arXiv:1809.01669; the paper's introduction).
LSST_M_REQUIREMENT = 1e-3
LSST_C_REQUIREMENT = 1e-4
# Euclid's (Cropper et al. 2013, MNRAS 431, 3103): sigma(m) < 2e-3, c known to 5e-4.
EUCLID_M_REQUIREMENT = 2e-3
EUCLID_C_REQUIREMENT = 5e-4
# The shear test's precision targets: sigma(m) at median matched-filter S/N >= 200 and below it.
SIGMA_M_TARGET_HIGH_SNR = 1e-4
SIGMA_M_TARGET_SURVEY = 1e-3
SIGMA_M_HIGH_SNR = 200.0
# The survey-scale shear test's (shearbridge.config.survey) at S/N ~ 200; at survey S/N it asks
# SIGMA_M_TARGET_SURVEY.
SIGMA_M_SURVEY_TEST_HIGH_SNR = 3e-4
