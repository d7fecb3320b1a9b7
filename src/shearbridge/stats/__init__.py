"""The study's statistics, pure functions of arrays: the per-galaxy Cramér–Rao bound
(:mod:`.crlb` by autodiff of the JAX renderer, :mod:`.crlb_fd` by finite differences of
GalSim), the shear bias m, c from paired tests with jackknife errors (:mod:`.bias`), the
metacalibration (:mod:`.metacal` with GalSim, :mod:`.metacal_fourier` on the DFT grid) and the
resampling errors of the comparison and the timing study (:mod:`.resample`). The number scripts use
them too.
"""
