"""The pipeline steps: the only modules that read and write the profile's data folder.

One module per step of the Snakefile (``python -m shearbridge <step>``): :mod:`.crlb`,
:mod:`.compare`, :mod:`.bias`, :mod:`.metacal`, :mod:`.robustness`, :mod:`.learning`,
:mod:`.timing`, :mod:`.diagnose`, :mod:`.evaluate` (datasets are made by
:mod:`shearbridge.sim.datasets`, networks trained by :mod:`shearbridge.train.loop`).
Each loads its inputs, calls the pure code below it (``stats``, ``estimators``,
``diagnosis``, ``models``) with arrays, and writes its result atomically. Which methods
and noise levels a step serves comes from the registry (:mod:`shearbridge.study`);
:mod:`.measure` builds a registered method's estimator and times it.
"""
