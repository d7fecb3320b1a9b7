"""Where does a CNN lose shear information? Pure computations on arrays and models (no files).

* :mod:`~shearbridge.diagnosis.fisher`: Fisher information retained by each layer of a
  linearised network, and its per-shear-component summaries.
* :mod:`~shearbridge.diagnosis.features`: the analysed layers of EnhancedGalaxyNN and
  ShapeNet (:mod:`~shearbridge.diagnosis.shapenet_features`) as feature functions.
* :mod:`~shearbridge.diagnosis.information`: per-layer information of trained networks on
  dataset galaxies, and its summaries.
* :mod:`~shearbridge.diagnosis.probes`, :mod:`~shearbridge.diagnosis.subpixel`,
  :mod:`~shearbridge.diagnosis.vision`: empirical counterparts (linear/MLP probes,
  sub-pixel sensitivity of the pooling, saliency maps).

The pipeline step :mod:`shearbridge.steps.diagnose` reads the data and trained networks,
runs them and writes ``diagnosis.json`` / ``diagnosis.npz``.
"""
