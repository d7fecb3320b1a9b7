"""Sufficient statistics of the paired shear test, and their merge: m, c and alpha from sums.

A survey-scale test (:mod:`shearbridge.steps.survey`) never keeps its stamps: each group of galaxies
is reduced to the sums of :data:`FIELDS` (:func:`group_sums`), which add over groups, chunks and
machines, and :func:`merge` turns the sums of many groups into ``m``, ``c`` and ``alpha`` with
delete-one-block jackknife errors over the groups.

The design is the paired test of :mod:`shearbridge.stats.bias`: each galaxy gives 16 stamps
(4 orientations x +-g x +-n, slot ``4 orient + 2 [sign < 0] + [noise_sign < 0]``), sheared by the
constant ``g`` along ``k = pair_id % 2``. Each stamp gives an estimate ``e`` (N, 2) and a response
``R`` (N, 2): a metacal response, an analytic one (AnaCal's ``de/dg``, with its detection and
selection terms when AnaCal detects), or 1 (the method's own shear, uncalibrated). For galaxy ``i``:

* ``D_i = mean_{+g} e_k - mean_{-g} e_k`` (the response to ``2 g``; shape and odd noise orders
  cancel), ``R_i = mean_16 R_k`` and ``W_i = 2 g R_i``;
* ``A_i = mean_16 e`` (the applied shear and the intrinsic shape cancel: what is left is the
  additive bias), and ``P_i`` the galaxy's PSF ellipticity.

Then ``m_k = sum D / sum W - 1`` over the galaxies sheared along ``k``; ``Rbar_k = sum R_i / n_k``;
a straight line ``A_j = c_j' + alpha_j' P_j`` through every galaxy gives the PSF leakage
``alpha_j = alpha_j' / Rbar_j`` and the additive bias at a round PSF ``c_j = c_j' / Rbar_j`` (each
galaxy has its own PSF ellipticity, so the same galaxies give both). ``m*_raw`` divide by ``2 g``
instead of ``W``: what the calibration corrects. A galaxy with any flagged stamp or non-finite
response is dropped whole (the +-g design stays symmetric) and counted.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from shearbridge.estimators.base import usable
from shearbridge.stats.bias import N_SLOTS, jackknife

__all__ = ["FIELDS", "group_sums", "merge", "combine_blocks", "MAX_BLOCKS"]

_PER_COMPONENT = ("n", "d", "w", "r", "dd", "dw", "ww")
#: The sums a group is reduced to (per component ``k``: count, D, W, R, D^2, D W, W^2 of the
#: galaxies sheared along ``k``; over every kept galaxy: count, A, P, A P, P^2, A^2; the dropped).
FIELDS: tuple[str, ...] = (
    *(f"{f}{k}" for k in (1, 2) for f in _PER_COMPONENT),
    "n",
    *(f"{f}{j}" for j in (1, 2) for f in ("a", "p", "ap", "pp", "aa")),
    "dropped",
)
_IX = {name: i for i, name in enumerate(FIELDS)}
#: The jackknife's blocks: more groups than this are combined into this many contiguous blocks.
MAX_BLOCKS = 200
_PLUS = np.array([(j // 2) % 2 == 0 for j in range(N_SLOTS)])


def group_sums(
    e: np.ndarray,
    response: np.ndarray | None,
    flags: np.ndarray | None,
    labels: dict[str, Any],
    applied_shear: float,
) -> np.ndarray:
    """The :data:`FIELDS` sums of one group of galaxies (16 consecutive stamps each).

    ``e`` (N, 2) and ``response`` (N, 2) (``None``: 1) per stamp; ``labels`` holds ``pair_id``,
    ``sign``, ``orient``, ``noise_sign`` (the layout is checked) and the PSF ellipticity
    ``psf_g1, psf_g2`` (0 when absent).
    """
    e = np.asarray(e, np.float64)
    n_stamps = e.shape[0]
    if e.ndim != 2 or e.shape[1] != 2 or n_stamps % N_SLOTS:
        raise ValueError(f"estimates must be (16 n, 2), got {e.shape}")
    r = np.ones_like(e) if response is None else np.asarray(response, np.float64)
    if r.shape != e.shape:
        raise ValueError(f"response must be {e.shape}, got {r.shape}")
    n = n_stamps // N_SLOTS
    slot = 4 * np.asarray(labels["orient"]) + 2 * (np.asarray(labels["sign"]) < 0)
    slot = slot + (np.asarray(labels["noise_sign"]) < 0)
    if not np.array_equal(slot, np.tile(np.arange(N_SLOTS), n)):
        raise ValueError("stamps are not in the shear test's order (16 slots per galaxy)")
    ok = (usable(e, flags) & np.isfinite(r).all(axis=1)).reshape(n, N_SLOTS).all(axis=1)
    k = (np.asarray(labels["pair_id"]).reshape(n, N_SLOTS)[:, 0] % 2).astype(int)
    eg, rg = e.reshape(n, N_SLOTS, 2), r.reshape(n, N_SLOTS, 2)
    psf = np.zeros((n_stamps, 2))
    for j, name in enumerate(("psf_g1", "psf_g2")):
        if name in labels:
            psf[:, j] = np.asarray(labels[name], np.float64)
    p = psf.reshape(n, N_SLOTS, 2)[:, 0, :]
    rows = np.arange(n)
    d = eg[:, _PLUS, :].mean(axis=1)[rows, k] - eg[:, ~_PLUS, :].mean(axis=1)[rows, k]
    rk = rg.mean(axis=1)[rows, k]
    w = 2.0 * applied_shear * rk
    a = eg.mean(axis=1)
    out = np.zeros(len(FIELDS))
    for comp in (0, 1):
        sel = ok & (k == comp)
        if not sel.any():
            continue
        ds, ws = d[sel], w[sel]
        for name, value in zip(
            _PER_COMPONENT,
            (sel.sum(), ds.sum(), ws.sum(), rk[sel].sum(), ds @ ds, ds @ ws, ws @ ws),
        ):
            out[_IX[f"{name}{comp + 1}"]] = value
    out[_IX["n"]] = ok.sum()
    for j in (0, 1):
        aj, pj = a[ok, j], p[ok, j]
        for name, value in zip(
            ("a", "p", "ap", "pp", "aa"), (aj.sum(), pj.sum(), aj @ pj, pj @ pj, aj @ aj)
        ):
            out[_IX[f"{name}{j + 1}"]] = value
    out[_IX["dropped"]] = (~ok).sum()
    return out


def combine_blocks(sums: np.ndarray, max_blocks: int = MAX_BLOCKS) -> np.ndarray:
    """At most ``max_blocks`` contiguous blocks of groups, their sums added (sums are additive)."""
    sums = np.asarray(sums, np.float64)
    if sums.ndim != 2 or sums.shape[1] != len(FIELDS):
        raise ValueError(f"sums must be (groups, {len(FIELDS)}), got {sums.shape}")
    if len(sums) <= max_blocks:
        return sums
    edges = np.linspace(0, len(sums), max_blocks + 1).astype(int)
    return np.add.reduceat(sums, edges[:-1], axis=0)


_NAMES = (
    "m1",
    "m2",
    "c1",
    "c2",
    "alpha1",
    "alpha2",
    "m1_raw",
    "m2_raw",
    "R1",
    "R2",
)


def _estimates(t: np.ndarray, applied_shear: float) -> np.ndarray:
    """The :data:`_NAMES` values of total sums ``t``."""
    f = {name: t[i] for i, name in enumerate(FIELDS)}
    with np.errstate(divide="ignore", invalid="ignore"):
        m = [f[f"d{k}"] / f[f"w{k}"] - 1.0 for k in (1, 2)]
        raw = [f[f"d{k}"] / (2.0 * applied_shear * f[f"n{k}"]) - 1.0 for k in (1, 2)]
        rbar = [f[f"r{k}"] / f[f"n{k}"] for k in (1, 2)]
        n = f["n"]
        slope = [
            (f[f"ap{j}"] - f[f"a{j}"] * f[f"p{j}"] / n) / (f[f"pp{j}"] - f[f"p{j}"] ** 2 / n)
            for j in (1, 2)
        ]
        alpha = [slope[j] / rbar[j] for j in (0, 1)]
        c = [(f[f"a{j + 1}"] - slope[j] * f[f"p{j + 1}"]) / n / rbar[j] for j in (0, 1)]
    return np.array(m + c + alpha + raw + rbar)


def _finite(x: float) -> float | None:
    """``x`` as a float, or None where it is not finite (too few galaxies for it)."""
    return float(x) if np.isfinite(x) else None


def merge(
    sums: Sequence[np.ndarray] | np.ndarray,
    applied_shear: float,
    max_blocks: int = MAX_BLOCKS,
) -> dict[str, Any]:
    """m, c, alpha (and the uncalibrated m, the mean response) with jackknife errors over the
    groups of ``sums`` ((groups, :data:`FIELDS`)), the galaxy counts, and each ``m``'s per-galaxy
    scatter ``sigma_m * sqrt(n)`` (what sizes a test: ``sigma(m) = scatter / sqrt(N)``). A value or
    error that too few galaxies leave undefined is None (``complete`` False)."""
    blocks = combine_blocks(np.asarray(sums, np.float64).reshape(-1, len(FIELDS)), max_blocks)
    if len(blocks) < 2:
        raise ValueError("the jackknife needs at least two groups of galaxies")
    total = blocks.sum(axis=0)
    if min(total[_IX["n1"]], total[_IX["n2"]]) < 1:
        raise ValueError("no usable galaxy sheared along one of the components")
    idx = np.arange(len(blocks))

    def stat(mask: np.ndarray) -> np.ndarray:
        return _estimates(blocks[idx[mask]].sum(axis=0), applied_shear)

    with np.errstate(invalid="ignore"):
        val, err = jackknife(stat, len(blocks), len(blocks))
    out: dict[str, Any] = {}
    for name, v, e in zip(_NAMES, val, err):
        out[name], out[f"{name}_err"] = _finite(v), _finite(e)
    for k in (1, 2):
        out[f"scatter_m{k}"] = _finite(err[k - 1] * np.sqrt(total[_IX[f"n{k}"]]))
    # a block whose removal leaves a component without galaxies has no replicate: no error
    out["complete"] = all(out[f"{name}_err"] is not None for name in _NAMES)
    out["n_galaxies"] = int(total[_IX["n"]])
    out["n_dropped"] = int(total[_IX["dropped"]])
    out["n_blocks"] = int(len(blocks))
    out["applied_shear"] = float(applied_shear)
    return out
