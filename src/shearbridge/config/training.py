"""How a network is trained: :class:`TrainConfig`."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Mapping

from shearbridge.config.checks import check_positive
from shearbridge.errors import ConfigError

__all__ = ["TrainConfig"]


@dataclass(frozen=True)
class TrainConfig:
    """How a network is trained (ShearNet's hyper-parameters by default).

    ``epochs`` and ``patience`` of ``None`` mean "take them from the profile"; ``epochs=0`` means
    no gradient step at all: the parameters are the model's ``data_init`` (a least-squares fit on
    the training split), which the model must then have.
    ``max_objects``: train (and validate) on the first this many objects of the
    training set only (``None``: all of them).
    """

    model: str = "enhanced"
    n_outputs: int = 4
    learning_rate: float = 1e-3
    weight_decay: float = 1e-4
    batch_size: int = 128
    epochs: int | None = None
    patience: int | None = None
    warmup_epochs: float = 0.0
    standardize_labels: bool = True
    seed: int = 0
    model_kwargs: Mapping[str, Any] = field(default_factory=dict)
    max_objects: int | None = None

    def validate(self) -> None:
        if self.n_outputs not in (2, 4):
            raise ConfigError(
                f"n_outputs must be 2 (g1, g2) or 4 (g1, g2, size, flux), got {self.n_outputs}"
            )
        check_positive("learning_rate", self.learning_rate)
        if not (math.isfinite(self.weight_decay) and self.weight_decay >= 0):
            raise ConfigError(f"weight_decay must be a finite number >= 0, got {self.weight_decay}")
        if self.batch_size < 1:
            raise ConfigError(f"batch_size must be >= 1, got {self.batch_size}")
        for name in (
            "epochs",
            "patience",
            "max_objects",
        ):  # None defaults: from_dict cannot type-check them
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
                raise ConfigError(f"{name} must be an integer or null, got {value!r}")
        if not isinstance(self.model_kwargs, Mapping):
            raise ConfigError(f"model_kwargs must be a mapping, got {self.model_kwargs!r}")
        if self.epochs is not None and self.epochs < 0:
            raise ConfigError(f"epochs must be >= 0 (0: data_init only), got {self.epochs}")
        if self.patience is not None and self.patience < 1:
            raise ConfigError(f"patience must be >= 1, got {self.patience}")
        if self.max_objects is not None and self.max_objects < 2:
            raise ConfigError(
                "max_objects must be >= 2 (a training and a validation object), "
                f"got {self.max_objects}"
            )
        if self.warmup_epochs < 0:
            raise ConfigError(f"warmup_epochs must be >= 0, got {self.warmup_epochs}")
