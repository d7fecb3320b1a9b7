"""The noise levels of the study, named once.

Every level set of the pipeline is derived from these names: the profiles' grid, the "pair" levels
and the survey levels of the studies (:mod:`shearbridge.studies`), the population study's cells,
shear tests and metacalibration (:mod:`shearbridge.config.population`) and the range its network
trains on (:class:`shearbridge.train.fresh.FreshConfig`). ``tests/test_studies.py`` checks that
they agree. Levels are pixel-noise sigmas in image units (the galaxies' flux is 1 to 5).
"""

from __future__ import annotations

__all__ = ["SURVEY_NOISE_GRID", "SHEARNET_HIGH", "METACAL_NOISE", "SURVEY_TEST_NOISE"]

#: ShearNet's noise grid (pixel sigma 1e-5 ... 1e-2: median matched-filter S/N 2e4 ... 21) and one
#: survey level, 2e-2 (median matched-filter S/N ~10, where surveys measure most of their galaxies).
SURVEY_NOISE_GRID: tuple[float, ...] = (1e-5, 1e-4, 1e-3, 1e-2, 2e-2)
#: ShearNet's "high" noise level: the second of the "pair" levels (the lowest is the grid's first).
SHEARNET_HIGH = 1e-3
#: The survey level of metacalibration (median matched-filter S/N ~21), where the ML fit shows noise
#: bias and still measures most galaxies; at 2e-2 the metacal images (twice the noise variance) sit
#: below S/N 10.
METACAL_NOISE = 1e-2
#: The levels of the survey-scale shear test (:mod:`shearbridge.config.survey`): median
#: matched-filter S/N ~ 10, ~ 20 and ~ 200, where LSST's |m| < 1e-3 is asked of a calibrated method.
SURVEY_TEST_NOISE: tuple[float, ...] = (SURVEY_NOISE_GRID[-1], METACAL_NOISE, SHEARNET_HIGH)
