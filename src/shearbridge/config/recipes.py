"""The named experiments' recipes: :class:`ExperimentConfig` and one function per network trained.

An experiment is one network trained at one noise level on one profile's data. Each named
experiment is a function ``name(profile, noise_sigma) -> ExperimentConfig`` whose docstring gives
the command, the expected runtime and the headline number; epochs and training objects come from
the profile (``python -m shearbridge info --profile quick``), so the docstrings do not repeat them.
Variants derive from :func:`baseline` by overriding a few fields.
:mod:`shearbridge.config.experiments` registers them, with the ablation steps and the seed
variants, and looks them up.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from shearbridge.config import ConfigError, Profile, TrainConfig

__all__ = [
    "ExperimentConfig",
    "baseline",
    "baseline_raw",
    "baseline_2out",
    "SHAPENET_FINAL",
    "shapenet",
    "shapenet_mix",
    "moments_affine",
]


@dataclass(frozen=True)
class ExperimentConfig:
    """One training run: a network, its training settings, a profile and a noise level.

    Attributes
    ----------
    name : str
        Experiment name; the run directory and result files are named after it.
    train : TrainConfig
        Model and optimiser settings. ``train.epochs`` / ``train.patience`` of
        ``None`` take the profile's values (see :attr:`epochs`, :attr:`patience`).
    profile : Profile
        Dataset sizes, validation fraction, bootstrap count.
    noise_sigma : float
        Standard deviation of the Gaussian pixel noise added to the clean
        stamps, in image units (ShearNet: 1e-5 "low", 1e-3 "high").
    train_dataset, test_dataset : str
        Dataset names (see :mod:`shearbridge.sim.catalogue`).
    save_every : int
        Also store a parameter snapshot ``params_epochXXX.msgpack`` every this
        many epochs (0: never); for learning-curve studies.
    description : str
        One line for logs and the paper's tables.
    """

    name: str
    train: TrainConfig
    profile: Profile
    noise_sigma: float
    train_dataset: str = "train"
    test_dataset: str = "test"
    save_every: int = 0
    description: str = ""

    @property
    def epochs(self) -> int:
        """Planned number of epochs (the cosine schedule spans them)."""
        return int(self.train.epochs if self.train.epochs is not None else self.profile.epochs)

    @property
    def patience(self) -> int:
        """Early-stopping patience in epochs without a new best validation loss."""
        return int(
            self.train.patience if self.train.patience is not None else self.profile.patience
        )

    def validate(self) -> None:
        if not self.name or not self.name.replace("_", "").replace("-", "").isalnum():
            raise ConfigError(f"name must be alphanumeric (with _ or -), got {self.name!r}")
        if not isinstance(self.noise_sigma, (int, float)) or not self.noise_sigma >= 0:
            raise ConfigError(f"noise_sigma must be a number >= 0, got {self.noise_sigma!r}")
        if self.save_every < 0:
            raise ConfigError(f"save_every must be >= 0, got {self.save_every}")
        for attr in ("train_dataset", "test_dataset"):
            if not getattr(self, attr):
                raise ConfigError(f"{attr} must be a dataset name, got {getattr(self, attr)!r}")
        try:
            self.train.validate()
        except ConfigError as exc:
            raise ConfigError(f"train.{exc}") from None
        self.profile.validate()


def baseline(profile: Profile, noise_sigma: float) -> ExperimentConfig:
    """ShearNet's EnhancedGalaxyNN with ShearNet's hyper-parameters, labels standardised.

    AdamW, learning rate 1e-3 with cosine decay, weight decay 1e-4, batch 128,
    4 outputs (g1, g2, size_arcsec, flux), early stopping on a shuffled
    validation split keeping the best parameters. One deliberate change from
    ShearNet: the labels are standardised (zero mean, unit variance per output,
    from the training split) and the loss is the true MSE over them.
    ShearNet regresses raw labels, so flux (variance (5-1)^2/12 = 1.33) outweighs
    g1, g2 (variance ~0.26^2 = 0.068) about 20:1 in its loss; standardising
    gives each output equal weight. ``baseline_raw`` keeps ShearNet's choice.

    Command: ``python -m shearbridge train --config baseline --noise 1e-5``.
    Epochs and training objects: the profile's (``python -m shearbridge info
    --profile quick``). Runtime: epochs x objects / throughput, at 200-750 training
    samples/s at batch 128 on 2 shared CPU cores, plus 2-7 s of compilation;
    ``full`` needs a GPU.
    Headline: RMSE(g) = sqrt((MSE(g1) + MSE(g2)) / 2) falls with training length:
    0.24 after 2 epochs of 2048 objects (the prior's 0.26: nothing learnt yet),
    0.11 after 10 epochs of the same 2048 objects (measured at noise 1e-5);
    ShearNet reports 0.0090 / 0.0100 (g1 / g2) after 1e5 objects x up to 300 epochs.
    """
    return ExperimentConfig(
        name="baseline",
        train=TrainConfig(
            model="enhanced",
            n_outputs=4,
            learning_rate=1e-3,
            weight_decay=1e-4,
            batch_size=128,
            standardize_labels=True,
            seed=0,
        ),
        profile=profile,
        noise_sigma=noise_sigma,
        save_every=1,  # per-epoch snapshots: the learning curves (shearbridge.steps.learning)
        description="ShearNet EnhancedGalaxyNN, ShearNet hyper-parameters, standardised labels",
    )


def baseline_raw(profile: Profile, noise_sigma: float) -> ExperimentConfig:
    """:func:`baseline` without label standardisation (ShearNet's own choice).

    The loss is the plain MSE over raw (g1, g2, size_arcsec, flux), which flux
    dominates; compare with ``baseline`` to see what standardising buys.

    Command: ``python -m shearbridge train --config baseline_raw --noise 1e-5``.
    Budget and runtime: as ``baseline``. Headline: worse shears. Measured once
    (2048 training objects, 10 epochs, noise 1e-5, seed 0): RMSE(g) 0.21 against
    ``baseline``'s 0.11, and RMSE(flux) 0.59 against 0.16.
    """
    base = baseline(profile, noise_sigma)
    return dataclasses.replace(
        base,
        name="baseline_raw",
        train=dataclasses.replace(base.train, standardize_labels=False),
        description="ShearNet EnhancedGalaxyNN, raw (un-standardised) labels as in ShearNet",
    )


def baseline_2out(profile: Profile, noise_sigma: float) -> ExperimentConfig:
    """:func:`baseline` predicting only (g1, g2), ShearNet's later 2-output setup.

    Command: ``python -m shearbridge train --config baseline_2out --noise 1e-5``.
    Budget and runtime: as ``baseline``. Headline: RMSE(g) expected close to ``baseline``'s
    (not yet measured).
    """
    base = baseline(profile, noise_sigma)
    return dataclasses.replace(
        base,
        name="baseline_2out",
        train=dataclasses.replace(base.train, n_outputs=2),
        description="ShearNet EnhancedGalaxyNN with two outputs (g1, g2), standardised labels",
    )


#: ShapeNet's final settings (see :mod:`shearbridge.models.shapenet` for each switch).
SHAPENET_FINAL: dict[str, Any] = {
    "channels": [16, 32],
    "dilations": [1, 1],
    "activation": "gelu",
    "pool": "avg",
    "head": "moment",
    "head_layers": 2,
    "hidden": 128,
    "input_norm": True,
    "moments": True,
    "residual": True,
    "attention": False,
}


def shapenet(profile: Profile, noise_sigma: float) -> ExperimentConfig:
    """ShapeNet, the precision-preserving network, with the baseline's training recipe.

    Same optimiser, batch, epochs, data and label standardisation as
    :func:`baseline`; it predicts (g1, g2) only (ShearNet's later two-output
    setup, ``baseline_2out``): with four outputs the flux and size errors
    dominate the loss and the network stops refining g (measured: RMSE(g)
    3.3e-3 with four outputs at noise 1e-5, 8,192 objects x 8 epochs). What it
    changes (each switch ablated by the ``abl_*`` experiments): GELU, a
    Gaussian moment-pooling head with a two-layer MLP, flux-normalised input,
    PSF-deconvolved adaptive-moment features and a residual read-out that
    starts from their analytic shear. It keeps ShearNet's 2x2 average pooling:
    anti-aliased BlurPool halves the training rate on the CPU (measured: 297
    against 499 samples/s per core) and is tested as an addition instead.
    The PSF sigma (pixels) the moment features deconvolve is not part of the experiment: it
    comes from the simulation record of the training set when the network is built
    (:func:`shearbridge.models.bind_data_kwargs`).

    Command: ``python -m shearbridge train --config shapenet --noise 1e-5``.
    Epochs and training objects: the profile's, as ``baseline``. Runtime: about the
    baseline's per training sample.
    """
    base = baseline(profile, noise_sigma)
    kwargs = dict(SHAPENET_FINAL)
    return dataclasses.replace(
        base,
        name="shapenet",
        train=dataclasses.replace(base.train, model="shapenet", model_kwargs=kwargs, n_outputs=2),
        description="ShapeNet: moment-pooling head, adaptive-moment residual, GELU",
    )


def shapenet_mix(profile: Profile, noise_sigma: float) -> ExperimentConfig:
    """:func:`shapenet` trained on the galaxy-model mixture (Gaussian, exponential, Sersic,
    bulge+disk; dataset ``train_mix``) instead of Gaussians only: the robustness study's
    answer to out-of-distribution galaxies. Same recipe and budget as ``shapenet``.

    Command: ``python -m shearbridge train --config shapenet_mix --noise 1e-3``.
    Epochs, training objects and runtime: as ``shapenet``.
    """
    base = shapenet(profile, noise_sigma)
    return dataclasses.replace(
        base,
        name="shapenet_mix",
        train_dataset="train_mix",
        description="ShapeNet trained on the galaxy-model mixture",
    )


def moments_affine(profile: Profile, noise_sigma: float) -> ExperimentConfig:
    """ShapeNet's analytic part with no network: the PSF-deconvolved adaptive-moment shears and
    their least-squares affine read-out (:class:`shearbridge.models.moments_affine.MomentsAffine`),
    fitted on the same training split, with the same label standardisation, as :func:`shapenet`.
    Zero epochs: no gradient step, the fit is the model. Comparing it with ``shapenet`` at each
    noise level measures what training the network adds to the formula.

    Command: ``python -m shearbridge train --config moments_affine --noise 1e-5``.
    Runtime: one pass of the moment layer over the training stamps (seconds).
    """
    base = shapenet(profile, noise_sigma)
    return dataclasses.replace(
        base,
        name="moments_affine",
        train=dataclasses.replace(
            base.train, model="moments_affine", model_kwargs={}, n_outputs=2, epochs=0
        ),
        save_every=0,
        description="adaptive moments + least-squares affine read-out, no network",
    )
