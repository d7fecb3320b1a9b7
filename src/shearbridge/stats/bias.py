"""Multiplicative and additive shear bias (m, c) with jackknife errors.

Convention: ``g_hat = (1 + m) g_true + c`` per component.

Paired shear test (:func:`paired_shear_bias`). Each galaxy (one ``pair_id``)
appears in four stamps: applied shear ``+g`` and ``-g`` (``sign = +1, -1``) times
intrinsic orientation 0 and 90 degrees (``rot90 = 0, 1``), all sharing one noise
field. The shear is applied along component ``k = pair_id % 2`` (``applied_g1`` or
``applied_g2`` carries it; the other is 0). Per galaxy:

* ``D_i = mean_rot[g_hat_k(+)] - mean_rot[g_hat_k(-)]`` -- the response to ``2 g_i``;
  intrinsic shape and (largely) noise cancel in the difference;
* ``A_i^(j) = mean over the four stamps of g_hat_j`` for each component ``j`` -- the
  applied shear cancels, the 90-degree rotation cancels the intrinsic shape.

``m_k = sum_i D_i / sum_i 2 g_i - 1`` over galaxies sheared along ``k`` (a ratio
estimator; equal to ``<D>/(2g) - 1`` for a constant ``g``); ``c_k = <A^(k)>`` over
*all* galaxies (``c_k_same`` and ``c_k_cross`` split it by the sheared component).

Errors: delete-one-block jackknife over blocks of galaxies (``n_blocks``, default
50, contiguous in ``pair_id`` order), ``var = (B-1)/B sum_b (t_b - t_mean)^2``.
A galaxy with any flagged or non-finite stamp is dropped as a whole, keeping the
pairing intact; the count is returned.

Generic case (:func:`linear_bias`): least-squares fit of ``g_hat`` on ``g_true``
with jackknife errors over blocks of objects.
"""

from __future__ import annotations

from typing import Any, Callable, Mapping

import numpy as np

__all__ = ["jackknife", "paired_shear_bias", "paired_ensemble_bias", "linear_bias", "PAIRED_LABEL_KEYS"]

PAIRED_LABEL_KEYS = ("applied_g1", "applied_g2", "pair_id", "rot90", "sign")


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
        mask[edges[b]:edges[b + 1]] = False
        reps.append(np.asarray(stat(mask), dtype=np.float64))
    reps = np.array(reps)
    err = np.sqrt((nb - 1) / nb * np.sum((reps - reps.mean(axis=0)) ** 2, axis=0))
    return full, err


def _grouped(labels: Mapping[str, Any], g_hat: np.ndarray, ok: np.ndarray):
    """Arrange per-stamp arrays into per-galaxy (G, sign, rot) blocks."""
    missing = [k for k in PAIRED_LABEL_KEYS if k not in labels]
    if missing:
        raise ValueError(
            f"paired shear-test labels lack {missing} (need {list(PAIRED_LABEL_KEYS)})")
    pid = np.asarray(labels["pair_id"]).astype(np.int64).reshape(-1)
    sign = np.asarray(labels["sign"]).reshape(-1)
    rot = np.asarray(labels["rot90"]).astype(np.int64).reshape(-1)
    app = np.stack([np.asarray(labels["applied_g1"], dtype=np.float64).reshape(-1),
                    np.asarray(labels["applied_g2"], dtype=np.float64).reshape(-1)], axis=1)
    n = pid.shape[0]
    if g_hat.shape != (n, 2):
        raise ValueError(f"estimates have shape {g_hat.shape}, labels describe {n} stamps")
    if not np.all(np.isin(sign, (-1, 1))):
        raise ValueError("sign must be +1 or -1 for every stamp")
    if not np.all(np.isin(rot, (0, 1))):
        raise ValueError("rot90 must be 0 or 1 for every stamp")
    ids, inverse, counts = np.unique(pid, return_inverse=True, return_counts=True)
    if np.any(counts != 4):
        bad = ids[counts != 4][0]
        raise ValueError(f"pair_id {bad} has {counts[counts != 4][0]} stamps; each needs 4 "
                         "(sign +/-1 x rot90 0/1)")
    slot = (sign > 0).astype(np.int64) * 2 + rot  # 0: (-,0) 1: (-,90) 2: (+,0) 3: (+,90)
    g = len(ids)
    est = np.full((g, 4, 2), np.nan)
    good = np.zeros((g, 4), dtype=bool)
    shear = np.full((g, 4, 2), np.nan)
    filled = np.zeros((g, 4), dtype=int)
    np.add.at(filled, (inverse, slot), 1)
    if np.any(filled != 1):
        bad = ids[np.any(filled != 1, axis=1)][0]
        raise ValueError(f"pair_id {bad} does not hold exactly one stamp per (sign, rot90)")
    est[inverse, slot] = g_hat
    good[inverse, slot] = ok
    shear[inverse, slot] = app
    comp = ids % 2
    g_applied = shear[np.arange(g), 2, comp]  # the + stamp's shear along its component
    if np.any(g_applied == 0) or not np.allclose(shear[:, 0, :], -shear[:, 2, :]):
        raise ValueError("the - stamps must carry minus the + stamps' applied shear, non-zero")
    keep = np.all(good, axis=1) & np.all(np.isfinite(est), axis=(1, 2))
    return est[keep], comp[keep], g_applied[keep], int(np.sum(~keep))


def paired_shear_bias(
    g_hat: np.ndarray,
    labels: Mapping[str, Any],
    flags: np.ndarray | None = None,
    n_blocks: int = 50,
) -> dict[str, float]:
    """m and c per component from a paired (+g, -g) x (0, 90 deg) shear test.

    Parameters
    ----------
    g_hat : ndarray (N, 2)
        Estimated reduced shear per stamp.
    labels : mapping
        Per-stamp ``applied_g1, applied_g2, pair_id, rot90, sign`` (see module).
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
    if est.shape[0] < 4 or np.sum(comp == 0) < 2 or np.sum(comp == 1) < 2:
        raise ValueError(f"too few usable galaxies for m, c: {est.shape[0]} "
                         f"({dropped} dropped for flags or non-finite estimates)")
    plus = est[:, 2:4].mean(axis=1)   # (G, 2): mean over rotations, + shear
    minus = est[:, 0:2].mean(axis=1)
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
    names = ["m1", "m2", "c1", "c1_same", "c1_cross", "c2", "c2_same", "c2_cross"]
    result: dict[str, float] = {}
    for name, v, e in zip(names, val, err):
        result[name] = float(v)
        result[f"{name}_err"] = float(e)
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
    ok = np.all(np.isfinite(e), axis=1) & np.all(np.isfinite(r), axis=1)
    if flags is not None:
        ok &= np.asarray(flags) == 0
    est, comp, g_app, dropped = _grouped(labels, e, ok)
    resp = _grouped(labels, r, ok)[0]  # slots: 0, 1 = (-g; 0, 90 deg), 2, 3 = (+g; 0, 90 deg)
    if est.shape[0] < 4 or np.sum(comp == 0) < 2 or np.sum(comp == 1) < 2:
        raise ValueError(f"too few usable galaxies for m, c: {est.shape[0]} ({dropped} dropped)")

    def stat(mask: np.ndarray) -> np.ndarray:
        out = []
        for k in (0, 1):
            sel = mask & (comp == k)
            diff = est[sel, 2:4, k].sum() - est[sel, 0:2, k].sum()
            out.append(diff / (np.mean(g_app[sel]) * resp[sel, :, k].sum()) - 1.0)
        out += [est[mask, :, k].sum() / resp[mask, :, k].sum() for k in (0, 1)]
        return np.array(out)

    val, err = jackknife(stat, est.shape[0], n_blocks)
    out = {name: float(v) for name, v in zip(("m1", "m2", "c1", "c2"), val)}
    out.update({f"{name}_err": float(v) for name, v in zip(("m1", "m2", "c1", "c2"), err)})
    out["mean_response"] = [float(np.nanmean(resp[:, :, k])) for k in (0, 1)]
    out["n_galaxies"] = int(est.shape[0])
    out["n_dropped"] = dropped
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
