"""The robustness summary: every method's RMSE/CRLB on the robustness sets, and its degradation.

The study's datasets and the names of its result files, shared with the step that writes them
(:mod:`shearbridge.steps.robustness`), and the summary read back from those files
(``python -m shearbridge summarize robustness``).

Degradation of a method on dataset D: ``(RMSE/CRLB)_D / (RMSE/CRLB)_test`` at the
same noise level (errors propagated from the two bootstrap errors, treated as
independent: the sets hold different galaxies and noise fields).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Sequence

from shearbridge import study
from shearbridge.config import Profile, noise_tag
from shearbridge.errors import MissingFileError, RobustnessError
from shearbridge.io import read_json
from shearbridge.layout import Layout
from shearbridge.stats.resample import quotient

__all__ = [
    "ROBUST_DATASETS",
    "check_method",
    "check_dataset",
    "result_path",
    "degradation",
    "robustness_summary",
]


#: The in-distribution reference first, then the out-of-distribution sets.
ROBUST_DATASETS = (
    "test",
    "test_exp",
    "test_sersic",
    "test_bulge_disk",
    "test_moffat",
    "test_wide_psf",
)


def check_method(method: str) -> str:
    known = study.names("robustness", available_only=False)
    if method not in known:
        raise RobustnessError(f"unknown robustness method {method!r}; known: {known}")
    return method


def check_dataset(dataset: str) -> str:
    if dataset not in ROBUST_DATASETS:
        raise RobustnessError(
            f"unknown robustness dataset {dataset!r}; known: {list(ROBUST_DATASETS)}"
        )
    return dataset


def result_path(profile: Profile, method: str, dataset: str, sigma: float) -> Path:
    """The result file of one method on one robustness set (the names checked first)."""
    return Layout(profile).robustness(check_method(method), check_dataset(dataset), sigma)


def degradation(row: Mapping[str, float], ref: Mapping[str, float]) -> tuple[float, float]:
    """``ratio / ref_ratio`` with the two relative errors added in quadrature."""
    return quotient(row["ratio"], row["ratio_err"], ref["ratio"], ref["ratio_err"])


def robustness_summary(
    profile: Profile,
    tags: Sequence[str],
    methods: Sequence[str] | None = None,
    datasets: Sequence[str] = ROBUST_DATASETS,
) -> dict[str, Any]:
    """Every result of the study plus each method's degradation against its ``test`` row.

    ``tags`` are noise tags (:func:`shearbridge.config.noise_tag`) of the profile's grid.
    Missing result files raise FileNotFoundError naming the first one.
    """
    sigma_of = {noise_tag(s): s for s in profile.noise_grid}
    unknown = [t for t in tags if t not in sigma_of]
    if unknown:
        raise ValueError(
            f"noise tags {unknown} are not on the {profile.name} grid {sorted(sigma_of)}"
        )
    if "test" not in datasets:
        raise RobustnessError("the robustness summary needs the in-distribution 'test' row")
    methods = study.names("robustness") if methods is None else methods
    out: dict[str, Any] = {
        "profile": profile.name,
        "methods": list(methods),
        "datasets": list(datasets),
        "noise": {},
    }
    for tag in tags:
        per: dict[str, Any] = {}
        for m in methods:
            rows = {}
            for d in datasets:
                path = result_path(profile, m, d, sigma_of[tag])
                if not path.exists():
                    raise MissingFileError(
                        f"missing {path}: run `python -m shearbridge robustness "
                        f"--method {m} --dataset {d} --noise {sigma_of[tag]}`"
                    )
                rows[d] = read_json(path)
            deg = {d: degradation(rows[d], rows["test"]) for d in datasets if d != "test"}
            worst = max(deg, key=lambda d: deg[d][0])
            per[m] = {
                "results": rows,
                "degradation": {d: {"factor": v[0], "err": v[1]} for d, v in deg.items()},
                "worst": {"dataset": worst, "factor": deg[worst][0], "err": deg[worst][1]},
            }
        out["noise"][tag] = {"noise_sigma": sigma_of[tag], "methods": per}
    return out
