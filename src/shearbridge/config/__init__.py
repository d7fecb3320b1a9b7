"""Configuration as code: profiles, simulation and training settings (:mod:`.settings`) and
named experiments (:mod:`.experiments`, imported on its own).

The names of :mod:`.settings` are re-exported here, so ``from shearbridge.config import
SimConfig, active_profile`` is the usual import.
"""

from shearbridge.config.settings import *  # noqa: F401,F403
from shearbridge.config.settings import __all__  # noqa: F401
