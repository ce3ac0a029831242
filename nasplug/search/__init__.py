"""Layer 4: the framework-neutral search core that the Optuna and Ray integrations adapt.

* :mod:`~nasplug.search.evaluation` — evaluate one architecture (train / table lookup / user
  function) with a ``report(step, value)`` callback; :class:`EvaluationFailed` with a reason;
* :mod:`~nasplug.search.filtering` — filter and scorer resolution; :class:`KeepMask`, the space's
  keep-mask with its ``nearest``/``uniform`` fallbacks;
* :mod:`~nasplug.search.dedupe` — which cells share one evaluation (``key_rule``,
  ``evaluation_key``: function, MLP function or cell) and :class:`ResultCache`, results by that key;
* :mod:`~nasplug.search.config` — :class:`SearchConfig`, the typed settings, a study's identity
  and its check;
* :mod:`~nasplug.search.final` — the best cells retrained with several seeds and tested once, and
  their seed noise next to the spread between cells;
* :mod:`~nasplug.search.progress` — the one-line summary of a finished trial;
* :mod:`~nasplug.search.attrs` — the keys recorded per trial;
* :mod:`~nasplug.search.objectives` — multi-objective searches: ``--objectives`` and
  :class:`ObjectiveSet`, a cell's accuracy and costs; :mod:`~nasplug.search.costs` — parameters and
  FLOPs of a :class:`Network` in closed form, :class:`LatencyMeter`; :mod:`~nasplug.search.pareto` —
  Pareto fronts and normalized hypervolume.
"""

from nasplug.search import attrs
from nasplug.search.config import SearchConfig
from nasplug.search.costs import LatencyMeter, Network
from nasplug.search.dedupe import CachedResult, ResultCache
from nasplug.search.evaluation import (
    Evaluation,
    EvaluationFailed,
    Evaluator,
    StateStore,
    as_evaluator,
    check_value,
    load_callable,
    table_evaluator,
    train_evaluator,
)
from nasplug.search.filtering import KeepMask, keep_mask, resolve_filter, resolve_scorer
from nasplug.search.objectives import ObjectiveSet, parse_objectives
from nasplug.search.pareto import Bounds, hypervolume, hypervolume_history, pareto_mask

__all__ = [
    "attrs", "SearchConfig", "CachedResult", "ResultCache", "Evaluation", "EvaluationFailed",
    "Evaluator", "StateStore", "as_evaluator", "check_value", "load_callable", "table_evaluator",
    "train_evaluator", "KeepMask", "keep_mask", "resolve_filter", "resolve_scorer", "LatencyMeter", "Network",
    "ObjectiveSet", "parse_objectives", "Bounds", "hypervolume", "hypervolume_history", "pareto_mask",
]
