"""The pipeline steps: the only modules that read and write the profile's data folder.

One module per step of the Snakefile (``python -m shearbridge <step>``): :mod:`.crlb`,
:mod:`.compare`, :mod:`.bias`, :mod:`.metacal`, :mod:`.robustness`, :mod:`.learning`,
:mod:`.timing`, :mod:`.diagnose`, :mod:`.evaluate`, :mod:`.floor`, :mod:`.tune`,
:mod:`.tune_anacal` (datasets are made by :mod:`shearbridge.sim.datasets` through :mod:`.simulate`,
networks trained by :mod:`shearbridge.train.loop` through :mod:`.train`). Each declares its
commands next to its code (``COMMANDS``, :class:`.command.Command`), imports its heavy
dependencies where it uses them, and :mod:`shearbridge.cli` assembles them; :mod:`.info` and
:mod:`.catalogue` are the user's ``list``, ``info`` and ``measure``.
Each loads its inputs, calls the pure code below it (``stats``, ``estimators``,
``diagnosis``, ``models``) with arrays, and writes its result atomically. Which methods
and noise levels a step serves comes from the registry (:mod:`shearbridge.study`);
:mod:`.measure` builds a registered method's estimator and times it.
"""
