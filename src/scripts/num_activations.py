"""Numbers: largest |JAX - NumPy| over the six activations (values and derivatives).

Writes ``src/tex/output/activation_maxdiff.txt`` and ``activation_maxdiff_grad.txt``.
Run on its own: ``python src/scripts/num_activations.py``.
"""

import numpy as np

from shearbridge import activations as act
from shearbridge.outputs import fmt_sci, write_variable


def main() -> None:
    x = np.random.default_rng(20251123).uniform(-8.0, 8.0, 100_000)
    diffs = [act.max_abs_difference(name, x) for name in act.NAMES]
    write_variable("activation_maxdiff", fmt_sci(max(d[0] for d in diffs)))
    write_variable("activation_maxdiff_grad", fmt_sci(max(d[1] for d in diffs)))


if __name__ == "__main__":
    main()
