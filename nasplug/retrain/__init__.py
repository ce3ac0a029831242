"""Layer 5: retraining the winners of a search, and re-ranking NAS-Bench-201 by training.

* :mod:`~nasplug.retrain.select` — the best K cells of a study (either backend), or given ones;
* :mod:`~nasplug.retrain.runner` — launchers (local / Ray Train), :func:`retrain`, the results table
  and the study's ``nasplug:retrained:*`` attributes.
"""
