"""Pipeline step: the layer-by-layer information diagnosis of the trained networks.

Reads the trained networks of the diagnosed experiments and the ``test`` and ``train``
datasets of a profile, runs every diagnosis of :mod:`shearbridge.diagnosis` (per-layer
Fisher information, probes, sub-pixel sensitivity, saliency) and writes
``src/data/<profile>/diagnosis/diagnosis.json`` and ``diagnosis.npz``
(``python -m shearbridge diagnose``). The experiments and noise levels are the study
registry's (:mod:`shearbridge.study`).
"""

from __future__ import annotations

import dataclasses
import time
from argparse import ArgumentParser, Namespace
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from shearbridge import study
from shearbridge.layout import Layout
from shearbridge.config import Profile, noise_tag
from shearbridge.io import save_npz, write_json
from shearbridge.runs import require_trained
from shearbridge.steps.command import Command, add_profile, profile_of

__all__ = ["DiagnosisSizes", "load_models", "run_diagnosis", "COMMANDS"]


@dataclasses.dataclass(frozen=True)
class DiagnosisSizes:
    """How much work :func:`run_diagnosis` does (chosen per profile, see :meth:`for_profile`)."""

    n_fisher: int  # galaxies with per-layer Fisher information (each: 2 points per noise level)
    window_px: int  # side of the pixel window (pixels)
    n_probe_train: int
    n_probe_test: int
    probe_dim: int  # feature-hashing width of layers wider than this
    mlp_steps: int
    n_vision: int  # galaxies for the saliency vs ML-weight correlation

    @classmethod
    def for_profile(cls, profile: Profile) -> DiagnosisSizes:
        if profile.name == "quick":
            return cls(2, 15, 600, 200, 256, 150, 8)
        return cls(min(profile.n_crlb, 10), 21, 2000, 500, 512, 250, 32)


def load_models(profile: Profile, experiment: str, sigmas: Sequence[float]) -> dict[float, Any]:
    """The trained ``experiment`` of ``profile`` at each noise level ``sigmas``."""
    return {
        sigma: require_trained(
            Layout(profile).run(experiment, sigma), experiment, sigma, profile.name
        )
        for sigma in sigmas
    }


def run_diagnosis(
    profile: Profile,
    out_dir: str | Path | None = None,
    *,
    progress: bool = True,
    sizes: DiagnosisSizes | None = None,
    experiments: Sequence[str] = ("baseline",),
) -> dict:
    """Every diagnosis of the baseline EnhancedGalaxyNN for ``profile``; writes JSON + npz.

    Reads the trained models ``Layout(profile).run(experiments[0], sigma)`` (an
    EnhancedGalaxyNN: the probes, saliency and sub-pixel study assume its layers) of every
    noise level and the ``test`` (and, for the probes, ``train``) datasets. Every further
    experiment in ``experiments`` (e.g. ``"shapenet"``) gets the per-layer Fisher
    information only, on the same galaxies and windows, at the registry's
    :func:`~shearbridge.study.diagnosis_noise` ``(profile, primary=False)``
    (its layers from :func:`~shearbridge.diagnosis.features.feature_fn_for`); it goes under
    ``"networks"`` in the JSON (which repeats the first experiment's there too) and as
    ``<name>_F_layers``, ``<name>_retained_<mode>`` in the npz. Writes
    ``diagnosis.json`` and ``diagnosis.npz`` atomically to ``out_dir`` (default
    ``Layout(profile).diagnosis()``) and returns the JSON's content.
    ``sizes`` defaults to :meth:`DiagnosisSizes.for_profile`. The small dense solves are fastest
    with a single-threaded BLAS on a busy machine (``OPENBLAS_NUM_THREADS=1``).
    """
    # JAX and GalSim: imported here, so that the command line starts fast
    from shearbridge.diagnosis import information as info
    from shearbridge.diagnosis.features import LAYERS, feature_fn_for
    from shearbridge.diagnosis.fisher import DEFAULT_RCOND, PARAM_NAMES
    from shearbridge.diagnosis.probes import run_probes
    from shearbridge.diagnosis.subpixel import run_subpixel
    from shearbridge.diagnosis.vision import run_vision
    from shearbridge.sim.datasets import load_dataset

    t_start = time.perf_counter()
    sizes = sizes or DiagnosisSizes.for_profile(profile)
    out_dir = Path(out_dir) if out_dir is not None else Layout(profile).diagnosis()
    grid = study.diagnosis_noise(profile, primary=True)
    tags = [noise_tag(s) for s in grid]
    experiments = list(experiments)
    if not experiments or len(set(experiments)) != len(experiments):
        raise ValueError(f"experiments must be distinct names, at least one; got {experiments}")
    trained = load_models(profile, experiments[0], grid)
    others = {
        e: load_models(profile, e, study.diagnosis_noise(profile, primary=False))
        for e in experiments[1:]
    }
    test = load_dataset("test", profile)
    sim, w = test.sim, sizes.window_px
    n = min(sizes.n_fisher, len(test))
    idx = np.arange(min(max(n, sizes.n_vision), len(test)))
    theta = info.galaxy_theta(test.labels, idx)
    G_full = info.image_jacobian(test.psf, sim.pixel_scale_arcsec, theta)  # (N, S, S, 6)
    clean, noise = (np.asarray(a[idx], np.float64) for a in (test.clean, test.noise))
    windows = [
        info.galaxy_window(t, sim.stamp_size_px, sim.pixel_scale_arcsec, w) for t in theta[:n]
    ]
    G_win = np.stack(
        [G_full[i, r : r + w, c : c + w].reshape(-1, 6) for i, (r, c) in enumerate(windows)]
    )
    F_win = np.einsum("nkp,nkq->npq", G_win, G_win)
    labels_all = info.galaxy_theta(test.labels, np.arange(len(test)))
    prior_prec = np.r_[1.0 / labels_all[:, :4].var(axis=0), 0.0, 0.0]  # flux, x0, y0, size

    n_points = len(grid) * (2 * n + 2) + 1 + sum(2 * n * len(t) for t in others.values())
    bar = tqdm(total=n_points, desc=f"diagnosis {profile.name}", disable=not progress)
    t0 = time.perf_counter()
    F_layers = np.stack(
        [
            info.network_information(
                trained[s], clean[:n], noise[:n], s, G_full, windows, w, progress=bar
            )
            for s in grid
        ]
    )  # (K, 2, N, L, 6, 6)
    t_fisher = time.perf_counter() - t0
    # soft-threshold sensitivity: first galaxy, lowest noise, noisy stamp
    sens = info.rcond_sensitivity(
        trained[grid[0]],
        clean[0] + grid[0] * noise[0],
        G_win[0],
        windows[0],
        w,
        F_win[0],
        F_layers[0, 0, 0],
    )
    retained, information = info.information_summary(
        F_layers, F_win, grid, prior_prec
    )  # (K, 2, N, L, 2)
    networks = {
        experiments[0]: {
            "layers": list(LAYERS),
            "noise_grid": list(grid),
            "noise_tags": tags,
            "information": information,
            "timing_s": {"fisher": t_fisher},
        }
    }
    net_arrays = {}
    for name, models in others.items():
        t0 = time.perf_counter()
        sig = tuple(models)
        F_net = np.stack(
            [
                info.network_information(
                    models[s], clean[:n], noise[:n], s, G_full, windows, w, progress=bar
                )
                for s in sig
            ]
        )
        ret_net, info_net = info.information_summary(F_net, F_win, sig, prior_prec)
        networks[name] = {
            "layers": list(feature_fn_for(models[sig[0]].model, w)[1]),
            "noise_grid": list(sig),
            "noise_tags": [noise_tag(s) for s in sig],
            "information": info_net,
            "timing_s": {"fisher": time.perf_counter() - t0},
        }
        net_arrays |= {
            f"{name}_F_layers": F_net,
            **{f"{name}_retained_{m}": v for m, v in ret_net.items()},
        }
    capture = [info.window_capture(G_full[i], windows[i], w) for i in range(n)]

    train = load_dataset("train", profile).subset(slice(0, sizes.n_probe_train))
    probe_test = test.subset(slice(len(test) - sizes.n_probe_test, len(test)))
    probes = run_probes(
        trained,
        grid,
        train.images,
        train.targets(2),
        probe_test.images,
        probe_test.targets(2),
        seed=profile.seed,
        dim=sizes.probe_dim,
        mlp_steps=sizes.mlp_steps,
        progress=bar,
    )
    bar.update(1)
    n_vis = len(idx)
    pick = int(
        np.argmin(np.abs(theta[:n_vis, 3] - np.median(labels_all[:, 3])))
    )  # a median-size galaxy
    vision = run_vision(trained, grid, clean, noise, G_full, n_vis, pick)
    conv = {k: trained[grid[0]].params[k] for k in ("conv1", "conv2")}
    subpix = run_subpixel(profile.seed, sim, conv)
    bar.update(len(grid))
    bar.close()

    summary = {
        "profile": profile.name,
        "sizes": dataclasses.asdict(sizes),
        "layers": list(LAYERS),
        "params": list(PARAM_NAMES),
        "noise_grid": list(grid),
        "noise_tags": tags,
        "rcond": DEFAULT_RCOND,
        "rcond_sensitivity": sens,
        "information": information,
        "networks": networks,
        "window_capture": {
            m: info.summarise(np.array([c[m] for c in capture])) for m in ("marginal", "fixed")
        },
        "prior_std": dict(zip(PARAM_NAMES[:4], (1 / np.sqrt(prior_prec[:4])).tolist())),
        "probes": probes["summary"],
        "vision": vision["summary"],
        "subpixel": subpix["summary"],
        "definitions": {
            "retained": "[I_image^-1]_kk / [I_layer^-1]_kk averaged over k = g1, g2; "
            "image = same window",
            "window": f"{w}x{w} px centred on the galaxy; pixels outside held fixed",
            "modes": "marginal: flux, x0, y0, size free; prior: Gaussian priors of the "
            "population's std on them; fixed: nuisances known",
            "points": "noisy: linearised at clean + sigma * noise; clean: at the clean stamp",
        },
        "timing_s": {"fisher": t_fisher, "total": time.perf_counter() - t_start},
    }
    arrays = {
        "F_layers": F_layers,
        "F_window": F_win,
        "theta": theta[:n],
        "windows": np.asarray(windows),
        "F_full": np.einsum("nijp,nijq->npq", G_full[:n], G_full[:n]),
        "noise_grid": np.asarray(grid),
        "layers": np.asarray(LAYERS),
        **{f"retained_{m}": v for m, v in retained.items()},
        **probes["arrays"],
        **vision["arrays"],
        **subpix["arrays"],
        **net_arrays,
    }
    save_npz(out_dir / "diagnosis.npz", **arrays)
    write_json(out_dir / "diagnosis.json", summary)
    return summary


def _arguments(p: ArgumentParser) -> None:
    add_profile(p)
    p.add_argument(
        "--experiments",
        default="baseline",
        help="comma-separated experiments; the first gets every diagnosis, the others "
        "the per-layer information only (default: baseline)",
    )


def _diagnose(args: Namespace) -> None:
    run_diagnosis(
        profile_of(args), experiments=[e.strip() for e in args.experiments.split(",") if e.strip()]
    )


COMMANDS = (
    Command(
        "diagnose",
        "layer-by-layer information diagnosis of the trained baselines",
        _arguments,
        _diagnose,
    ),
)
