"""The study's methods, declared once: every network, classical estimator and bound of the paper.

:mod:`shearbridge.study` holds the registry and its plans; this module is the table it is filled
with (:func:`declare_methods`, called once when the registry is imported). Adding a method is one
``register(Method(...))`` here (``docs/architecture.md``); a method outside the package registers
itself from a module named in ``$SHEARBRIDGE_METHODS``.
"""

from __future__ import annotations

from collections.abc import Callable

from shearbridge.estimators.factories import (
    anacal,
    anacal_detect,
    anacal_installed,
    anacal_truth,
    hsm,
    mlfit,
    network,
    ngmix,
    ngmix_installed,
    psfnet,
)
from shearbridge.method import Method

__all__ = ["declare_methods", "SLOW_SHEAR_FRACTION"]

#: Shear-test galaxies the slow per-galaxy fits (ML fit, HSM, ngmix) measure: the first eighth, a
#: random subset of the same population, so the build keeps its hour.
SLOW_SHEAR_FRACTION = 0.125


def declare_methods(
    register: Callable[[Method], Method], get_method: Callable[[str], Method]
) -> None:
    """Register the study's methods with ``register`` (:func:`shearbridge.study.register`);
    ``get_method`` looks up one registered already (a seed variant takes its network's label)."""
    from shearbridge.config.ablation import ABLATION_LADDER, ABLATION_REMOVALS
    from shearbridge.config.experiments import SEED_VARIANTS

    headline = frozenset(
        {
            "compare",
            "bias",
            "bias_grid",
            "timing",
            "robustness",
            "learning",
            "evaluate",
            "diagnosis",
            "population",
            "population_shear",
        }
    )
    register(
        Method(
            "baseline",
            "network",
            "EnhancedGalaxyNN",
            headline,
            network("baseline"),
            experiment="baseline",
            style=0,
            description="ShearNet's EnhancedGalaxyNN, layer for layer, ShearNet's recipe",
        )
    )
    register(
        Method(
            "shapenet",
            "network",
            "ShapeNet",
            headline,
            network("shapenet"),
            experiment="shapenet",
            style=4,
            levels="pair",
            description="the precision-preserving network (moment head, adaptive-moment residual), "
            "one per noise level: trained at the pair levels (PSFNet serves every level)",
        )
    )
    register(
        Method(
            "shapenet_mix",
            "network",
            "ShapeNet (mixture)",
            frozenset({"robustness"}),
            network("shapenet_mix"),
            experiment="shapenet_mix",
            style=5,
            description="ShapeNet trained on the galaxy-model mixture",
        )
    )
    register(
        Method(
            "psfnet",
            "network",
            "PSFNet",
            frozenset(
                {"compare", "bias", "bias_grid", "metacal", "timing", "survey", "survey_metacal"}
            ),
            psfnet,
            style=9,
            once=True,
            uncertainty=True,
            description="the population study's PSF- and noise-aware network (its first seed), "
            "trained once on fresh noise over every level; told each stamp's PSF image and noise "
            "sigma",
        )
    )
    register(
        Method(
            "moments_affine",
            "classical",
            "Moments + affine fit",
            (headline - {"diagnosis", "learning", "evaluate", "population", "population_shear"})
            | {"metacal"},
            network("moments_affine"),
            experiment="moments_affine",
            style=7,
            description="ShapeNet's analytic part alone: PSF-deconvolved adaptive moments and a "
            "least-squares affine read-out fitted on the training split, no network",
        )
    )
    register(
        Method(
            "mlfit",
            "classical",
            "ML fit (JAX)",
            frozenset(
                {
                    "compare",
                    "bias",
                    "bias_grid",
                    "metacal",
                    "timing",
                    "robustness",
                    "population",
                    "survey_metacal",
                }
            ),
            mlfit,
            style=3,
            shear_fraction=SLOW_SHEAR_FRACTION,
            description="JAX maximum-likelihood fit of an elliptical Gaussian",
        )
    )
    register(
        Method(
            "hsm_regauss",
            "classical",
            "HSM REGAUSS",
            frozenset(
                {
                    "compare",
                    "bias",
                    "bias_grid",
                    "timing",
                    "robustness",
                    "population",
                    "population_shear",
                }
            ),
            hsm("REGAUSS"),
            style=2,
            shear_fraction=SLOW_SHEAR_FRACTION,
            description="GalSim HSM re-Gaussianization",
        )
    )
    register(
        Method(
            "hsm_ksb",
            "classical",
            "HSM KSB",
            frozenset({"compare", "bias", "bias_grid", "timing"}),
            hsm("KSB"),
            style=1,
            shear_fraction=SLOW_SHEAR_FRACTION,
            description="GalSim HSM KSB",
        )
    )
    register(
        Method(
            "anacal",
            "classical",
            "AnaCal (FPFS)",
            frozenset({"bias", "bias_grid", "timing", "population_shear", "survey"}),
            anacal,
            available=anacal_installed,
            style=8,
            description="AnaCal FPFS ellipticity with its analytic shear response; the shear of an "
            "ensemble is sum e / sum R (not a per-galaxy shear, so not in the RMSE studies)",
        )
    )
    register(
        Method(
            "anacal_detect",
            "classical",
            "AnaCal (own detection)",
            frozenset({"survey"}),
            anacal_detect,
            available=anacal_installed,
            style=11,
            description="AnaCal as a survey runs it: its own peak detection, the detection and "
            "selection responses and renoising (the ensemble shear sums over detections)",
        )
    )
    register(
        Method(
            "anacal_true",
            "classical",
            "AnaCal at the true position",
            frozenset({"survey"}),
            anacal_truth,
            available=anacal_installed,
            style=10,
            description="control of the survey test: AnaCal measured at each galaxy's true "
            "position, which no survey knows (what the position's noise costs)",
        )
    )
    register(
        Method(
            "ngmix",
            "classical",
            "ngmix ML fit",
            frozenset({"compare", "bias", "timing"}),
            ngmix,
            style=6,
            shear_fraction=SLOW_SHEAR_FRACTION,
            available=ngmix_installed,
            description="ngmix maximum-likelihood fit (where ngmix is installed)",
        )
    )
    for net, extra in SEED_VARIANTS.items():
        for k in extra:
            register(
                Method(
                    f"{net}_seed{k}",
                    "network",
                    f"{get_method(net).label} (seed {k})",
                    frozenset({"seeds"}),
                    network(f"{net}_seed{k}"),
                    experiment=f"{net}_seed{k}",
                    style=-1,
                    description=f"{get_method(net).label} trained with seed {k}",
                )
            )
    for step, label, _ in ABLATION_LADDER + ABLATION_REMOVALS:
        register(
            Method(
                step,
                "network",
                label,
                frozenset({"ablation"}),
                network(step),
                experiment=step,
                style=-1,
                description=f"ablation: {label}",
            )
        )
    register(
        Method(
            "crlb",
            "bound",
            "Cramér–Rao bound",
            frozenset(),
            style=-2,
            description="per-galaxy Cramér–Rao bound on (g1, g2), six free parameters",
        )
    )
