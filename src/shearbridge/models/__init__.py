"""Networks: blocks (layers, activations, moments, pooling, fast convolutions), the networks
(``enhanced``: ShearNet's EnhancedGalaxyNN; ``shapenet``), the registry by name
(:mod:`.registry`), running them (:mod:`.predict`), saving and loading trained ones
(:mod:`.checkpoints`) and the FLOP counter (:mod:`.flops`). The usual names are re-exported.
"""

from shearbridge.models.checkpoints import (
    MODEL_FILE,
    TARGET_NAMES,
    Trained,
    load_trained,
    save_model,
)
from shearbridge.models.predict import check_images, map_batches, predict
from shearbridge.models.registry import (
    bind_data_kwargs,
    count_params,
    feature_shapes,
    get_model,
    init_params,
    model_names,
    register_model,
)

__all__ = [
    "TARGET_NAMES",
    "MODEL_FILE",
    "get_model",
    "register_model",
    "model_names",
    "bind_data_kwargs",
    "count_params",
    "feature_shapes",
    "check_images",
    "predict",
    "map_batches",
    "init_params",
    "Trained",
    "save_model",
    "load_trained",
]
