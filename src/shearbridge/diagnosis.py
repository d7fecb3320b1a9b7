"""Where does a CNN lose shear information? Fisher information retained layer by layer.

Linearise a network's layer ``l`` at a stamp ``x0``: ``h_l(x0 + dx) ~ h_l(x0) + J_l dx``.
With white pixel noise of standard deviation ``sigma_n`` and ``G = dx/dtheta`` the
image's derivatives with respect to ``theta = (flux, x0, y0, size, g1, g2)`` (units of
:mod:`shearbridge.estimators.render`: image units, arcsec, arcsec, arcsec (Gaussian
sigma), reduced shear), the Fisher information carried by ``h_l`` is::

    I_l = G^T J_l^T (J_l Sigma J_l^T)^+ J_l G = G^T P_l G / sigma_n^2,

``P_l`` the orthogonal projector onto the row space of ``J_l``, and the image itself
carries ``I_image = G^T G / sigma_n^2``. ``I_l <= I_image`` (data processing), and for a
*linearised* network the ratio does not depend on ``sigma_n``: the noise enters only
through the linearisation point (which ReLUs are on), so each network is linearised
both at noisy stamps ``clean + sigma_n * noise`` and at the clean stamp.

Computation (:func:`layer_fisher`): the layer's responses to unit changes of the
``w x w`` pixels of a window around the galaxy (``w^2`` forward-mode JVPs, float64) give
``T = J_l^T`` restricted to the window; ``P_l G`` is the regularised least-squares
projection ``K (K + eps 1)^-1 G`` with ``K = T T^T`` (or its ``d x d`` dual when the layer
is narrower than the window), ``eps = rcond^2 * trace(K) / rank_max``: directions whose
singular value is far above ``rcond`` times the RMS singular value count fully, those
far below count not at all, so the ratio is ``<= 1`` whatever the round-off. Pixels
outside the window are held fixed, and the information is compared with that of the
same window's pixels (:func:`window_capture` says how much of the whole stamp's
information the window holds).

Summaries per shear component ``k`` (:func:`shear_information`): the effective
information ``1 / [I^-1]_kk`` (every other parameter marginalised: ``"marginal"``), the
same with Gaussian priors on the nuisance parameters (``"prior"``), or with flux,
centroid and size known (``"fixed"``: the ``(g1, g2)`` block). The retained fraction of
layer ``l`` is the ratio of CRLB variances ``[I_image^-1]_kk / [I_l^-1]_kk``, averaged
over ``k = g1, g2``. Note that a layer with fewer than 6 outputs (the 4-output head)
cannot carry 6-parameter information: its ``"marginal"`` fraction is 0 by counting.

The empirical counterparts (linear and MLP probes), the sub-pixel sensitivity of
average vs blur pooling and the saliency maps live in :mod:`shearbridge.diagnosis_probe`;
:func:`run_diagnosis` runs everything for a profile.
"""

from __future__ import annotations

import dataclasses
import functools
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from .config import Profile, noise_tag
from .diagnosis_shapenet import shapenet_feature_fn, shapenet_layers

__all__ = [
    "DEFAULT_RCOND", "LAYERS", "MODES", "PARAM_NAMES", "DiagnosisSizes", "enhanced_feature_fn",
    "shapenet_feature_fn", "shapenet_layers", "feature_fn_for", "secondary_noise", "galaxy_theta", "galaxy_window", "image_jacobian", "layer_fisher", "network_information",
    "projected_information", "retained_fraction", "run_diagnosis", "shear_information", "window_capture",
]

#: Layers of EnhancedGalaxyNN analysed (``flatten`` equals ``pool2`` and is skipped).
LAYERS = ("input", "conv1", "relu1", "pool1", "conv2", "relu2", "pool2", "dense1", "relu3", "out")
#: Parameters of ``G`` (see :mod:`shearbridge.estimators.render`); g1, g2 are the last two.
PARAM_NAMES = ("flux", "x0", "y0", "size", "g1", "g2")
SHEAR = (4, 5)
MODES = ("marginal", "prior", "fixed")
#: Relative singular-value scale of the soft rank threshold (see the module docstring).
DEFAULT_RCOND = 1e-5
#: Relative eigenvalue threshold of the pseudo-inverse in the generalised Schur complement.
SCHUR_RCOND = 1e-10

#: ``(params, image (S, S), window origin (2,) int) -> {layer: activations}``
FeatureFn = Callable[[Any, jax.Array, jax.Array], Mapping[str, jax.Array]]


# --------------------------------------------------------------------------- linear algebra


def projected_information(tangents: jax.Array, G: jax.Array, rcond: jax.Array | float) -> jax.Array:
    """``G^T P G`` for the soft projector ``P`` onto the span of the rows of ``tangents``.

    Parameters
    ----------
    tangents : array (n, d)
        Row ``i`` is the layer's response to a unit change of pixel ``i``
        (``J^T`` restricted to ``n`` pixels).
    G : array (n, p)
        Image derivatives of those pixels.
    rcond : float
        Relative singular-value threshold (see the module docstring).

    Returns
    -------
    array (p, p)
        The information at unit pixel noise; all zeros for a layer that ignores the pixels.
    """
    n, d = tangents.shape
    dual = d < n  # then use the d x d Gram of the layer's outputs: I = (J G)^T (J J^T + eps)^-1 J G
    gram = tangents.T @ tangents if dual else tangents @ tangents.T
    rhs = tangents.T @ G if dual else gram @ G  # J G, or K G
    trace = jnp.trace(gram)
    eps = jnp.where(trace > 0, rcond**2 * trace / min(n, d), 1.0)
    factor = jax.scipy.linalg.cho_factor(gram + eps * jnp.eye(min(n, d), dtype=gram.dtype))
    info = rhs.T @ jax.scipy.linalg.cho_solve(factor, rhs if dual else G)
    return jnp.where(trace > 0, 0.5 * (info + info.T), 0.0)


@functools.partial(jax.jit, static_argnames=("feature_fn", "w", "chunk"))
def _layer_fisher(feature_fn, params, x0, origin, G, rcond, w, chunk):
    xw0 = jax.lax.dynamic_slice(x0, origin, (w, w)).reshape(-1)

    def f(xw: jax.Array) -> Mapping[str, jax.Array]:
        x = jax.lax.dynamic_update_slice(x0, xw.reshape(w, w), origin)
        return feature_fn(params, x, origin)

    basis = jnp.eye(w * w, dtype=x0.dtype)
    tangents = jax.lax.map(lambda v: jax.jvp(f, (xw0,), (v,))[1], basis, batch_size=chunk)
    return {k: projected_information(t.reshape(w * w, -1), G, rcond) for k, t in tangents.items()}


def layer_fisher(
    feature_fn: FeatureFn,
    params: Any,
    x0: np.ndarray,
    G: np.ndarray,
    origin: tuple[int, int] = (0, 0),
    w: int | None = None,
    *,
    rcond: float = DEFAULT_RCOND,
    chunk: int = 64,
) -> dict[str, np.ndarray]:
    """Fisher information (unit pixel noise) of every layer, linearised at ``x0``.

    Parameters
    ----------
    feature_fn : callable
        ``(params, image (S, S), origin) -> {layer: array}``; must be hashable (one
        compilation per function, window size and chunk).
    params : pytree
        Network parameters (cast to float64 here).
    x0 : array (S, S)
        Linearisation point (image units).
    G : array (w, w, p) or (w*w, p)
        Image derivatives of the window's pixels.
    origin, w : window's top-left pixel (row, column) and side in pixels
        (default: the whole stamp).
    rcond : float
        Soft rank threshold (:func:`projected_information`).
    chunk : int
        Pixel directions pushed through the network at once (memory vs speed).

    Returns
    -------
    dict
        ``{layer: (p, p) float64}``.
    """
    x0 = np.asarray(x0)
    if x0.ndim != 2 or x0.shape[0] != x0.shape[1]:
        raise ValueError(f"x0 must be one square stamp (S, S), got shape {x0.shape}")
    s = x0.shape[0]
    w = s if w is None else int(w)
    r0, c0 = (int(v) for v in origin)
    if not (1 <= w <= s and 0 <= r0 <= s - w and 0 <= c0 <= s - w):
        raise ValueError(f"window origin {origin} with side {w} does not fit a {s}x{s} stamp")
    G = np.asarray(G, np.float64).reshape(w * w, -1)
    with jax.enable_x64(True):
        p64 = jax.tree.map(lambda a: jnp.asarray(a, jnp.float64), params)
        out = _layer_fisher(feature_fn, p64, jnp.asarray(x0, jnp.float64),
                            jnp.asarray([r0, c0], jnp.int32), jnp.asarray(G),
                            jnp.asarray(rcond, jnp.float64), w, min(chunk, w * w))
        return {k: np.asarray(v) for k, v in out.items()}


# --------------------------------------------------------------------------- EnhancedGalaxyNN


def _crop(a: jax.Array, r: jax.Array, c: jax.Array, size: int) -> jax.Array:
    """``a[r:r+size, c:c+size]`` of an (H, W, C) map; starts are clamped into the map."""
    size = min(size, a.shape[0])
    return jax.lax.dynamic_slice(a, (r, c, jnp.zeros_like(r)), (size, size, a.shape[-1]))


@functools.lru_cache(maxsize=32)
def enhanced_feature_fn(model: nn.Module, w: int) -> FeatureFn:
    """Feature function of EnhancedGalaxyNN for a ``w x w`` window, spatial maps cropped.

    A pixel of the window can only move the units whose receptive field covers it:
    rows ``[r0-1, r0+w]`` of conv1/relu1 (3x3 SAME), ``[a//2, b//2]`` after each 2x2
    VALID pooling of rows ``[a, b]``, one more row each side after conv2. Each map is
    cropped to a conservative box of that region (fixed size, so one compilation serves
    every window position), which leaves the information unchanged and cuts the cost
    several-fold. ``"input"`` is the window itself (information ratio 1 by definition).
    """
    s1 = w + 2
    sp1 = s1 // 2 + 1
    s2 = sp1 + 2
    sp2 = s2 // 2 + 1

    def features(params: Any, x: jax.Array, origin: jax.Array) -> dict[str, jax.Array]:
        f = model.apply({"params": params}, x[None], return_features=True)
        r, c = origin[0], origin[1]
        a1r, a1c = r - 1, c - 1
        ap1r, ap1c = a1r // 2, a1c // 2
        a2r, a2c = ap1r - 1, ap1c - 1
        ap2r, ap2c = a2r // 2, a2c // 2
        return {
            "input": jax.lax.dynamic_slice(x, (r, c), (w, w)),
            "conv1": _crop(f["conv1"][0], a1r, a1c, s1),
            "relu1": _crop(f["relu1"][0], a1r, a1c, s1),
            "pool1": _crop(f["pool1"][0], ap1r, ap1c, sp1),
            "conv2": _crop(f["conv2"][0], a2r, a2c, s2),
            "relu2": _crop(f["relu2"][0], a2r, a2c, s2),
            "pool2": _crop(f["pool2"][0], ap2r, ap2c, sp2),
            "dense1": f["dense1"][0],
            "relu3": f["relu3"][0],
            "out": f["out"][0],
        }

    return features


# --------------------------------------------------------------------------- any network


def feature_fn_for(model: nn.Module, w: int) -> tuple[FeatureFn, tuple[str, ...]]:
    """(feature function, analysed layers) of a supported network (EnhancedGalaxyNN or ShapeNet)."""
    from .models.enhanced import EnhancedGalaxyNN
    from .models.shapenet import ShapeNet

    if isinstance(model, EnhancedGalaxyNN):
        return enhanced_feature_fn(model, w), LAYERS
    if isinstance(model, ShapeNet):  # lists from a saved model's JSON meta -> tuples (hashable)
        model = model.clone(**{k: tuple(getattr(model, k)) for k in ("channels", "dilations", "moment_scales_px")})
        return shapenet_feature_fn(model, w), shapenet_layers(model)
    raise ValueError(f"no per-layer diagnosis for {type(model).__name__}; supported: EnhancedGalaxyNN, ShapeNet")


# --------------------------------------------------------------------------- galaxies


def galaxy_theta(labels: Mapping[str, np.ndarray], idx: np.ndarray) -> np.ndarray:
    """Parameters ``(flux, x0, y0, size, g1, g2)`` (N, 6) of dataset rows ``idx`` (arcsec units)."""
    keys = ("flux", "dx_arcsec", "dy_arcsec", "size_arcsec", "g1", "g2")
    return np.stack([np.asarray(labels[k], np.float64)[idx] for k in keys], axis=1)


def image_jacobian(psf: np.ndarray, pixel_scale_arcsec: float, theta: np.ndarray) -> np.ndarray:
    """``G = d image / d theta`` (N, S, S, 6) by autodiff of the JAX renderer (Gaussian galaxies).

    ``psf`` is the dataset's PSF image (pixel response included); the renderer matches
    GalSim to ~1e-10 per pixel (see :mod:`shearbridge.estimators.render`).
    """
    from .estimators.render import Renderer

    psf = np.asarray(psf, np.float64)
    rend = Renderer.from_psf_image(psf, pixel_scale_arcsec, model="gauss")
    jac = np.asarray(rend.jacobian(np.atleast_2d(theta)))
    s = psf.shape[0]
    if jac.shape[1:] == (len(PARAM_NAMES), s, s):  # the renderer's (N, 6, S, S) layout
        jac = np.moveaxis(jac, 1, -1)
    if jac.shape[1:] != (s, s, len(PARAM_NAMES)):
        raise ValueError(f"unexpected renderer Jacobian shape {jac.shape}")
    return jac


def galaxy_window(theta: np.ndarray, stamp_size: int, pixel_scale_arcsec: float, w: int) -> tuple[int, int]:
    """Top-left (row, column) of the ``w x w`` window centred on the galaxy's centroid pixel."""
    centre = (stamp_size - 1) / 2.0
    row = centre + float(theta[2]) / pixel_scale_arcsec  # y0 -> rows
    col = centre + float(theta[1]) / pixel_scale_arcsec  # x0 -> columns
    r0 = int(np.clip(round(row) - w // 2, 0, stamp_size - w))
    c0 = int(np.clip(round(col) - w // 2, 0, stamp_size - w))
    return r0, c0


def window_capture(G_full: np.ndarray, origin: tuple[int, int], w: int) -> dict[str, float]:
    """Fraction of the stamp's (g1, g2) information in a window ("marginal", "fixed" modes)."""
    gw = G_full[origin[0] : origin[0] + w, origin[1] : origin[1] + w].reshape(-1, G_full.shape[-1])
    g = G_full.reshape(-1, G_full.shape[-1])
    return {m: float(retained_fraction(gw.T @ gw, g.T @ g, m).mean()) for m in ("marginal", "fixed")}


# --------------------------------------------------------------------------- summaries


def _schur_diag(F: np.ndarray, scale: np.ndarray, shear: tuple[int, ...]) -> np.ndarray:
    """Effective information ``F_kk - F_ko F_oo^+ F_ok`` of components ``shear`` (..., 2)."""
    Fn = F * scale[..., :, None] * scale[..., None, :]  # dimensionless
    out = []
    for k in shear:
        o = [j for j in range(F.shape[-1]) if j != k]
        foo = Fn[..., o, :][..., :, o]
        fko = Fn[..., k, o]
        pinv = np.linalg.pinv(foo, rcond=SCHUR_RCOND, hermitian=True)
        eff = Fn[..., k, k] - np.einsum("...i,...ij,...j->...", fko, pinv, fko)
        out.append(eff / scale[..., k] ** 2)
    return np.stack(out, axis=-1)


def shear_information(
    F: np.ndarray, mode: str, *, reference: np.ndarray | None = None,
    prior_precision: np.ndarray | None = None,
) -> np.ndarray:
    """Effective Fisher information on g1 and g2 (..., 2): ``1 / [I^-1]_kk`` generalised.

    Parameters
    ----------
    F : array (..., 6, 6)
        Information matrices (:data:`PARAM_NAMES` order).
    mode : str
        ``"marginal"``: flux, centroid, size and the other shear component free;
        ``"prior"``: the same plus ``prior_precision`` (6,) added to the diagonal
        (Gaussian priors, 0 for free parameters); ``"fixed"``: only the (g1, g2) block.
    reference : array (..., 6, 6), optional
        Sets the parameter scaling of the pseudo-inverse (default ``F``); pass the
        image's information so that a layer and its image share one threshold.
    """
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    F = np.asarray(F, np.float64)
    if mode == "prior":
        if prior_precision is None:
            raise ValueError("mode 'prior' needs prior_precision (6,)")
        F = F + np.diag(np.asarray(prior_precision, np.float64))
        if reference is not None:
            reference = reference + np.diag(np.asarray(prior_precision, np.float64))
    ref = F if reference is None else np.asarray(reference, np.float64)
    d = np.diagonal(ref, axis1=-2, axis2=-1)
    scale = 1.0 / np.sqrt(np.where(d > 0, d, 1.0))
    if mode == "fixed":  # the (g1, g2) block alone
        return np.maximum(_schur_diag(F[..., 4:6, 4:6], scale[..., 4:6], (0, 1)), 0.0)
    return np.maximum(_schur_diag(F, scale, SHEAR), 0.0)


def retained_fraction(
    F_layer: np.ndarray, F_image: np.ndarray, mode: str, prior_precision: np.ndarray | None = None
) -> np.ndarray:
    """Ratio of CRLB variances ``[I_image^-1]_kk / [I_layer^-1]_kk`` per shear component (..., 2)."""
    F_image = np.broadcast_to(F_image, np.shape(F_layer))
    kw = {"prior_precision": prior_precision}
    eff_l = shear_information(F_layer, mode, reference=F_image, **kw)
    eff_i = shear_information(F_image, mode, reference=F_image, **kw)
    return eff_l / eff_i


# --------------------------------------------------------------------------- orchestration


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


def network_information(
    trained: Any, clean: np.ndarray, noise: np.ndarray, sigma: float, G_full: np.ndarray,
    windows: list[tuple[int, int]], w: int, *, rcond: float = DEFAULT_RCOND, progress=None,
) -> np.ndarray:
    """Per-layer information (unit noise) at the noisy and the clean stamps: (2, N, L, 6, 6).

    Layers as :func:`feature_fn_for` lists them for ``trained.model``.
    """
    fn, layers = feature_fn_for(trained.model, w)
    n = len(clean)
    out = np.zeros((2, n, len(layers), 6, 6))
    for i in range(n):
        r0, c0 = windows[i]
        g = G_full[i, r0 : r0 + w, c0 : c0 + w]
        for p, x in enumerate((clean[i] + sigma * noise[i], clean[i])):
            info = layer_fisher(fn, trained.params, x, g, (r0, c0), w, rcond=rcond)
            out[p, i] = np.stack([info[k] for k in layers])
            if progress is not None:
                progress.update(1)
    return out


def _summ(x: np.ndarray) -> dict[str, list[float]]:
    """Mean, median, 16th and 84th percentiles over galaxies (axis 0) -> per layer lists."""
    q = np.percentile(x, [16, 50, 84], axis=0)
    return {"mean": np.mean(x, axis=0).tolist(), "median": q[1].tolist(), "p16": q[0].tolist(),
            "p84": q[2].tolist()}


def _ensemble(F_l: np.ndarray, F_img: np.ndarray, mode: str, prec: np.ndarray) -> list[float]:
    """Per layer: mean over galaxies and (g1, g2) of the image's CRLB variance over the mean of
    the layer's (0 where a layer has no information). ``F_l`` (N, L, 6, 6), ``F_img`` (N, 6, 6)."""
    ref = np.broadcast_to(F_img[:, None], F_l.shape)
    eff_l = shear_information(F_l, mode, reference=ref, prior_precision=prec)
    eff_i = shear_information(F_img, mode, reference=F_img, prior_precision=prec)
    with np.errstate(divide="ignore"):
        var_l = np.where(eff_l > 0, 1.0 / np.where(eff_l > 0, eff_l, 1.0), np.inf)
    return (np.mean(1.0 / eff_i) / var_l.mean(axis=(0, 2))).tolist()


def _load_models(profile: Profile, experiment: str = "baseline",
                 sigmas: tuple[float, ...] | None = None) -> dict[float, Any]:
    from . import paths
    from .train import load_trained

    out = {}
    for sigma in profile.noise_grid if sigmas is None else sigmas:
        run = paths.run_dir(experiment, sigma, profile)
        if not (run / "model.msgpack").exists():
            raise FileNotFoundError(
                f"missing trained {experiment} at noise {sigma:g} ({run}); train it with: python -m "
                f"shearbridge train --config {experiment} --noise {sigma:g} --profile {profile.name}")
        out[sigma] = load_trained(run)
    return out


def secondary_noise(profile: Profile) -> tuple[float, ...]:
    """Noise levels of the per-layer information of the second and later experiments:
    the lowest and 1e-3 (as the ablation study; the Snakefile's ``ABLATION_TAGS``)."""
    from .ablation import ablation_sigmas

    return ablation_sigmas(profile)


def _information(F_layers: np.ndarray, F_win: np.ndarray, grid: tuple[float, ...],
                 prior_prec: np.ndarray) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Retained fractions (K, 2, N, L, 2) per mode and their per-tag summaries, from
    ``F_layers`` (K noise levels, noisy/clean, N galaxies, L layers, 6, 6)."""
    retained = {m: np.stack([retained_fraction(F_layers[k], F_win[None, :, None], m, prior_prec * s**2)
                             for k, s in enumerate(grid)]) for m in MODES}
    information = {
        noise_tag(s): {pt: {m: _summ(retained[m][k, p].mean(-1)) for m in MODES}
                       | {f"ensemble_{m}": _ensemble(F_layers[k, p], F_win, m, prior_prec * s**2) for m in MODES}
                       for p, pt in enumerate(("noisy", "clean"))}
        for k, s in enumerate(grid)
    }
    return retained, information


def run_diagnosis(profile: Profile, out_dir: str | Path | None = None, *, progress: bool = True,
                  sizes: DiagnosisSizes | None = None, experiments: Sequence[str] = ("baseline",)) -> dict:
    """Every diagnosis of the baseline EnhancedGalaxyNN for ``profile``; writes JSON + npz.

    Reads the trained models ``paths.run_dir(experiments[0], sigma, profile)`` (an
    EnhancedGalaxyNN: the probes, saliency and sub-pixel study assume its layers) of every
    noise level and the ``test`` (and, for the probes, ``train``) datasets. Every further
    experiment in ``experiments`` (e.g. ``"shapenet"``) gets the per-layer Fisher
    information only, on the same galaxies and windows, at :func:`secondary_noise`
    (its layers from :func:`feature_fn_for`); it goes under ``"networks"`` in the JSON
    (which repeats the first experiment's there too) and as ``<name>_F_layers``,
    ``<name>_retained_<mode>`` in the npz. Writes
    ``diagnosis.json`` and ``diagnosis.npz`` atomically to ``out_dir`` (default
    ``paths.profile_dir(profile) / "diagnosis"``) and returns the JSON's content.
    ``sizes`` defaults to :meth:`DiagnosisSizes.for_profile`. The small dense solves are fastest with
    a single-threaded BLAS on a busy machine (``OPENBLAS_NUM_THREADS=1``).
    """
    from tqdm.auto import tqdm

    from . import data, paths
    from . import diagnosis_probe as probe
    from .io import save_npz, write_json

    t_start = time.perf_counter()
    sizes = sizes or DiagnosisSizes.for_profile(profile)
    out_dir = Path(out_dir) if out_dir is not None else paths.profile_dir(profile) / "diagnosis"
    grid, tags = tuple(profile.noise_grid), [noise_tag(s) for s in profile.noise_grid]
    experiments = list(experiments)
    if not experiments or len(set(experiments)) != len(experiments):
        raise ValueError(f"experiments must be distinct names, at least one; got {experiments}")
    trained = _load_models(profile, experiments[0])
    others = {e: _load_models(profile, e, secondary_noise(profile)) for e in experiments[1:]}
    test = data.load_dataset("test", profile)
    sim, w = test.sim, sizes.window_px
    n = min(sizes.n_fisher, len(test))
    idx = np.arange(min(max(n, sizes.n_vision), len(test)))
    theta = galaxy_theta(test.labels, idx)
    G_full = image_jacobian(test.psf, sim.pixel_scale_arcsec, theta)  # (N, S, S, 6)
    clean, noise = (np.asarray(a[idx], np.float64) for a in (test.clean, test.noise))
    windows = [galaxy_window(t, sim.stamp_size_px, sim.pixel_scale_arcsec, w) for t in theta[:n]]
    G_win = np.stack([G_full[i, r : r + w, c : c + w].reshape(-1, 6) for i, (r, c) in enumerate(windows)])
    F_win = np.einsum("nkp,nkq->npq", G_win, G_win)
    labels_all = galaxy_theta(test.labels, np.arange(len(test)))
    prior_prec = np.r_[1.0 / labels_all[:, :4].var(axis=0), 0.0, 0.0]  # flux, x0, y0, size

    n_points = len(grid) * (2 * n + 2) + 1 + sum(2 * n * len(t) for t in others.values())
    bar = tqdm(total=n_points, desc=f"diagnosis {profile.name}", disable=not progress)
    t0 = time.perf_counter()
    F_layers = np.stack([network_information(trained[s], clean[:n], noise[:n], s, G_full, windows, w,
                                             progress=bar) for s in grid])  # (K, 2, N, L, 6, 6)
    t_fisher = time.perf_counter() - t0
    sens = {}  # soft-threshold sensitivity: first galaxy, lowest noise, noisy stamp
    for rc in (1e-3, 1e-4, 1e-6, 1e-7):
        info = layer_fisher(enhanced_feature_fn(trained[grid[0]].model, w), trained[grid[0]].params,
                            clean[0] + grid[0] * noise[0], G_win[0], windows[0], w, rcond=rc)
        sens[f"{rc:.0e}"] = np.stack([info[k] for k in LAYERS])
    sens[f"{DEFAULT_RCOND:.0e}"] = F_layers[0, 0, 0]
    sens = {k: retained_fraction(v, F_win[0], "marginal").mean(-1).tolist() for k, v in sens.items()}
    retained, information = _information(F_layers, F_win, grid, prior_prec)  # retained: (K, 2, N, L, 2)
    networks = {experiments[0]: {"layers": list(LAYERS), "noise_grid": list(grid), "noise_tags": tags,
                                 "information": information, "timing_s": {"fisher": t_fisher}}}
    net_arrays = {}
    for name, models in others.items():
        t0 = time.perf_counter()
        sig = tuple(models)
        F_net = np.stack([network_information(models[s], clean[:n], noise[:n], s, G_full, windows, w,
                                              progress=bar) for s in sig])
        ret_net, info_net = _information(F_net, F_win, sig, prior_prec)
        networks[name] = {"layers": list(feature_fn_for(models[sig[0]].model, w)[1]), "noise_grid": list(sig),
                          "noise_tags": [noise_tag(s) for s in sig], "information": info_net,
                          "timing_s": {"fisher": time.perf_counter() - t0}}
        net_arrays |= {f"{name}_F_layers": F_net, **{f"{name}_retained_{m}": v for m, v in ret_net.items()}}
    capture = [window_capture(G_full[i], windows[i], w) for i in range(n)]

    probes = probe.run_probes(trained, grid, profile, sizes, progress=bar)
    bar.update(1)
    n_vis = len(idx)
    pick = int(np.argmin(np.abs(theta[:n_vis, 3] - np.median(labels_all[:, 3]))))  # a median-size galaxy
    vision = probe.run_vision(trained, grid, clean, noise, G_full, n_vis, pick)
    conv = {k: trained[grid[0]].params[k] for k in ("conv1", "conv2")}
    subpix = probe.run_subpixel(profile.seed, sim, conv)
    bar.update(len(grid))
    bar.close()

    summary = {
        "profile": profile.name, "sizes": dataclasses.asdict(sizes), "layers": list(LAYERS),
        "params": list(PARAM_NAMES), "noise_grid": list(grid), "noise_tags": tags, "rcond": DEFAULT_RCOND,
        "rcond_sensitivity": sens, "information": information, "networks": networks,
        "window_capture": {m: _summ(np.array([c[m] for c in capture])) for m in ("marginal", "fixed")},
        "prior_std": dict(zip(PARAM_NAMES[:4], (1 / np.sqrt(prior_prec[:4])).tolist())),
        "probes": probes["summary"], "vision": vision["summary"], "subpixel": subpix["summary"],
        "definitions": {
            "retained": "[I_image^-1]_kk / [I_layer^-1]_kk averaged over k = g1, g2; image = same window",
            "window": f"{w}x{w} px centred on the galaxy; pixels outside held fixed",
            "modes": "marginal: flux, x0, y0, size free; prior: Gaussian priors of the population's "
                     "std on them; fixed: nuisances known",
            "points": "noisy: linearised at clean + sigma * noise; clean: at the clean stamp",
        },
        "timing_s": {"fisher": t_fisher, "total": time.perf_counter() - t_start},
    }
    arrays = {
        "F_layers": F_layers, "F_window": F_win, "theta": theta[:n], "windows": np.asarray(windows),
        "F_full": np.einsum("nijp,nijq->npq", G_full[:n], G_full[:n]),
        "noise_grid": np.asarray(grid), "layers": np.asarray(LAYERS),
        **{f"retained_{m}": v for m, v in retained.items()},
        **probes["arrays"], **vision["arrays"], **subpix["arrays"], **net_arrays,
    }
    save_npz(out_dir / "diagnosis.npz", **arrays)
    write_json(out_dir / "diagnosis.json", summary)
    return summary
