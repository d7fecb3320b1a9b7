"""Galaxy-image simulation, in three layers: :mod:`~shearbridge.sim.stamps` renders
stamps with GalSim (galaxy population, PSF, shear-test quartets, deterministic drawing);
:mod:`~shearbridge.sim.catalogue` says which datasets exist for a profile (their specs,
sizes, fixed random-stream ids and the hash that identifies their contents); and
:mod:`~shearbridge.sim.datasets` generates them once (in parallel, written atomically),
caches them under ``src/data/<profile>/datasets/`` and loads them back as memory-mapped
:class:`~shearbridge.sim.datasets.Dataset` objects whose noisy images are
``clean + sigma * noise`` at any noise level.
"""
