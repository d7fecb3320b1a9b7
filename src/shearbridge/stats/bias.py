"""Multiplicative and additive shear bias (m, c) with jackknife errors.

Convention: ``g_hat = (1 + m) g_true + c`` per component.

Paired shear test (:func:`paired_shear_bias`). Each galaxy (one ``pair_id``) appears in
16 stamps (:mod:`shearbridge.sim.stamps`): four orientations 45 degrees apart (``orient``)
x applied shear ``+g`` / ``-g`` (``sign = +1, -1``) x noise field ``+n`` / ``-n``
(``noise_sign = +1, -1``). The shear is applied along component ``k = pair_id % 2``
(``applied_g1`` or ``applied_g2`` carries it; the other is 0). Per galaxy:

* ``D_i = mean[g_hat_k(+g)] - mean[g_hat_k(-g)]`` over the eight stamps of each sign --
  the response to ``2 g_i``; the intrinsic shape cancels to ``O(g^3 e^4)`` and the odd
  orders of the noise cancel between the antithetic ``+n``/``-n`` stamps;
* ``A_i^(j) = mean over the 16 stamps of g_hat_j`` for each component ``j`` -- the
  applied shear and the intrinsic shape cancel.

``m_k = sum_i D_i / sum_i 2 g_i - 1`` over galaxies sheared along ``k`` (a ratio
estimator; equal to ``<D>/(2g) - 1`` for a constant ``g``); ``c_k = <A^(k)>`` over
*all* galaxies (``c_k_same`` and ``c_k_cross`` split it by the sheared component).
The label-ideal estimator (the exact lensed shape of each stamp, ``labels["g1"], ["g2"]``;
:func:`label_ideal_bias`) through the same design gives the design's own floor.

Errors: delete-one-block jackknife over blocks of galaxies (``n_blocks``, default
50, contiguous in ``pair_id`` order), ``var = (B-1)/B sum_b (t_b - t_mean)^2``.
A galaxy with any flagged or non-finite stamp is dropped as a whole, keeping the
design intact; the count is returned.

Generic case (:func:`linear_bias`): least-squares fit of ``g_hat`` on ``g_true``
with jackknife errors over blocks of objects.
"""

from __future__ import annotations

from typing import Any, Callable, Mapping, Sequence

import numpy as np

from shearbridge.estimators.base import usable

__all__ = [
    "jackknife",
    "paired_shear_bias",
    "paired_ensemble_bias",
    "paired_metacal_bias",
    "label_ideal_bias",
    "relative_to_ideal",
    "linear_bias",
    "PAIRED_LABEL_KEYS",
    "N_SLOTS",
    "WILD_RESPONSE",
]

PAIRED_LABEL_KEYS = ("applied_g1", "applied_g2", "pair_id", "orient", "sign", "noise_sign")
#: Stamps per galaxy: 4 orientations x (+g, -g) x (+n, -n);
#: slot ``4 orient + 2 [sign < 0] + [noise_sign < 0]``.
N_SLOTS = 16
_PLUS = np.array([(j // 2) % 2 == 0 for j in range(N_SLOTS)])  # the +g slots
#: A stamp's metacal response (:func:`paired_metacal_bias`) beyond this in absolute value counts
#: as wild (an estimate that did not converge); the metacal step records their fraction and the
#: response's percentiles.
WILD_RESPONSE = 5.0


def jackknife(
    stat: Callable[[np.ndarray], np.ndarray],
    n_items: int,
    n_blocks: int,
) -> tuple[np.ndarray, np.ndarray]:
    """Delete-one-block jackknife of a statistic of items ``0..n_items-1``.

    ``stat(mask)`` returns the statistic (scalar or 1-d array) computed on the items
    where the boolean ``mask`` is True. Blocks are contiguous; their number is
    ``min(n_blocks, n_items)`` (>= 2). Returns ``(estimate on all items, error)``.
    """
    if n_items < 2:
        raise ValueError(f"jackknife needs at least 2 items, got {n_items}")
    nb = int(min(max(n_blocks, 2), n_items))
    full = np.asarray(stat(np.ones(n_items, dtype=bool)), dtype=np.float64)
    edges = np.linspace(0, n_items, nb + 1).round().astype(int)
    reps = []
    for b in range(nb):
        mask = np.ones(n_items, dtype=bool)
        mask[edges[b] : edges[b + 1]] = False
        reps.append(np.asarray(stat(mask), dtype=np.float64))
    reps = np.array(reps)
    err = np.sqrt((nb - 1) / nb * np.sum((reps - reps.mean(axis=0)) ** 2, axis=0))
    return full, err


def _grouped(labels: Mapping[str, Any], g_hat: np.ndarray, ok: np.ndarray):
    """Arrange per-stamp arrays into per-galaxy (G, 16 slots, 2) blocks."""
    missing = [k for k in PAIRED_LABEL_KEYS if k not in labels]
    if missing:
        raise ValueError(
            f"paired shear-test labels lack {missing} (need {list(PAIRED_LABEL_KEYS)})"
        )
    pid = np.asarray(labels["pair_id"]).astype(np.int64).reshape(-1)
    sign = np.asarray(labels["sign"]).reshape(-1)
    nsign = np.asarray(labels["noise_sign"]).reshape(-1)
    orient = np.asarray(labels["orient"]).astype(np.int64).reshape(-1)
    app = np.stack(
        [
            np.asarray(labels["applied_g1"], dtype=np.float64).reshape(-1),
            np.asarray(labels["applied_g2"], dtype=np.float64).reshape(-1),
        ],
        axis=1,
    )
    n = pid.shape[0]
    if g_hat.shape != (n, 2):
        raise ValueError(f"estimates have shape {g_hat.shape}, labels describe {n} stamps")
    if not (np.all(np.isin(sign, (-1, 1))) and np.all(np.isin(nsign, (-1, 1)))):
        raise ValueError("sign and noise_sign must be +1 or -1 for every stamp")
    if not np.all(np.isin(orient, (0, 1, 2, 3))):
        raise ValueError("orient must be 0, 1, 2 or 3 for every stamp")
    ids, inverse, counts = np.unique(pid, return_inverse=True, return_counts=True)
    if np.any(counts != N_SLOTS):
        bad = ids[counts != N_SLOTS][0]
        raise ValueError(
            f"pair_id {bad} has {counts[counts != N_SLOTS][0]} stamps; each needs {N_SLOTS} "
            "(orient 0-3 x sign +/-1 x noise_sign +/-1)"
        )
    slot = 4 * orient + 2 * (sign < 0) + (nsign < 0)
    g = len(ids)
    est = np.full((g, N_SLOTS, 2), np.nan)
    good = np.zeros((g, N_SLOTS), dtype=bool)
    shear = np.full((g, N_SLOTS, 2), np.nan)
    filled = np.zeros((g, N_SLOTS), dtype=int)
    np.add.at(filled, (inverse, slot), 1)
    if np.any(filled != 1):
        bad = ids[np.any(filled != 1, axis=1)][0]
        raise ValueError(
            f"pair_id {bad} does not hold exactly one stamp per (orient, sign, noise_sign)"
        )
    est[inverse, slot] = g_hat
    good[inverse, slot] = ok
    shear[inverse, slot] = app
    comp = ids % 2
    g_applied = shear[np.arange(g), 0, comp]  # the + stamps' shear along its component
    if np.any(g_applied == 0) or not (
        np.allclose(shear[:, ~_PLUS], -shear[:, _PLUS])
        and np.allclose(shear[:, _PLUS], shear[:, :1])
    ):
        raise ValueError(
            "the - stamps must carry minus the + stamps' applied shear, non-zero and the same "
            "for every stamp of a galaxy"
        )
    keep = np.all(good, axis=1) & np.all(np.isfinite(est), axis=(1, 2))
    kept, dropped = comp[keep], int(np.sum(~keep))
    if kept.size < 4 or np.sum(kept == 0) < 2 or np.sum(kept == 1) < 2:
        raise ValueError(
            f"too few usable galaxies for m, c: {kept.size} "
            f"({dropped} dropped for flags or non-finite estimates)"
        )
    return est[keep], kept, g_applied[keep], dropped


def _with_errors(names: Sequence[str], val: np.ndarray, err: np.ndarray) -> dict[str, float]:
    """``{name: value, name_err: error}`` of a jackknifed statistic."""
    out: dict[str, float] = {}
    for name, v, e in zip(names, val, err):
        out[name], out[f"{name}_err"] = float(v), float(e)
    return out


def paired_shear_bias(
    g_hat: np.ndarray,
    labels: Mapping[str, Any],
    flags: np.ndarray | None = None,
    n_blocks: int = 50,
) -> dict[str, float]:
    """m and c per component from the paired shear test (orientations x +-g x +-n).

    Parameters
    ----------
    g_hat : ndarray (N, 2)
        Estimated reduced shear per stamp.
    labels : mapping
        Per-stamp ``applied_g1, applied_g2, pair_id, orient, sign, noise_sign`` (see module).
    flags : ndarray (N,) or None
        Non-zero marks a failed measurement (its galaxy is dropped).
    n_blocks : int
        Jackknife blocks of galaxies.

    Returns
    -------
    dict
        ``m1, m1_err, m2, m2_err, c1, c1_err, c2, c2_err`` (and ``c*_same``,
        ``c*_cross`` with errors), ``n_galaxies`` used, ``n_dropped``.
    """
    g_hat = np.asarray(g_hat, dtype=np.float64)
    ok = np.ones(g_hat.shape[0], dtype=bool) if flags is None else np.asarray(flags) == 0
    est, comp, g_app, dropped = _grouped(labels, g_hat, ok)
    plus = est[:, _PLUS].mean(axis=1)  # (G, 2): mean over orientations and noise signs, + shear
    minus = est[:, ~_PLUS].mean(axis=1)
    resp = plus[np.arange(len(comp)), comp] - minus[np.arange(len(comp)), comp]
    avg = est.mean(axis=1)  # (G, 2): applied shear and intrinsic shape cancel

    def stat(mask: np.ndarray) -> np.ndarray:
        out = []
        for k in (0, 1):
            sel = mask & (comp == k)
            out.append(np.sum(resp[sel]) / np.sum(2.0 * g_app[sel]) - 1.0)
        for k in (0, 1):
            out.append(np.mean(avg[mask, k]))
            out.append(np.mean(avg[mask & (comp == k), k]))
            out.append(np.mean(avg[mask & (comp != k), k]))
        return np.array(out)

    val, err = jackknife(stat, est.shape[0], n_blocks)
    result = _with_errors(
        ["m1", "m2", "c1", "c1_same", "c1_cross", "c2", "c2_same", "c2_cross"], val, err
    )
    result["n_galaxies"] = int(est.shape[0])
    result["n_dropped"] = dropped
    return result


def paired_ensemble_bias(
    e: np.ndarray,
    response: np.ndarray,
    labels: Mapping[str, Any],
    flags: np.ndarray | None = None,
    n_blocks: int = 50,
) -> dict[str, float]:
    """m and c of the paired shear test for an estimator with an ensemble response (AnaCal/FPFS).

    Same layout as :func:`paired_shear_bias`, but the estimator returns an ellipticity ``e`` and
    its shear response ``R = de/dg`` per stamp, and the shear of an ensemble is ``sum e / sum R``.
    For the galaxies sheared along ``k``: ``m_k = (sum_+ e_k - sum_- e_k) / (g sum_(+,-) R_k) - 1``;
    ``c_k = sum e_k / sum R_k`` over all stamps. The jackknife over galaxies resamples numerator and
    denominator together. (Dividing ``e`` by one global mean response and calling
    :func:`paired_shear_bias` instead leaves the response's scatter between the galaxies of the
    two components in ``m``, with error bars that miss it.) A galaxy with a flagged or non-finite
    stamp is dropped from both sums; no cut on the response.
    """
    e = np.asarray(e, dtype=np.float64)
    r = np.asarray(response, dtype=np.float64)
    ok = usable(e, flags, r)
    est, comp, g_app, dropped = _grouped(labels, e, ok)
    resp = _grouped(labels, r, ok)[0]

    def stat(mask: np.ndarray) -> np.ndarray:
        out = []
        for k in (0, 1):
            sel = mask & (comp == k)
            diff = est[sel][:, _PLUS, k].sum() - est[sel][:, ~_PLUS, k].sum()
            out.append(diff / (np.mean(g_app[sel]) * resp[sel, :, k].sum()) - 1.0)
        out += [est[mask, :, k].sum() / resp[mask, :, k].sum() for k in (0, 1)]
        return np.array(out)

    val, err = jackknife(stat, est.shape[0], n_blocks)
    out: dict[str, Any] = _with_errors(("m1", "m2", "c1", "c2"), val, err)
    out["mean_response"] = [float(np.nanmean(resp[:, :, k])) for k in (0, 1)]
    out["n_galaxies"] = int(est.shape[0])
    out["n_dropped"] = dropped
    return out


def paired_metacal_bias(
    g: np.ndarray,
    response: np.ndarray,
    labels: Mapping[str, Any],
    flags: np.ndarray | None = None,
    n_blocks: int = 50,
) -> dict[str, float]:
    """m and c of the paired shear test, calibrated by a metacal response measured on every stamp.

    ``g`` (N, 2) are the estimates on the ``noshear`` images and ``response`` (N,) each stamp's
    response along the component its galaxy is sheared along (``pair_id % 2``), from the ``+step``
    and ``-step`` images (:mod:`shearbridge.stats.metacal_fourier`). For the galaxies sheared along
    ``k``: ``m_k = (sum_+ g_k - sum_- g_k) / (g sum R) - 1``; ``c_k`` is the mean of ``g_k`` over
    all galaxies over the mean response of the galaxies sheared along ``k`` (a random half of the
    same population). Jackknife over galaxies, numerator and response together. A galaxy with a
    flagged or non-finite stamp in any set is dropped whole (the design stays symmetric in +-g, so
    the selection carries no first-order shear response); ``flags`` is the OR over the sets.
    ``m*_raw`` is the same test with ``R = 1``: what the calibration corrects on these images.
    """
    g = np.asarray(g, dtype=np.float64)
    r = np.asarray(response, dtype=np.float64).reshape(-1)
    if r.shape[0] != g.shape[0]:
        raise ValueError(f"response has {r.shape[0]} entries, estimates {g.shape[0]}")
    ok = usable(g, flags) & np.isfinite(r)
    est, comp, g_app, dropped = _grouped(labels, g, ok)
    resp = _grouped(labels, np.stack([r, r], axis=1), ok)[0][:, :, 0]

    def stat(mask: np.ndarray) -> np.ndarray:
        out, raw, mean_r = [], [], []
        for k in (0, 1):
            sel = mask & (comp == k)
            # each galaxy's response to 2 g: the mean of its 8 +g stamps minus that of its 8 -g
            # stamps
            resp_2g = (est[sel][:, _PLUS, k].sum() - est[sel][:, ~_PLUS, k].sum()) / (N_SLOTS // 2)
            out.append(resp_2g / np.sum(2.0 * g_app[sel] * resp[sel].mean(axis=1)) - 1.0)
            raw.append(resp_2g / np.sum(2.0 * g_app[sel]) - 1.0)
            mean_r.append(resp[sel].mean())
        cs = [est[mask, :, k].mean() / mean_r[k] for k in (0, 1)]
        return np.array(out + cs + raw + mean_r)

    val, err = jackknife(stat, est.shape[0], n_blocks)
    out = _with_errors(("m1", "m2", "c1", "c2", "m1_raw", "m2_raw", "R1", "R2"), val, err)
    out["n_galaxies"] = int(est.shape[0])
    out["n_dropped"] = dropped
    return out


def label_ideal_bias(
    labels: Mapping[str, Any], flags: np.ndarray | None = None, n_blocks: int = 50
) -> dict[str, float]:
    """m and c of the label-ideal estimator: each stamp's exact lensed shape (``labels["g1"]``,
    ``labels["g2"]``, no pixels, no noise) through :func:`paired_shear_bias`, on the galaxies
    ``flags`` leaves (so it matches a method's own galaxy set). The design's floor."""
    g = np.stack(
        [np.asarray(labels["g1"], np.float64), np.asarray(labels["g2"], np.float64)], axis=1
    )
    return paired_shear_bias(g, labels, flags=flags, n_blocks=n_blocks)


def relative_to_ideal(result: Mapping[str, Any], ideal: Mapping[str, Any]) -> dict[str, float]:
    """A method's m relative to the label-ideal estimator's on the same galaxies:
    ``(1 + m) / (1 + m_ideal) - 1`` per component, with the method's error (the ideal's is
    orders of magnitude smaller; both are returned)."""
    out: dict[str, float] = {}
    for k in (1, 2):
        m, mi = float(result[f"m{k}"]), float(ideal[f"m{k}"])
        out[f"m{k}_ideal"], out[f"m{k}_ideal_err"] = mi, float(ideal[f"m{k}_err"])
        out[f"m{k}_rel"] = (1.0 + m) / (1.0 + mi) - 1.0
        out[f"m{k}_rel_err"] = float(result[f"m{k}_err"]) / (1.0 + mi)
        out[f"c{k}_ideal"] = float(ideal[f"c{k}"])
    return out


def linear_bias(
    g_true: np.ndarray,
    g_hat: np.ndarray,
    flags: np.ndarray | None = None,
    n_blocks: int = 50,
) -> dict[str, float]:
    """Least-squares ``g_hat = (1 + m) g_true + c`` per component, jackknife errors.

    ``g_true`` and ``g_hat`` have shape (N, 2) (or (N,) for one component). Blocks
    are contiguous in the given order (shuffle beforehand if it is not random).
    """
    gt = np.asarray(g_true, dtype=np.float64)
    gh = np.asarray(g_hat, dtype=np.float64)
    if gt.ndim == 1:
        gt, gh = gt[:, None], gh[:, None]
    if gt.shape != gh.shape:
        raise ValueError(f"g_true {gt.shape} and g_hat {gh.shape} differ in shape")
    keep = np.all(np.isfinite(gh), axis=1) & np.all(np.isfinite(gt), axis=1)
    if flags is not None:
        keep &= np.asarray(flags) == 0
    gt, gh = gt[keep], gh[keep]
    ncomp = gt.shape[1]

    def stat(mask: np.ndarray) -> np.ndarray:
        out = []
        for k in range(ncomp):
            x, y = gt[mask, k], gh[mask, k]
            xm, ym = x.mean(), y.mean()
            slope = np.sum((x - xm) * (y - ym)) / np.sum((x - xm) ** 2)
            out += [slope - 1.0, ym - slope * xm]
        return np.array(out)

    val, err = jackknife(stat, gt.shape[0], n_blocks)
    result: dict[str, float] = {}
    for k in range(ncomp):
        result[f"m{k + 1}"], result[f"m{k + 1}_err"] = float(val[2 * k]), float(err[2 * k])
        result[f"c{k + 1}"], result[f"c{k + 1}_err"] = float(val[2 * k + 1]), float(err[2 * k + 1])
    result["n_used"] = int(gt.shape[0])
    result["n_dropped"] = int(np.sum(~keep))
    return result
