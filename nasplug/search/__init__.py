"""Layer 4: the framework-neutral search core that the Optuna and Ray integrations adapt.

* :mod:`~nasplug.search.evaluation` — evaluate one architecture (train / table lookup / user
  function) with a ``report(step, value)`` callback; :class:`EvaluationFailed` with a reason;
* :mod:`~nasplug.search.filtering` — filter and scorer resolution; :class:`KeepMask`, the space's
  keep-mask with its ``nearest``/``uniform`` fallbacks;
* :mod:`~nasplug.search.dedupe` — :class:`ResultCache`, results by canonical key (finished and running);
* :mod:`~nasplug.search.config` — :class:`SearchConfig`, the typed settings and evaluation identity;
* :mod:`~nasplug.search.attrs` — the keys recorded per trial.
"""

from nasplug.search import attrs
from nasplug.search.config import SearchConfig
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
from nasplug.search.filtering import KeepMask, resolve_filter, resolve_scorer

__all__ = [
    "attrs", "SearchConfig", "CachedResult", "ResultCache", "Evaluation", "EvaluationFailed",
    "Evaluator", "StateStore", "as_evaluator", "check_value", "load_callable", "table_evaluator",
    "train_evaluator",
    "KeepMask", "resolve_filter", "resolve_scorer",
]
