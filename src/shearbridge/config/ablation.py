"""The ablation experiments: what each ShapeNet ingredient buys.

The ladder (:data:`ABLATION_LADDER`) adds one ingredient at a time to the baseline
architecture and ends at the final model; the removals (:data:`ABLATION_REMOVALS`)
take one away from (or add one to) the final model. Settings are ShapeNet keyword
arguments (:mod:`shearbridge.models.shapenet`); every step predicts (g1, g2) only, as
the final model does (step 0 is ``baseline_2out``'s network). Each step is trained
on a reduced budget (:func:`ablation_epochs`, :func:`ablation_objects`).

:func:`ablation_factory` turns a step name into an experiment function derived from
the final model's; :mod:`shearbridge.config.experiments` registers them in
``EXPERIMENTS`` with :func:`shearbridge.config.experiments.shapenet` as the final
model (this module does not import that one, so there is no import cycle).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, TypeVar

from shearbridge.config import ConfigError, Profile

__all__ = [
    "BASELINE_LIKE",
    "ABLATION_LADDER",
    "ABLATION_REMOVALS",
    "ablation_names",
    "ablation_epochs",
    "ablation_objects",
    "ablation_kwargs",
    "ablation_factory",
]

#: An experiment configuration (:class:`shearbridge.config.experiments.ExperimentConfig`).
E = TypeVar("E")

#: ShapeNet settings that reproduce the baseline's architecture: step 0 of the ladder.
BASELINE_LIKE: dict[str, Any] = {
    "channels": [16, 32],
    "dilations": [1, 1],
    "activation": "relu",
    "pool": "avg",
    "head": "dense",
    "head_layers": 1,
    "hidden": 128,
    "input_norm": False,
    "moments": False,
    "residual": False,
    "attention": False,
}
#: ``(name, label, change)`` of each step, each change applied on top of the previous ones.
ABLATION_LADDER: tuple[tuple[str, str, dict[str, Any]], ...] = (
    ("abl_0_baseline", "baseline architecture", {}),
    ("abl_1_gelu", "+ GELU", {"activation": "gelu"}),
    ("abl_2_momenthead", "+ moment-pooling head", {"head": "moment", "head_layers": 2}),
    ("abl_3_inputnorm", "+ flux-normalised input", {"input_norm": True}),
    ("abl_4_moments", "+ adaptive-moment features", {"moments": True}),
    ("abl_5_residual", "+ residual read-out (final)", {"residual": True}),
)
#: ``(name, label, change)``, each change applied to the final model alone.
# (removing the residual read-out from the final model gives abl_4_moments: not repeated)
ABLATION_REMOVALS: tuple[tuple[str, str, dict[str, Any]], ...] = (
    ("abl_no_gelu", "final - GELU (ReLU)", {"activation": "relu"}),
    ("abl_no_momenthead", "final - moment head (dense head)", {"head": "dense", "head_layers": 1}),
    ("abl_no_inputnorm", "final - flux normalisation", {"input_norm": False}),
    ("abl_plus_blurpool", "final + BlurPool (anti-aliased)", {"pool": "blur"}),
    ("abl_plus_attention", "final + channel attention", {"attention": True}),
)


def ablation_epochs(profile: Profile) -> int:
    """Epochs of every ablation step: a tenth of the profile's (at least one)."""
    return max(1, profile.epochs // 10)


def ablation_objects(profile: Profile) -> int:
    """Training objects of every ablation step: the first half of the training set.

    With :func:`ablation_epochs`, a twentieth of the full networks' sample-steps in the
    ``paper`` profile: the 22 ablation trainings must fit the one-hour build.
    """
    return profile.n_train // 2


def ablation_names() -> list[str]:
    """Every ablation experiment, ladder first."""
    return [n for n, _, _ in ABLATION_LADDER + ABLATION_REMOVALS]


def ablation_kwargs(name: str) -> tuple[str, dict[str, Any]]:
    """``(label, ShapeNet keyword arguments)`` of ablation step ``name``.

    The PSF sigma is not among them: it comes from the training data (as for the final model).
    """
    kwargs = dict(BASELINE_LIKE)
    for step, label, change in ABLATION_LADDER:
        kwargs |= change
        if step == name:
            return label, kwargs
    for step, label, change in ABLATION_REMOVALS:
        if step == name:
            return label, kwargs | change  # kwargs is now the final model
    raise ConfigError(f"unknown ablation {name!r}; known: {ablation_names()}")


def ablation_factory(
    name: str, final: Callable[[Profile, float], E]
) -> Callable[[Profile, float], E]:
    """The experiment function of ablation step ``name``, derived from ``final``'s experiment.

    ``final(profile, noise_sigma)`` gives the final model's experiment
    (:func:`shearbridge.config.experiments.shapenet`); the step keeps its recipe and
    replaces the ShapeNet settings, the epochs (:func:`ablation_epochs`), the training
    objects (:func:`ablation_objects`), the name and the description.
    """

    def make(profile: Profile, noise_sigma: float) -> E:
        """An ablation step: ShapeNet settings, trained for a tenth of the profile's epochs
        (at least one) on the first half of the training set, so that all steps fit the
        build; compare steps with each other.

        Command: ``python -m shearbridge train --config abl_<step> --noise 1e-5``.
        Runtime: about a twentieth of ``shapenet``'s, plus start-up.
        """
        exp: Any = final(profile, noise_sigma)
        label, kwargs = ablation_kwargs(name)
        train = dataclasses.replace(
            exp.train,
            model_kwargs=kwargs,
            epochs=ablation_epochs(profile),
            max_objects=ablation_objects(profile),
        )
        return dataclasses.replace(exp, name=name, train=train, description=label)

    make.__name__ = name
    return make
