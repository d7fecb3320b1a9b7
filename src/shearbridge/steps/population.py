"""The population study: one PSF- and noise-aware network, trained once, measured cell by cell.

Three pipeline steps (the only code here that reads or writes files, under ``src/data/<profile>/``;
:func:`prepare_sets` renders and bounds the evaluation's cells and shear tests ahead, beside the
trainings), one module each: the sets (:mod:`.population_sets`), the training
(:mod:`.population_train`) and the evaluation (:mod:`.population_eval`); this module is their face
and the ``population`` command:

* :func:`train_population`: draws the training and validation galaxies from the training
  families only (:func:`shearbridge.sim.population.training_families`: the held-out galaxy and PSF
  families never enter), renders them noise-free with their PSF images, computes each one's
  bound at unit noise, and trains :class:`~shearbridge.models.psfnet.PSFNet` with fresh noise
  (:func:`shearbridge.train.fresh.train_fresh`) once per seed of the plan. The parameters after
  :meth:`~shearbridge.models.psfnet.PSFNet.data_init` of the first seed are kept too: they are the
  *moments-only estimator with each stamp's own PSF* (the analytic shears, one least-squares scale
  per moment weight), the thing the network must beat.
* :func:`evaluate_population`: for every galaxy family x PSF family cell (held-out ones included),
  ``n_cell`` new galaxies with their exact bounds
  (:func:`shearbridge.stats.crlb_population.population_crlb`: autodiff where the JAX renderer has
  the profile, GalSim finite differences otherwise), each noise level with its own noise; RMSE/CRLB,
  the robust ratio, the pull width of the predicted uncertainty, and the network's gain over the
  moments-only estimator, each with a bootstrap error (and the scatter over seeds); and each cell's
  shear test (:func:`shear_cell_set`): m and c of each seed and of the moments-only estimator, with
  jackknife errors, raw and (at the plan's ``metacal_noise``) calibrated by metacalibration. The
  registry's ``population`` methods measure the cells, its ``population_shear`` methods the shear
  tests (:mod:`shearbridge.steps.population_methods`).

Training bounds: a Sersic training galaxy's weight uses the bound of an exponential of the same
size, shape and flux (autodiff, 1,000 times cheaper than finite differences of GalSim); the weight
only has to set each stamp's scale. The evaluation's bounds are exact for every family.
"""

from __future__ import annotations

from shearbridge.steps.population_eval import evaluate_population
from shearbridge.steps.population_sets import (
    SPLITS,
    cell_set,
    clean_set,
    prepare_sets,
    shear_cell_set,
)
from shearbridge.steps.population_train import TRAINED_BY, code_version, train_population

__all__ = [
    "clean_set",
    "cell_set",
    "shear_cell_set",
    "prepare_sets",
    "train_population",
    "evaluate_population",
    "code_version",
    "SPLITS",
    "TRAINED_BY",
]
