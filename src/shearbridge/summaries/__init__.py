"""Small per-figure summaries of the active profile's results (compute -> cache -> plot).

:mod:`.store` says where they live and reads them (the figure scripts' only input);
:mod:`.collect` writes them (``python -m shearbridge summarize WHAT``);
:mod:`.compare` and :mod:`.ablation` build the larger ones.
"""

from shearbridge.summaries.store import load_summary_json, load_summary_npz, summary_dir

__all__ = ["load_summary_json", "load_summary_npz", "summary_dir"]
