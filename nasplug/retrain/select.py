"""Which architectures to retrain: the best K of a search's Optuna study, or a list given by hand.

A study written by either search backend works: cells are read from the ``nasplug:arch`` trial
attribute, or rebuilt from the trial's parameters in the study's space when a backend did not
record it. Distinct functions are kept once (same canonical key: the better trial).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import optuna
from optuna.trial import TrialState

from nasplug.errors import NasplugError
from nasplug.graph import ArchGraph
from nasplug.optuna.params import params_to_arch
from nasplug.optuna.runner import CONFIG_ATTR
from nasplug.optuna.storage import open_storage, storage_file
from nasplug.search.attrs import ATTR_ARCH, ATTR_PROXY


@dataclass(frozen=True)
class Candidate:
    """An architecture to retrain, with what the search knew about it (None when not searched)."""

    arch: str
    key: str
    trial: int | None = None
    value: float | None = None  # the search's objective value
    proxy: float | None = None  # the training-free score the search recorded

    @classmethod
    def of(cls, arch: ArchGraph | str, **known: Any) -> Candidate:
        graph = ArchGraph.parse(arch)
        return cls(str(graph), graph.canonical_key(), **known)


def from_archs(archs: Iterable[ArchGraph | str]) -> list[Candidate]:
    """Candidates from architecture strings (any encoding), duplicates of a function dropped."""
    out: dict[str, Candidate] = {}
    for arch in archs:
        cand = Candidate.of(arch)
        out.setdefault(cand.key, cand)
    return list(out.values())


def open_search(storage: str, study_name: str | None = None) -> optuna.Study:
    """Load a search's study; :class:`~nasplug.errors.NasplugError` if the storage or study is missing
    (a storage file that does not exist — a path, ``sqlite:///``, ``journal:`` — is never created)."""
    text = str(storage)
    path = storage_file(text)
    if path is not None and not path.is_file():
        raise NasplugError(f"{storage}: no such study storage")
    store = open_storage(text)
    names = optuna.get_all_study_names(store)
    if study_name is None:
        if len(names) != 1:
            raise NasplugError(f"{storage} holds {len(names)} studies ({', '.join(names) or 'none'}): "
                               "name one with --study-name")
        study_name = names[0]
    if study_name not in names:
        raise NasplugError(f"no study {study_name!r} in {storage} (it holds: {', '.join(names) or 'none'})")
    return optuna.load_study(study_name=study_name, storage=store)


def study_settings(study: optuna.Study) -> dict[str, Any]:
    """The search settings stored with the study (space, objective, dataset, model, ...), or {}."""
    return dict(study.user_attrs.get(CONFIG_ATTR) or {})


def best_of_study(study: optuna.Study, top: int) -> list[Candidate]:
    """The ``top`` best distinct cells of the study's completed trials, best first. Of a
    multi-objective study: the cells of its Pareto front (``study.best_trials``), best first by the
    first objective (accuracy in ``nasplug search --objectives``), which is their ``value``."""
    if top < 1:
        raise NasplugError(f"--top must be at least 1, got {top}")
    space = study_settings(study).get("space", "nb201")
    if len(study.directions) > 1:
        trials = list(study.best_trials)
        value = (lambda t: t.values[0])  # noqa: E731
    else:
        trials = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        value = (lambda t: t.value)  # noqa: E731
    trials = [t for t in trials if value(t) is not None and math.isfinite(value(t))]
    trials.sort(key=value, reverse=study.directions[0] == optuna.study.StudyDirection.MAXIMIZE)
    out: dict[str, Candidate] = {}
    for t in trials:
        arch = t.user_attrs.get(ATTR_ARCH) or params_to_arch(t.params, space)
        proxy = t.user_attrs.get(ATTR_PROXY)
        cand = Candidate.of(arch, trial=t.number, value=float(value(t)),
                            proxy=None if proxy is None else float(proxy))
        out.setdefault(cand.key, cand)
        if len(out) == top:
            break
    if not out:
        raise NasplugError(f"study {study.study_name!r} has no completed trial to retrain")
    return list(out.values())
