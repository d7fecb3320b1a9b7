"""Numbers: largest |JAX - NumPy| over the six activations (values and derivatives).

Writes ``src/tex/output/activation_{maxdiff,maxdiff_grad,npoints,xmax}.txt``.
Run on its own: ``python src/scripts/num_activations.py``.
"""

import numpy as np

from shearbridge.config import Profile
from shearbridge.paper.outputs import fmt_sci, write_variable

N_POINTS = 100_000
X_MAX = 8.0


def outputs(profile: Profile) -> list[str]:
    """The variables :func:`main` writes (the same for every profile)."""
    return [f"activation_{k}" for k in ("maxdiff", "maxdiff_grad", "npoints", "xmax")]


def main() -> None:
    from shearbridge.models import activations as act  # JAX: imported when run, not when declared

    x = np.random.default_rng(20251123).uniform(-X_MAX, X_MAX, N_POINTS)
    diffs = [act.max_abs_difference(name, x) for name in act.NAMES]
    write_variable("activation_maxdiff", fmt_sci(max(d[0] for d in diffs)))
    write_variable("activation_maxdiff_grad", fmt_sci(max(d[1] for d in diffs)))
    write_variable("activation_npoints", fmt_sci(N_POINTS, digits=1))
    write_variable("activation_xmax", f"${X_MAX:g}$")


if __name__ == "__main__":
    from shearbridge.paper.outputs import run_numbers

    run_numbers(main, outputs)
