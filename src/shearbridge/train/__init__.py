"""Training, in layers (each module imports only those above it in this list).

* :mod:`~shearbridge.train.runtime`: process settings for fast CPU training (XLA flags,
  compiler options, glibc malloc); imports neither jax nor flax;
* :mod:`~shearbridge.train.distributed`: several processes or hosts (``jax.distributed``);
  imports jax only when used;
* :mod:`~shearbridge.train.parallel`: data-parallel steps over several devices;
* :mod:`~shearbridge.train.optim`: optimiser, training/evaluation steps, compile cache;
* :mod:`~shearbridge.train.data`: split, label statistics, :class:`~.data.TrainingData`;
* :mod:`~shearbridge.train.checkpoint`: the resumable state and its run hash;
* :mod:`~shearbridge.train.metrics`: ``metrics.json`` and ``losses.json`` content;
* :mod:`~shearbridge.train.state`: one run set up (model, parameters, compiled steps);
* :mod:`~shearbridge.train.loop`: ``train_and_evaluate(config, workdir)`` and its epochs.

Nothing is imported here, so ``shearbridge.train.runtime`` stays cheap to import.
"""
