"""Nipype interfaces of daninet_pipeline.

* :mod:`.preprocessing`: one ``SimpleInterface`` per pre-processing step, each a thin
  wrapper over a plain function of :mod:`daninet_pipeline.preprocessing`.
* :mod:`.fsl`: glue for the FSL backend (FLIRT matrices to ITK transforms).
* :mod:`.reports`: the QC figure.
* :mod:`.bids`: :class:`DerivativesDataSink`, the one sink that writes every derivative.
"""
