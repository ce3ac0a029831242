"""Layer 5: the Ray integration (``pip install 'nasplug[ray]'``); ``ray`` is imported only here.

* :mod:`nasplug.ray.train` — data-parallel (re)training jobs on Ray Train's ``TorchTrainer``.
"""
