"""Write the per-figure summaries (``python -m shearbridge summarize WHAT``).

Figure scripts read only these files (:mod:`shearbridge.summaries.store`); each records
the profile it came from. Snakefile rules write them, so figures never reach into
checkpoints or datasets. Which methods and noise levels each holds comes from the
registry (:mod:`shearbridge.study`).
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np

from shearbridge import study
from shearbridge import layout
from shearbridge.layout import Layout
from shearbridge.config import Profile, active_profile, noise_tag
from shearbridge.errors import ConfigError, MissingFileError
from shearbridge.io import atomic_path, read_json, save_npz, write_json

__all__ = ["SUMMARIES", "write_summary", "summary_files"]


def _stamps(profile: Profile) -> None:
    """A few test galaxies (clean image, unit noise field), the PSF, and the noise grid."""
    from shearbridge.sim.datasets import load_dataset

    ds = load_dataset("test", profile)
    sizes = np.asarray(ds.labels["size_arcsec"])
    pick = np.argsort(sizes)[np.linspace(0, len(sizes) - 1, 4).round().astype(int)][[1, 3]]
    save_npz(
        layout.summary("stamps.npz"),
        clean=np.asarray(ds.clean[pick]),
        noise=np.asarray(ds.noise[pick]),
        psf=np.asarray(ds.psf),
        noise_grid=np.asarray(profile.noise_grid),
        pixel_scale=np.asarray(ds.sim.pixel_scale_arcsec),
        **{f"label_{k}": np.asarray(v)[pick] for k, v in ds.labels.items() if np.ndim(v) == 1},
        profile=np.asarray(profile.name),
    )


def experiment_summary(profile: Profile, experiment: str) -> dict[str, Any]:
    """Per noise level (those of the ``evaluate`` study it runs at): test metrics (with bootstrap
    errors), loss history, timing."""
    per_noise = {}
    for sigma in study.study_noise(profile, "evaluate", experiment):
        tag = noise_tag(sigma)
        run = Layout(profile).run(experiment, sigma)
        result = read_json(Layout(profile).evaluation(experiment, tag))
        losses = read_json(run / "losses.json")
        per_noise[tag] = {
            "noise_sigma": sigma,
            "shear": result["shear"],
            "targets": result["targets"],
            "n_test": result["n_test"],
            "history": losses["epochs"],
            "best_epoch": losses["best_epoch"],
            "timing": losses["timing"],
            "n_train": losses["n_train"],
        }
    return {"profile": profile.name, "experiment": experiment, "noise": per_noise}


def _experiment(name: str) -> Callable[[Profile], None]:
    def write(profile: Profile) -> None:
        summary = experiment_summary(profile, name)
        write_json(layout.summary(f"{name}.json"), summary)
        preds = {}
        for sigma in study.study_noise(profile, "evaluate", name):
            tag = noise_tag(sigma)
            with np.load(Layout(profile).evaluation(name, tag, suffix="_pred.npz")) as z:
                preds[f"pred_{tag}"], preds[f"true_{tag}"] = z["pred"][:, :2], z["true"][:, :2]
        save_npz(layout.summary(f"{name}_pred.npz"), **preds)

    return write


def _translation(profile: Profile) -> None:
    """The NumPy -> JAX/Flax translation table (profile-independent; seed from the profile)."""
    from shearbridge.models.parity import translation_table

    write_json(
        layout.summary("translation.json"),
        {"profile": profile.name, "seed": profile.seed, "rows": translation_table(profile.seed)},
    )


def _compare(profile: Profile) -> None:
    """Every method's RMSE/CRLB per noise level and m, c.

    Methods and levels as the Snakefile ran them."""
    from shearbridge.summaries.compare import compare_summary

    methods, bias_methods = study.names("compare"), study.names("bias")
    have_bias = [
        s
        for s in study.study_noise(profile, "bias")
        if all(Layout(profile).result("bias", m, s).exists() for m in study.at(profile, "bias", s))
    ]
    out = compare_summary(profile, methods, have_bias, bias_methods)
    from shearbridge.estimators.mlfit import MLFitEstimator

    out["mlfit_impl"] = f"JAX Levenberg-Marquardt fit ({MLFitEstimator.__module__})"
    write_json(layout.summary("compare.json"), out)


def _robustness(profile: Profile) -> None:
    """RMSE/CRLB of every method on every robustness set at the bias noise levels."""
    from shearbridge.summaries.robustness import robustness_summary

    write_json(
        layout.summary("robustness.json"),
        robustness_summary(profile, study.study_tags(profile, "robustness")),
    )


def _bias(profile: Profile) -> None:
    """m, c of the ML fit and the raw and calibrated networks at every noise level."""
    from shearbridge.summaries.compare import bias_summary

    metacal = {m: list(study.study_noise(profile, "metacal")) for m in study.names("metacal")}
    write_json(
        layout.summary("bias.json"), bias_summary(profile, study.names("bias_grid"), metacal)
    )


def _diagnosis(profile: Profile) -> None:
    """Copy the profile's layer-by-layer diagnosis (``diagnose`` rule) into the summaries."""
    import shutil

    src = Layout(profile).diagnosis()
    for name in ("diagnosis.json", "diagnosis.npz"):
        if not (src / name).exists():
            raise MissingFileError(
                f"missing {src / name}: run "
                f"`python -m shearbridge diagnose --profile {profile.name}`"
            )
        with atomic_path(layout.summary(name)) as tmp:
            shutil.copyfile(src / name, tmp)


def _timing(profile: Profile) -> None:
    """Copy the profile's timing study (``timing`` rule) into the summaries."""

    src = Layout(profile).timing()
    if not src.exists():
        raise MissingFileError(
            f"missing {src}: run `python -m shearbridge timing --profile {profile.name}`"
        )
    write_json(layout.summary("timing.json"), read_json(src))


def _learning(profile: Profile) -> None:
    """Learning curves of the headline networks at the noise levels the Snakefile evaluated."""
    from shearbridge.summaries.learning import matched_compute

    out: dict[str, Any] = {"profile": profile.name, "curves": {}, "matched": {}}
    for sigma in profile.noise_grid:
        tag = noise_tag(sigma)
        files = {e: Layout(profile).result("learning", e, sigma) for e in study.names("learning")}
        if not all(f.exists() for f in files.values()):
            continue
        curves = {e: read_json(f) for e, f in files.items()}
        out["curves"][tag] = curves
        out["matched"][tag] = matched_compute(curves)
    if not out["curves"]:
        raise MissingFileError(
            "no learning curves found: run `python -m shearbridge learning ...` first"
        )
    write_json(layout.summary("learning.json"), out)


def _ablation(profile: Profile) -> None:
    """The ablation ladder and removals against the full-budget networks.

    See :mod:`shearbridge.summaries.ablation`."""
    from shearbridge.summaries.ablation import write_ablation_summary

    write_ablation_summary(profile)


def _population(profile: Profile) -> None:
    """The population study's cell table and shear tests.

    See :mod:`shearbridge.summaries.population`."""
    from shearbridge.summaries.population import population_summary

    path = Layout(profile).population_results()
    if not path.exists():
        raise MissingFileError(
            f"missing {path}: run `python -m shearbridge population evaluate --profile "
            f"{profile.name}`"
        )
    write_json(layout.summary("population.json"), population_summary(read_json(path), profile.name))


def _floor(profile: Profile) -> None:
    """The low-noise floor and the weight-fraction tuning (:mod:`shearbridge.summaries.floor`)."""
    from shearbridge.summaries.floor import write_floor_summary

    write_floor_summary(profile)


def _yardstick(profile: Profile) -> None:
    """The shear-noise yardstick: sigma_meas / sigma_CRLB and n_eff lost per method and level."""
    from shearbridge.summaries.yardstick import write_yardstick_summary

    write_yardstick_summary(profile, layout.summary("yardstick.json"))


def _survey(profile: Profile) -> None:
    """The survey-scale shear test (:mod:`shearbridge.summaries.survey`)."""
    from shearbridge.summaries.survey import survey_summary

    path = Layout(profile).survey_results()
    if not path.exists():
        raise MissingFileError(
            f"missing {path}: run `python -m shearbridge survey merge --profile {profile.name}`"
        )
    write_json(layout.summary("survey.json"), survey_summary(read_json(path), profile.name))


def _converge(profile: Profile) -> None:
    """The training ladder as this build reads it (:mod:`shearbridge.steps.converge`)."""
    path = Layout(profile).converge_results()
    if not path.exists():
        raise MissingFileError(
            f"missing {path}: run `python -m shearbridge converge summary --profile {profile.name}`"
        )
    write_json(layout.summary("converge.json"), {**read_json(path), "profile": profile.name})


SUMMARIES: dict[str, Callable[[Profile], None]] = {
    "ablation": _ablation,
    "yardstick": _yardstick,
    "diagnosis": _diagnosis,
    "compare": _compare,
    "robustness": _robustness,
    "population": _population,
    "survey": _survey,
    "converge": _converge,
    "bias": _bias,
    "timing": _timing,
    "stamps": _stamps,
    "translation": _translation,
    "learning": _learning,
    "floor": _floor,
    **{name: _experiment(name) for name in study.names("evaluate")},
}


#: The files a summary writes under ``src/data/summary/`` when not just ``<name>.json`` (the
#: Snakefile's outputs read this): the stamps, the diagnosis's arrays, a network's predictions.
_FILES: dict[str, tuple[str, ...]] = {
    "stamps": ("stamps.npz",),
    "diagnosis": ("diagnosis.json", "diagnosis.npz"),
    **{name: (f"{name}.json", f"{name}_pred.npz") for name in study.names("evaluate")},
}


def summary_files(what: str) -> tuple[str, ...]:
    """The files summary ``what`` writes (names under ``src/data/summary/``)."""
    if what not in SUMMARIES:
        raise ConfigError(f"unknown summary {what!r}; known: {sorted(SUMMARIES)}")
    return _FILES.get(what, (f"{what}.json",))


def write_summary(what: str, profile: Profile | None = None) -> None:
    if what not in SUMMARIES:
        raise ConfigError(f"unknown summary {what!r}; known: {sorted(SUMMARIES)}")
    SUMMARIES[what](profile or active_profile())
