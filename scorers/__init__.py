"""Layer 3: registered scorers and filters, resolved by name: ``nasplug.scorers.get("effective_depth")``.

Import as ``nasplug.scorers`` (this folder is installed as that subpackage). Protocols and batched
base classes are in :mod:`nasplug.scorers.base`, the entry-point registry in
:mod:`nasplug.scorers.registry`; ``available()`` lists every name. The scorers are thin classes
over :mod:`nasplug.graph` and :mod:`nasplug.theory`:

* :mod:`~nasplug.scorers.topology` — path statistics, ``live_param_cost``, [C22]'s box filters;
* :mod:`~nasplug.scorers.nngp` — λ_min and friends of the exact NNGP kernel [C22];
* :mod:`~nasplug.scorers.ntk` — λ_min, log det, effective rank, … of the NTK (plain and conv/pool-aware);
* :mod:`~nasplug.scorers.hparams` — the [C24] maximal-LR multiplier;
* :mod:`~nasplug.scorers.ensemble` — ranks, rank aggregation, ``rank_ensemble`` (fitted on a space);
* :mod:`~nasplug.scorers.quantile` — keep the best-scored fraction of a space (default: by ``rank_ensemble``);
* :mod:`~nasplug.scorers.baselines` — #params, FLOPs, NASWOT, synflow of the built network (torch).
"""

from nasplug.scorers.base import BatchFilter, BatchScorer, Filter, Scorer, map_batches, oriented
from nasplug.scorers.registry import Entry, available, entry, get, is_slow, names, register

__all__ = [
    "Scorer", "Filter", "BatchScorer", "BatchFilter", "Entry", "map_batches", "oriented",
    "available", "entry", "get", "is_slow", "names", "register",
]
