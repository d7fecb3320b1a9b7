"""The commands that say what there is: ``info`` (the profile, where data lives) and ``list``.

``list`` prints, for the profile: its noise levels with the median matched-filter S/N each means
for the test galaxies; the datasets and whether each is built; the experiments and the levels each
is trained at; every registered method with its description and whether it is ready to measure
here (installed; for a method that needs training, at which levels it is trained, or the command
that trains it); and the meaning of the catalogue's flag bits. Every missing thing names the command
that makes it.
"""

from __future__ import annotations

import re
from argparse import Namespace
from typing import Any

from shearbridge.config import Profile
from shearbridge.steps.command import Command, add_profile, print_json, profile_of

__all__ = ["COMMANDS", "method_readiness", "noise_snr", "flag_bits"]


def _info(args: Namespace) -> None:
    from shearbridge import layout
    from shearbridge.config import to_dict
    from shearbridge.layout import Layout
    from shearbridge.version import __version__

    profile = profile_of(args)
    print_json(
        {
            "version": __version__,
            "profile": to_dict(profile),
            "data_root": str(layout.data_root()),
            "profile_dir": str(Layout(profile).dir),
            "results_dir": str(Layout(profile).results),
        }
    )


def _levels(sigmas: Any) -> str:
    return ", ".join(f"{s:g}" for s in sigmas)


def noise_snr(profile: Profile) -> dict[float, str] | str:
    """Per noise level, the median (16th-84th percentile) matched-filter S/N of the comparison
    galaxies (:func:`shearbridge.summaries.compare.snr_summary`); without a test set, what to
    run."""
    from shearbridge.config import noise_tag
    from shearbridge.errors import ShearbridgeError
    from shearbridge.layout import Layout

    if not Layout(profile).manifest("test").exists():
        return (
            f"S/N: simulate the test set first (python -m shearbridge simulate "
            f"--dataset test --profile {profile.name})"
        )
    from shearbridge.summaries.compare import snr_summary

    try:
        snr = snr_summary(profile)
    except ShearbridgeError as exc:  # a stale or altered test set: its message says what to run
        return f"S/N: {exc}"
    return {
        s: "median matched-filter S/N {median:.0f} ({p16:.0f}-{p84:.0f})".format(
            **snr[noise_tag(s)]
        )
        for s in profile.noise_grid
    }


def method_readiness(profile: Profile, m: Any) -> str:
    """Whether registered method ``m`` can measure here with the profile's data, or what makes
    it able to."""
    from shearbridge import study
    from shearbridge.estimators.factories import PSFNET_ENTRY
    from shearbridge.layout import Layout

    layout = Layout(profile)
    if m.build is None:
        return (
            f"not a measurement: the bound the methods are judged against "
            f"(python -m shearbridge crlb --profile {profile.name})"
        )
    if not m.available():
        return "not ready: its package is not installed here"
    if study.trained_once(m.name):
        if layout.population_network(PSFNET_ENTRY).exists():
            return "ready at every noise level (one network trained for all levels)"
        return (
            f"not trained: python -m shearbridge population train --profile {profile.name} "
            f"(one network for every level)"
        )
    run = study.run_of(m.name)
    if run is None:
        return "ready at every noise level"
    train = f"python -m shearbridge train --config {run} --noise SIGMA --profile {profile.name}"
    what = "fitted" if m.kind == "classical" else "trained"  # moments_affine: a read-out to fit
    done = [s for s in profile.noise_grid if layout.run_metrics(run, s).exists()]
    if not done:
        return f"not {what}: {train} (SIGMA: the stamps' noise level)"
    rest = [s for s in profile.noise_grid if s not in done]
    more = f"; other levels: {train}" if rest else ""
    return f"ready at noise {_levels(done)} ({what} there){more}"


def _docstring_flags(doc: str) -> dict[int, str]:
    """The meanings in the flag table (``bit  name  meaning``, reStructuredText) of a docstring."""
    out: dict[int, str] = {}
    rules, bit = 0, None
    for line in doc.splitlines():
        if line.startswith("==="):
            rules += 1
            continue
        row = re.match(r"\s*(\d+)\s+\w+\s+(.*)", line) if rules == 2 else None
        if row:
            bit = int(row.group(1))
            out[bit] = row.group(2).strip()
        elif rules == 2 and bit is not None and line.strip():
            out[bit] += " " + line.strip()
    return {b: re.sub(r":\w+:`[~.]*([^`]+)`", r"\1", t).replace("``", "") for b, t in out.items()}


def flag_bits() -> list[tuple[int, str, str]]:
    """``(bit, name, meaning)`` of every flag bit of :data:`shearbridge.estimators.base.FLAG_NAMES`
    (meanings: the module's ``FLAG_DESCRIPTIONS`` where it has one, else its docstring's table)."""
    from shearbridge.estimators import base

    meanings = getattr(base, "FLAG_DESCRIPTIONS", None) or _docstring_flags(base.__doc__ or "")
    return [(bit, name, meanings.get(bit, "")) for bit, name in sorted(base.FLAG_NAMES.items())]


def _list(args: Namespace) -> None:
    from shearbridge import study
    from shearbridge.config.experiments import EXPERIMENTS
    from shearbridge.layout import Layout
    from shearbridge.sim.catalogue import dataset_specs

    profile = profile_of(args)
    layout = Layout(profile)

    def mark(done: bool) -> str:
        return "built" if done else "-"

    print(
        f"profile {profile.name}: noise levels {_levels(profile.noise_grid)} "
        f"(pixel sigma, image units)"
    )
    snr = noise_snr(profile)
    for s in profile.noise_grid if isinstance(snr, dict) else ():
        print(f"  {s:<10g} {snr[s]}")
    if isinstance(snr, str):
        print(f"  {snr}")
    print("\ndatasets (python -m shearbridge simulate --dataset NAME):")
    for name, spec in dataset_specs(profile).items():
        print(f"  {name:<18} {spec.n_objects:>7} objects  {mark(layout.manifest(name).exists())}")
    print("\nexperiments (python -m shearbridge train --config NAME --noise SIGMA): trained at")
    for name in EXPERIMENTS:
        done = [s for s in profile.noise_grid if layout.run_metrics(name, s).exists()]
        print(f"  {name:<18} {_levels(done) if done else '-'}")
    print(
        "\nmethods (python -m shearbridge measure --method NAME ..., or a study's step: compare "
        "--method NAME --noise SIGMA):"
    )
    for m in study.methods(available_only=False):
        state = "available" if m.available() else "not installed"
        studies = ",".join(s for s in study.STUDIES if s in m.studies) or "-"
        print(f"  {m.name:<18} {m.kind:<9} {state:<13} {m.label}  [{studies}]")
        if m.description:
            print(f"      {m.description}")
        print(f"      {method_readiness(profile, m)}")
    print(
        "\nflags (the catalogue's 'flags' column: 0 is a good measurement, else an OR of these "
        "bits):"
    )
    for bit, name, meaning in flag_bits():
        print(f"  {bit:>5}  {name:<17} {meaning}".rstrip())


COMMANDS = (
    Command("info", "show the active profile and where data lives", add_profile, _info),
    Command(
        "list",
        "experiments, datasets and methods, which are built and ready, and the flag bits",
        add_profile,
        _list,
    ),
)
