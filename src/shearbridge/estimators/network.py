"""A trained network behind the common estimator interface.

:class:`NetworkEstimator` wraps a :class:`shearbridge.models.Trained` (loaded by the
pipeline step that owns the run folder) so that every study measures a network the
way it measures a classical estimator: ``measure(stamps, psf_image, pixel_scale_arcsec,
noise_sigma) -> EstimatorResult``. A per-level network sees only the stamps; the PSF it was
trained for is part of the trained model. :class:`PSFNetEstimator` (the population study's
network, trained once) is told the PSF image and noise sigma.

Inputs: a pixel scale or a noise sigma that is given must be positive and finite, a PSF image that
is given must be the stamps' size, finite and of positive flux (:mod:`.base`'s checks, one error
each). A user's estimator (``strict``, as :func:`shearbridge.estimator` builds it) also refuses a
pixel scale, a PSF size or (a per-level network) a noise sigma other than its training's, and needs
the pixel scale; the studies' own calls may leave them ``None`` and measure off the training data
on purpose (the robustness study; metacalibration tells the doubled noise variance).

Flags (:mod:`.network_domain`): ``nonpositive_flux``, ``out_of_domain`` (a flux or size far
outside the training data), ``unphysical`` (``|g| >= 1``) and ``nonfinite``; the estimates of a
flagged stamp are returned as the network gave them.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from shearbridge.estimators.base import (
    EstimatorInputError,
    EstimatorResult,
    check_positive,
    check_psf_image,
)
from shearbridge.estimators.network_domain import (
    domain_flags,
    moment_sigma_px,
    shear_flags,
    statistic_filters,
    training_flux_range,
)

__all__ = ["NetworkEstimator", "PSFNetEstimator", "NETWORK_BATCH", "PSF_TOLERANCE", "psf_sigma_px"]

#: Stamps per compiled network call (the last batch is zero-padded: one compilation).
NETWORK_BATCH = 256


class NetworkEstimator:
    """``measure`` = the trained network's (g1, g2) in label units.

    Parameters
    ----------
    trained : shearbridge.models.Trained
        The network, its parameters and label statistics.
    name : str
        The method's registry name (for messages and results).
    batch_size : int
        Stamps per compiled call.
    """

    def __init__(
        self, trained: Any, name: str, batch_size: int = NETWORK_BATCH, strict: bool = False
    ) -> None:
        self.trained = trained
        self.name = name
        self.batch_size = int(batch_size)
        # also check the PSF, the pixel scale and the noise level (a user's stamps; not the studies)
        self.strict = strict
        self.warmup_stamps = self.batch_size  # an untimed first call compiles the full batch
        meta = getattr(trained, "meta", {}) or {}
        self._flux_range = training_flux_range(meta)
        self._psf_px = meta.get("psf_moment_sigma_px")

    def measure(
        self,
        stamps: np.ndarray,
        psf_image: np.ndarray | None = None,
        pixel_scale_arcsec: float | None = None,
        noise_sigma: float | None = None,
    ) -> EstimatorResult:
        """(g1, g2) of each stamp, flagged as :mod:`.network_domain` says. Today's networks do not
        use the PSF, pixel scale or noise: each given one is checked (module docstring), and a
        ``strict`` estimator compares them with its training's."""
        trained_px = self.trained.meta.get("stamp_size_px")
        stamps = _checked_stamps(self.name, stamps, None if trained_px is None else int(trained_px))
        scale, sigma = _checked_scale_noise(self.name, pixel_scale_arcsec, noise_sigma, self.strict)
        if psf_image is not None:
            _checked_psf(self.name, psf_image, stamps.shape[1], one_only=True)
        if self.strict:
            self._check_like_training(psf_image, scale, sigma)
        g = np.asarray(self.trained.predict(stamps, self.batch_size)[:, :2], np.float64)
        flags = domain_flags(stamps, sigma, self._flux_range, self._psf_px) | shear_flags(g)
        return EstimatorResult(g1=g[:, 0], g2=g[:, 1], flags=flags)

    def with_psf(self, psf_image: np.ndarray) -> "NetworkEstimator":
        """The same network told another PSF: a model with a ``psf_sigma_px`` field (its analytic
        moment part) gets the Gaussian-equivalent sigma of ``psf_image`` (:func:`psf_sigma_px`),
        the learned weights unchanged. Metacalibration tells it the reconvolution PSF this way; a
        network with no PSF parameter cannot be told one (EstimatorInputError)."""
        import dataclasses

        model = self.trained.model
        if getattr(model, "psf_sigma_px", None) is None:
            raise EstimatorInputError(
                f"{self.name}: the network has no PSF parameter to be told another PSF"
            )
        told = dataclasses.replace(
            self.trained, model=model.clone(psf_sigma_px=psf_sigma_px(psf_image))
        )
        return NetworkEstimator(told, self.name, self.batch_size, self.strict)

    def _check_like_training(
        self,
        psf_image: np.ndarray | None,
        pixel_scale_arcsec: float | None,
        noise_sigma: float | None,
    ) -> None:
        """Refuse a PSF whose size or a pixel scale that differs from the training data's by more
        than :data:`PSF_TOLERANCE` / 1e-6, or a noise sigma other than the training's (relative
        1e-6; the robustness study measures networks off their training data on purpose; a user's
        catalogue should not do so silently)."""
        meta = self.trained.meta
        if pixel_scale_arcsec is None or noise_sigma is None:
            raise EstimatorInputError(
                f"{self.name}: needs the stamps' pixel scale and noise "
                f"sigma, got {pixel_scale_arcsec!r} and {noise_sigma!r}"
            )
        _check_trained_scale(self.name, pixel_scale_arcsec, meta.get("pixel_scale_arcsec"))
        rec = meta.get("experiment") if isinstance(meta.get("experiment"), dict) else {}
        trained_sigma = rec.get("noise_sigma")
        if trained_sigma is not None and abs(noise_sigma / float(trained_sigma) - 1) > 1e-6:
            profile = (rec.get("profile") or {}).get("name", "<profile>")
            config = rec.get("name", self.name)
            raise EstimatorInputError(
                f"{self.name}: trained at noise sigma {float(trained_sigma):g}, told "
                f"{noise_sigma:g}: measure with the network trained at {noise_sigma:g} "
                f"(shearbridge.estimator({self.name!r}, {noise_sigma:g}); train it with `python "
                f"-m shearbridge train --config {config} --noise {noise_sigma:g} "
                f"--profile {profile}`)"
            )
        want = meta.get("psf_moment_sigma_px")
        if want is not None and psf_image is not None:
            got = psf_sigma_px(np.asarray(psf_image, np.float64))
            if abs(got / want - 1) > PSF_TOLERANCE:
                raise EstimatorInputError(
                    f"{self.name}: trained for a PSF of moment sigma {want:.3g} px, this PSF image "
                    f"has {got:.3g} px (unweighted second moments, pixel removed)"
                )


class PSFNetEstimator:
    """``measure`` = PSFNet's (g1, g2) (:mod:`shearbridge.models.psfnet`), told the PSF image and
    the noise sigma of the stamps; its per-galaxy uncertainty ``s`` is ``extra["sigma_g"]``.

    Parameters
    ----------
    model, params
        The network and its trained parameters (the population study's, as the pipeline step loads
        them).
    name : str
        The method's registry name (for messages).
    stamp_size_px : int
        The stamp size it was trained on (the population's): other sizes are refused.
    sim : SimConfig, optional
        The population's simulation (default: :class:`~shearbridge.config.SimConfig`, the
        population study's): its pixel scale (a ``strict`` estimator refuses others) and its flux
        range (:mod:`.network_domain`).
    """

    #: ``measure`` takes one PSF image per stamp (N, S, S) as well as one for all.
    psf_per_stamp = True

    def __init__(
        self,
        model: Any,
        params: Any,
        name: str,
        batch_size: int = NETWORK_BATCH,
        stamp_size_px: int = 53,
        sim: Any = None,
        strict: bool = False,
    ) -> None:
        import jax

        from shearbridge.config import SimConfig

        self.model, self.params, self.name = model, params, name
        self.batch_size, self.stamp_size_px = int(batch_size), int(stamp_size_px)
        self.sim = SimConfig() if sim is None else sim
        self.strict = strict  # a user's stamps: the pixel scale must be the training's
        self.warmup_stamps = self.batch_size
        self._apply = jax.jit(model.apply)

    def measure(
        self,
        stamps: np.ndarray,
        psf_image: np.ndarray | None = None,
        pixel_scale_arcsec: float | None = None,
        noise_sigma: float | None = None,
    ) -> EstimatorResult:
        """(g1, g2) of each stamp, flagged as :mod:`.network_domain` says. ``psf_image`` is one
        (S, S) image for every stamp or one per stamp (N, S, S), scaled to unit sum; ``noise_sigma``
        (image units, any positive level: the network was trained over a range) is required."""
        s = self.stamp_size_px
        stamps = _checked_stamps(self.name, stamps, s).astype(np.float32)
        scale, sigma = _checked_scale_noise(self.name, pixel_scale_arcsec, noise_sigma, self.strict)
        if sigma is None:
            raise EstimatorInputError(
                f"{self.name}: needs the noise sigma of the stamps (a "
                "positive, finite number), got None"
            )
        if psf_image is None:
            raise EstimatorInputError(f"{self.name}: needs the PSF image of the stamps, got None")
        if self.strict:
            _check_trained_scale(self.name, scale, self.sim.pixel_scale_arcsec)
        psf = _checked_psf(self.name, psf_image, s, one_only=False)
        if psf.ndim == 3 and len(psf) != len(stamps):
            raise EstimatorInputError(
                f"{self.name}: psf_image must be ({s}, {s}) or (N, {s}, {s}) "
                f"with N = {len(stamps)} stamps; got {psf.shape}"
            )
        psf = np.broadcast_to(psf, stamps.shape)
        unit = psf / psf.sum(axis=(1, 2), keepdims=True)
        out = np.asarray(self.predict(stamps, unit.astype(np.float32), sigma), np.float64)
        one = np.asarray(psf_image).ndim == 2
        floor = moment_sigma_px(unit[:1])[0] if one else moment_sigma_px(unit)
        flux_range = (self.sim.flux_min, self.sim.flux_max)
        flags = domain_flags(
            stamps, sigma, flux_range, floor, self._statistics(stamps)
        ) | shear_flags(out[:, :2])
        return EstimatorResult(
            g1=out[:, 0], g2=out[:, 1], flags=flags, extra={"sigma_g": np.exp(out[:, 2])}
        )

    def _statistics(self, stamps: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """:func:`~shearbridge.estimators.network_domain.linear_statistics` of float32 ``stamps``
        on the network's device, in its batches (the flags then cost next to nothing)."""
        import jax
        import jax.numpy as jnp

        from shearbridge.models.predict import map_batches

        if getattr(self, "_stats_fn", None) is None:
            filters = jnp.asarray(statistic_filters(self.stamp_size_px), jnp.float32)

            def stats(x: Any) -> Any:
                flat = x.reshape(x.shape[0], -1)
                return jnp.dot(flat, filters, precision=jax.lax.Precision.HIGHEST), flat.max(axis=1)

            self._stats_fn = jax.jit(stats)
        m, peak = map_batches(self._stats_fn, stamps, self.batch_size)
        return np.asarray(m, np.float64), np.asarray(peak, np.float64)

    def predict(self, stamps: np.ndarray, psfs: np.ndarray, noise_sigma: float) -> np.ndarray:
        """The network's raw ``(N, 3)`` output (``g1, g2, log s``) on checked inputs: stamps
        ``(N, S, S)``, one PSF image per stamp as given (not rescaled), one noise sigma; in
        fixed-size batches (:func:`shearbridge.models.predict.map_batches`). :meth:`measure` checks
        and calls it; the population study calls it directly on its own cells."""
        from shearbridge.models.predict import map_batches

        sigma = np.full(len(stamps), noise_sigma, np.float32)
        return map_batches(
            lambda x, p, n: self._apply(self.params, x, p, n), stamps, self.batch_size, psfs, sigma
        )


#: Largest relative difference of PSF sigma between a user's PSF image and the training data's.
PSF_TOLERANCE = 0.05


def psf_sigma_px(psf_image: np.ndarray) -> float:
    """Gaussian-equivalent sigma (pixels) of a pixelised PSF image from its second moments,
    the pixel's 1/12 px^2 removed (exact for a Gaussian PSF)."""
    img = np.asarray(psf_image, np.float64)
    if img.ndim != 2:
        raise EstimatorInputError(f"psf_image must be one 2-d image, got shape {img.shape}")
    img = np.clip(check_psf_image(img), 0.0, None)
    y, x = np.indices(img.shape, dtype=np.float64)
    w = img / img.sum()
    xc, yc = (w * x).sum(), (w * y).sum()
    var = 0.5 * ((w * (x - xc) ** 2).sum() + (w * (y - yc) ** 2).sum()) - 1.0 / 12.0
    return float(np.sqrt(max(var, 1e-12)))


def _checked_stamps(name: str, stamps: Any, size: int | None) -> np.ndarray:
    """``stamps`` as an array (N, S, S) (one (S, S) stamp promoted), finite, of the trained size."""
    stamps = np.asarray(stamps)
    if stamps.ndim == 2:
        stamps = stamps[None]
    if stamps.ndim != 3 or stamps.shape[1] != stamps.shape[2] or len(stamps) == 0:
        want = "(N, S, S)" if size is None else f"(N, {size}, {size})"
        raise EstimatorInputError(
            f"{name}: stamps must have shape {want} with N > 0, got {stamps.shape}"
        )
    if size is not None and stamps.shape[1] != size:
        raise EstimatorInputError(
            f"{name}: trained on {size}x{size} stamps, got {stamps.shape[1]}x{stamps.shape[2]}"
        )
    if not np.issubdtype(stamps.dtype, np.number) or not np.all(np.isfinite(stamps)):
        raise EstimatorInputError(f"{name}: stamps contain NaN or inf (or are not numbers)")
    return stamps


def _checked_scale_noise(name: str, scale: Any, sigma: Any, strict: bool) -> tuple[Any, Any]:
    """The pixel scale and the noise sigma as floats (each checked when given or when ``strict``:
    a user's call must give the pixel scale; ``None`` stays ``None`` for a study's call)."""
    if scale is not None or strict:
        scale = check_positive(f"{name}: pixel_scale_arcsec", scale)
    if sigma is not None:
        sigma = check_positive(f"{name}: noise_sigma", sigma)
    return scale, sigma


def _check_trained_scale(name: str, scale: float, trained: float | None) -> None:
    """Refuse a pixel scale other than the training's (relative 1e-6; ``trained`` None: unknown)."""
    if trained is not None and abs(scale / trained - 1) > 1e-6:
        raise EstimatorInputError(f"{name}: trained on {trained}''/px stamps, got {scale}''/px")


def _checked_psf(name: str, psf_image: Any, size: int, one_only: bool) -> np.ndarray:
    """A PSF image of the stamps' size (S, S) (or one per stamp (N, S, S) unless ``one_only``),
    finite and of positive flux (:func:`~shearbridge.estimators.base.check_psf_image`)."""
    try:
        psf = np.asarray(psf_image, np.float64)
    except (TypeError, ValueError):
        raise EstimatorInputError(f"{name}: psf_image must be an array of numbers") from None
    shapes = f"({size}, {size})" + ("" if one_only else f" or (N, {size}, {size})")
    if psf.shape[-2:] != (size, size) or psf.ndim not in ((2,) if one_only else (2, 3)):
        raise EstimatorInputError(
            f"{name}: psf_image must have the stamps' shape {shapes}, got {psf.shape}"
        )
    return check_psf_image(psf, f"{name}: ")
