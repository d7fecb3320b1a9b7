"""shearbridge: precision-preserving CNN shear measurement, from NumPy to JAX/Flax.

The library behind the paper in ``src/tex/ms.tex``. Submodules:

``config``      profiles, simulation and training configs (one place for every setting)
``sim``         GalSim stamps (ShearNet's 2025 setup and robustness variants)
``data``        cached, atomically written datasets per profile
``models``      EnhancedGalaxyNN (ShearNet's baseline) and the improved networks
``train``       ``train_and_evaluate(config, workdir)``
``evaluate``    RMSE, bias (slope/offset) with bootstrap errors
``estimators``  ML fit (JAX), ngmix adapter, GalSim HSM, Cramer-Rao bound, m/c
``numpy_ref``   NumPy reference implementations of CNN building blocks
``layers``      custom Flax layers (scale-sensitive kernels, blur-pool, attention)
"""

__version__ = "0.1.0"
