"""The profile's trained networks, and a registered method's estimator at one noise level.

A per-level network is the run trained at that noise level in the profile's data folder
(:meth:`shearbridge.layout.Layout.run`); a network trained once (the population study's PSFNet)
is an entry of the population study (:meth:`~shearbridge.layout.Layout.population_network`); a
classical estimator is built from the profile's seed. A missing network names the command that
trains it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from shearbridge import study
from shearbridge.config import Profile
from shearbridge.errors import MissingFileError
from shearbridge.layout import Layout

__all__ = ["network_loader", "require_trained", "population_network", "method_estimator"]


def network_loader(profile: Profile):
    """``load(experiment, noise_sigma) -> Trained``, the profile's loader.

    ``load`` returns the profile's run trained at that noise level.
    """

    def load(experiment: str, sigma: float) -> Any:
        return require_trained(
            Layout(profile).run(experiment, sigma), experiment, sigma, profile.name
        )

    return load


def population_network(profile: Profile, name: int | str) -> tuple[Any, Any]:
    """``(model, params)`` of a trained population-study entry (a seed, ``abl_<name>``) or of
    ``"moments"`` (the first seed's data-initialised parameters: the moments-only estimator)."""
    from flax import serialization

    from shearbridge.config.population import population_plan
    from shearbridge.models.psfnet import PSFNet

    path = Layout(profile).population_network(name)
    if not path.exists():
        raise MissingFileError(
            f"{path} is missing: run `python -m shearbridge population train --profile "
            f"{profile.name}` first"
        )
    kwargs = {n: k for n, _, k in population_plan(profile).entries()}.get(str(name), {})
    return PSFNet(**kwargs), serialization.msgpack_restore(path.read_bytes())


def require_trained(run: Path, experiment: str, sigma: float, profile_name: str) -> Any:
    """The model trained in ``run`` for ``experiment`` at noise ``sigma``; a missing one names the
    ``train`` command that makes it, one trained for something else is refused."""
    from shearbridge.models import MODEL_FILE, load_trained

    if not (Path(run) / MODEL_FILE).exists():
        raise MissingFileError(
            f"no trained model in {run} (has training finished?): train it with "
            f"`python -m shearbridge train --config {experiment} --noise {sigma:g} "
            f"--profile {profile_name}`"
        )
    trained = load_trained(run)
    trained.check_trained_for(experiment, sigma, run)
    return trained


def method_estimator(method: str, profile: Profile, sigma: float) -> Any:
    """The estimator of registered ``method`` at pixel noise ``sigma`` (image units)."""
    context = study.MethodContext(
        seed=profile.seed,
        noise_sigma=sigma,
        load_network=network_loader(profile),
        load_population=lambda name: population_network(profile, name),
    )
    return study.get_method(method).estimator(context)
