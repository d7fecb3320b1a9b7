"""Metacalibration images in Fourier space, to first order in the shear step (pure NumPy).

Metacalibration (Huff & Mandelbaum 2017; Sheldon & Huff 2017) deconvolves a stamp by its PSF,
shears it, and reconvolves it with a slightly larger PSF; an estimator run on the ``+step`` and
``-step`` images gives its shear response on the very galaxies it measures. GalSim does this with
interpolated images at 40-80 ms per stamp and shear (:class:`shearbridge.stats.metacal.Metacal`,
kept as the reference); here the same operations are done on the stamp's own DFT grid, a few
2-d FFTs per stamp (about 1 ms).

For a stamp ``I`` with pixelised PSF image ``P`` (their transforms ``I~, P~`` on the stamp's
frequency grid, the stamp centre as the origin, ``x`` the column and ``y`` the row index):

* ``noshear``: ``N(k) = I~(k) / P~(k) * Gamma(k)``;
* the shear derivative along component ``j``: shearing the deconvolved image by ``g`` evaluates
  its transform at ``(1 + G) k`` to first order, ``G = g1 [[1, 0], [0, -1]] + g2 [[0, 1], [1, 0]]``,
  so ``D_j(k) = grad_k(I~ / P~)(k) . (G_j k) * Gamma(k)``, with ``grad_k I~ = DFT(-i x I)`` and
  ``grad_k P~ = DFT(-i x P)`` exact on the DFT's continuous extension;
* the sheared sets ``1p, 1m, 2p, 2m`` are ``N +- step D_j``: the linear term of the
  deconvolve-shear-reconvolve operation. A finite-difference response from them differs from
  metacal's ``+-step`` images by ``O(step^2)`` (the even orders cancel in both).

``Gamma`` is the reconvolution PSF: a round Gaussian of sigma ``(1 + 2 |step|)`` times the PSF's
Gaussian-equivalent sigma with the pixel along its major axis (after ngmix's ``fitgauss`` choice,
Sheldon & Huff 2017; :func:`reconvolution_sigma_px`): it is wider than the sheared PSF in every
direction, so ``Gamma / P~`` stays bounded and the deconvolution amplifies no noise, except where
``P~`` is the image's rendering error rather than the PSF: frequencies below :data:`PSF_FLOOR` of
the peak are dropped (an elliptical Gaussian PSF's transform reaches 1e-9 there, where the
analytic one is 1e-6, and dividing by it gave a third of the population's Gaussian-PSF galaxies wild
responses). It is round, so the PSF's own ellipticity does not survive.
The estimator is told this PSF (:attr:`MetacalImages.psf_image`, a sampled Gaussian: the
reconvolved stamps have no separate pixel response).

Correlated noise (``fix_noise``): the shear derivative makes the stamp's noise anisotropic, which
biases the response. As in metacal, a second noise image of the same sigma goes through the
same operations rotated by 90 degrees and is added to every set; its correlations cancel the
first ones to first order, at twice the noise variance.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.fft

from shearbridge.estimators.base import EstimatorInputError

__all__ = [
    "MetacalImages",
    "metacal_images",
    "metacal_by_psf",
    "reconvolution_sigma_px",
    "METACAL_STEP",
    "CHUNK",
    "PSF_FLOOR",
]

#: Reduced-shear step of the finite-difference response (metacal's value).
METACAL_STEP = 0.01
#: Frequencies where the PSF image's transform is below this fraction of its peak are dropped: there
#: it holds the image's rendering error (GalSim draws to ~1e-5 of the peak), not the PSF, and
#: dividing by it amplifies the noise without bound; the reconvolution PSF, wider than the PSF, is
#: as small there.
PSF_FLOOR = 1e-5
#: Stamps transformed at once (bounds the complex work arrays to ~100 MB).
CHUNK = 512


@dataclass(frozen=True)
class MetacalImages:
    """The ``noshear`` stamps, the shear derivatives ``d1, d2`` (per unit shear), each (N, S, S),
    the reconvolution PSF image (S, S, unit sum) and its Gaussian sigma in pixels."""

    noshear: np.ndarray
    d1: np.ndarray
    d2: np.ndarray
    psf_image: np.ndarray
    sigma_px: float
    step: float

    def sheared(self, component: int, sign: int) -> np.ndarray:
        """The set ``1p`` (component 1, sign +1), ``1m``, ``2p`` or ``2m``.

        It is ``noshear + sign step d``.
        """
        if component not in (1, 2) or sign not in (1, -1):
            raise ValueError(f"component must be 1 or 2 and sign +1 or -1, got {component}, {sign}")
        d = self.d1 if component == 1 else self.d2
        return self.noshear + sign * self.step * d

    def along(self, components: np.ndarray, sign: int) -> np.ndarray:
        """Each stamp sheared by ``sign step`` along its own component.

        ``components`` (N,) holds 1 or 2 per stamp.
        """
        comp = np.asarray(components).reshape(-1, 1, 1)
        if comp.shape[0] != self.noshear.shape[0] or not np.all(np.isin(comp, (1, 2))):
            raise ValueError("components must hold 1 or 2 for every stamp")
        return self.noshear + sign * self.step * np.where(comp == 1, self.d1, self.d2)


def _centred_dft(img: np.ndarray) -> np.ndarray:
    """DTFT on the (real-FFT) frequency grid of real (..., S, S) images, ``S`` even, whose pixel
    ``S / 2`` is the origin."""
    return scipy.fft.rfft2(np.fft.ifftshift(img, axes=(-2, -1)))


def _centred_idft(spec: np.ndarray, s: int) -> np.ndarray:
    return np.fft.fftshift(scipy.fft.irfft2(spec, s=(s, s)), axes=(-2, -1))


def _pad(a: np.ndarray) -> np.ndarray:
    """One row and column of zeros before an odd (..., S, S) image: an even grid (FFTs of 54 points
    are about twice as fast as of the prime 53) whose pixel ``S/2`` is the old centre pixel."""
    return np.pad(a, [(0, 0)] * (a.ndim - 2) + [(1, 0), (1, 0)])


def reconvolution_sigma_px(psf_image: np.ndarray, step: float = METACAL_STEP) -> float:
    """``(1 + 2 |step|)`` times the PSF image's Gaussian-equivalent sigma along its *major* axis,
    with the pixel (pixels): the square root of the largest eigenvalue of the image's unweighted
    second moments (the pixel's ``1/12 px^2`` stays in). For a round PSF it is the mean sigma; for
    an elliptical one the round reconvolution PSF must be wider than its long axis, or
    ``Gamma / P~`` grows at high frequencies, without bound for a Gaussian PSF (measured on the
    population's Gaussian PSFs with ``|g|`` up to 0.05 when the mean sigma was used: median response
    ~0, a third of the responses wild)."""
    img = np.clip(np.asarray(psf_image, np.float64), 0.0, None)
    if img.ndim != 2 or not img.sum() > 0:
        raise EstimatorInputError(
            f"metacal: PSF image must be a 2-d image of positive flux, got shape {img.shape}"
        )
    y, x = np.indices(img.shape, dtype=np.float64)
    w = img / img.sum()
    dx, dy = x - (w * x).sum(), y - (w * y).sum()
    ixx, iyy, ixy = (w * dx * dx).sum(), (w * dy * dy).sum(), (w * dx * dy).sum()
    major = 0.5 * (ixx + iyy) + np.hypot(0.5 * (ixx - iyy), ixy)
    return float((1.0 + 2.0 * abs(step)) * np.sqrt(major))


def metacal_images(
    stamps: np.ndarray,
    psf_image: np.ndarray,
    *,
    step: float = METACAL_STEP,
    fix_noise: np.ndarray | None = None,
) -> MetacalImages:
    """Metacal image sets of ``stamps`` (N, S, S) with PSF image ``psf_image``.

    ``psf_image`` is (S, S), pixel included. ``fix_noise`` (N, S, S), optional: the white-noise
    images of the correlated-noise fix (same sigma as the stamps'), one per stamp; each is rotated
    by 90 degrees, transformed like the stamps, rotated back and added. Odd square stamps only (the
    centre pixel is the origin).
    """
    x = np.asarray(stamps, np.float64)
    psf = np.asarray(psf_image, np.float64)
    if x.ndim != 3 or x.shape[1] != x.shape[2] or x.shape[0] == 0:
        raise EstimatorInputError(
            f"metacal: stamps must have shape (N, S, S) with N > 0, got {x.shape}"
        )
    s = x.shape[1]
    if s % 2 == 0:
        raise EstimatorInputError(
            f"metacal: stamps must have an odd size (a centre pixel), got {s}"
        )
    if psf.shape != (s, s):
        raise EstimatorInputError(
            f"metacal: PSF image must be {s}x{s} like the stamps, got {psf.shape}"
        )
    if not (np.all(np.isfinite(x)) and np.all(np.isfinite(psf)) and psf.sum() > 0):
        raise EstimatorInputError(
            "metacal: stamps and PSF image must be finite, the PSF of positive sum"
        )
    if not 0.0 < abs(step) < 0.1:
        raise ValueError(f"metacal: step must satisfy 0 < |step| < 0.1, got {step}")
    if fix_noise is not None and np.shape(fix_noise) != x.shape:
        raise EstimatorInputError(
            f"metacal: fix_noise must have the stamps' shape {x.shape}, got {np.shape(fix_noise)}"
        )
    psf = psf / psf.sum()
    sigma_r = reconvolution_sigma_px(psf, step)
    n = s + 1  # the transforms run on the padded, even grid; the sets are cropped back to S x S
    psf = _pad(psf)
    # the images are real: their transforms are Hermitian, and so are every set's (a real image)
    ky, kx = np.meshgrid(
        2.0 * np.pi * np.fft.fftfreq(n), 2.0 * np.pi * np.fft.rfftfreq(n), indexing="ij"
    )
    c = np.arange(n, dtype=np.float64) - n // 2
    yy, xx = np.meshgrid(c, c, indexing="ij")
    gamma = np.exp(-0.5 * sigma_r**2 * (kx**2 + ky**2))
    p, px, py = _centred_dft(psf), -1j * _centred_dft(xx * psf), -1j * _centred_dft(yy * psf)
    if np.min(np.abs(p)) <= 1e-300:
        raise EstimatorInputError("metacal: the PSF's transform vanishes on the frequency grid")
    # grad_k (f / p) = grad f / p - f grad p / p^2, contracted with G_j k: the kernels once
    a_k = gamma / p
    b_k = [(px * kx - py * ky) / p**2 * gamma, (px * ky + py * kx) / p**2 * gamma]
    # the Nyquist row and column of the even grid stand for +pi and -pi at once, where a derivative
    # (odd in k) is undefined: they are dropped (the reconvolution PSF is ~1e-7 there); so are the
    # frequencies where the PSF's transform is below PSF_FLOOR of its peak, set by how the image was
    # drawn, not by the PSF (module docstring)
    drop = (
        (np.abs(ky) >= np.pi - 1e-12)
        | (np.abs(kx) >= np.pi - 1e-12)
        | (np.abs(p) < PSF_FLOOR * np.abs(p).max())
    )
    for kern in (a_k, *b_k):
        kern[drop] = 0.0

    def transform(arr: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        arr = _pad(arr)
        f, fx, fy = _centred_dft(arr), -1j * _centred_dft(xx * arr), -1j * _centred_dft(yy * arr)
        out = [
            f * a_k,
            (fx * kx - fy * ky) * a_k - f * b_k[0],
            (fx * ky + fy * kx) * a_k - f * b_k[1],
        ]
        return tuple(_centred_idft(o, n)[..., 1:, 1:] for o in out)  # type: ignore[return-value]

    sets = [np.empty_like(x) for _ in range(3)]
    for lo in range(0, len(x), CHUNK):
        part = transform(x[lo : lo + CHUNK])
        if fix_noise is not None:
            rot = transform(
                np.rot90(np.asarray(fix_noise[lo : lo + CHUNK], np.float64), 1, axes=(1, 2))
            )
            part = tuple(a + np.rot90(b, -1, axes=(1, 2)) for a, b in zip(part, rot))
        for dst, src in zip(sets, part):
            dst[lo : lo + CHUNK] = src
    psf_r = _centred_idft(gamma.astype(np.complex128), n)[1:, 1:]
    return MetacalImages(
        noshear=sets[0],
        d1=sets[1],
        d2=sets[2],
        psf_image=psf_r / psf_r.sum(),
        sigma_px=sigma_r,
        step=float(step),
    )


def metacal_by_psf(
    stamps: np.ndarray,
    psfs: np.ndarray,
    groups: np.ndarray,
    components: np.ndarray,
    *,
    step: float = METACAL_STEP,
    fix_noise: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Metacal sets of stamps with one PSF image each (``psfs`` (N, S, S)), the stamps of one
    ``groups`` value sharing it (a galaxy of a shear test): ``(noshear, plus, minus, psf)``, each
    (N, S, S); ``plus``/``minus`` are sheared by ``+-step`` along each stamp's ``components`` (1 or
    2), ``psf`` is each stamp's reconvolution PSF. ``fix_noise`` as :func:`metacal_images`."""
    x, psfs, groups = np.asarray(stamps), np.asarray(psfs), np.asarray(groups)
    if psfs.shape != x.shape or groups.shape != x.shape[:1]:
        raise EstimatorInputError(
            f"metacal: need stamps and PSF images of one shape and a group per stamp, got "
            f"{x.shape}, {psfs.shape}, {groups.shape}"
        )
    out = [np.empty(x.shape) for _ in range(4)]
    for g in np.unique(groups):
        idx = np.flatnonzero(groups == g)
        if not np.array_equal(psfs[idx], np.broadcast_to(psfs[idx[0]], psfs[idx].shape)):
            raise EstimatorInputError(
                f"metacal: the stamps of group {g} do not share one PSF image"
            )
        mc = metacal_images(
            x[idx], psfs[idx[0]], step=step, fix_noise=None if fix_noise is None else fix_noise[idx]
        )
        comp = np.asarray(components)[idx]
        for dst, src in zip(
            out, (mc.noshear, mc.along(comp, +1), mc.along(comp, -1), mc.psf_image)
        ):
            dst[idx] = src
    return out[0], out[1], out[2], out[3]
