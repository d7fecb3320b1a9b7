"""Figure: the six activation functions of the study and their derivatives.

JAX (``jax.nn``, derivatives by autodiff) as lines, the independent NumPy
formulas (derivatives by hand) as markers. Run on its own:
``python src/scripts/fig_activations.py`` -> ``src/tex/figures/fig_activations.pdf``.
"""

import numpy as np

from shearbridge.models import activations as act
from shearbridge.paper import plotting

LABELS = {
    "relu": "ReLU",
    "leaky_relu": "LeakyReLU",
    "elu": "ELU",
    "gelu": "GELU",
    "silu": "SiLU",
    "mish": "Mish",
}


def main() -> None:
    plotting.use_style()
    import matplotlib.pyplot as plt

    x = np.linspace(-4.0, 4.0, 801, dtype=np.float32)
    xm = x[::50].astype(np.float64)
    fig, axes = plt.subplots(1, 2, figsize=(plotting.PAGE_WIDTH_IN, 2.4), sharex=True)
    for name, style in zip(act.NAMES, plotting.series_styles()):
        color, ls, marker = style["color"], style["linestyle"], style["marker"]
        f, df = act.jax_activation(name), act.jax_derivative(name)
        axes[0].plot(x, np.asarray(f(x)), color=color, ls=ls, label=LABELS[name])
        axes[1].plot(x, np.asarray(df(x)), color=color, ls=ls)
        axes[0].plot(
            xm, act.numpy_activation(name)(xm), color=color, marker=marker, ls="none", mfc="none"
        )
        axes[1].plot(
            xm, act.numpy_derivative(name)(xm), color=color, marker=marker, ls="none", mfc="none"
        )
    axes[0].set(xlabel="pre-activation $x$", ylabel="$f(x)$", ylim=(-1.5, 4.0))
    axes[1].set(xlabel="pre-activation $x$", ylabel=r"$\mathrm{d}f/\mathrm{d}x$", ylim=(-0.3, 1.3))
    axes[0].legend(ncol=2, loc="upper left")
    axes[1].text(
        0.03,
        0.95,
        "lines: jax.nn (autodiff)\nmarkers: NumPy (by hand)",
        transform=axes[1].transAxes,
        va="top",
        fontsize=7,
    )
    fig.tight_layout()
    plotting.save(fig, "fig_activations")


if __name__ == "__main__":
    from shearbridge.paper.script import run_script

    run_script(main)
