"""What the low-noise floor study measures: its methods' bins, its numerics variants, its split.

Light (no JAX): the step (:mod:`shearbridge.steps.floor`), the summary and the number script
``num_floor.py`` all read these names.
"""

from __future__ import annotations

__all__ = [
    "N_FIT",
    "SIZE_QUANTILES",
    "FLUX_EDGES",
    "FLOOR_METHODS",
    "DROP_LARGEST",
    "VARIANT_KEYS",
    "FLOOR_VARIANTS",
]

#: training-split objects the affine read-outs are fitted on (the first ones of the split)
N_FIT = 8192
#: quantiles of the comparison set's true sizes that bound the size bins (top 5% alone)
SIZE_QUANTILES = (0.0, 0.2, 0.4, 0.6, 0.8, 0.95, 1.0)
#: bin edges of the out-of-stamp flux fraction
FLUX_EDGES = (0.0, 1e-9, 1e-6, 1e-4, 1e-3, 1e-2, 1.0)
#: the methods binned by size and truncation (registry names)
FLOOR_METHODS = ("shapenet", "moments_affine", "hsm_regauss", "mlfit")
#: fraction of the largest galaxies left out of the "no_largest" subset
DROP_LARGEST = 0.05
#: short keys (names of \variable files) of the variants' names
VARIANT_KEYS = {
    "reference": "reference",
    "float64": "float64",
    "n_iter=16": "niter16",
    "no pixel": "nopixel",
}
#: reference, float64, 16 weight iterations, no pixel term (one change at a time)
FLOOR_VARIANTS = tuple(VARIANT_KEYS)
