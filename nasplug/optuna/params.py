"""Define-by-run architecture parameters: one Optuna categorical per digit of a search space.

Every space in :mod:`nasplug.search_spaces` is a digit space: a product space has one digit per edge
``(s, t)`` (its op), named ``edge_{s}_{t}`` with the op *names* as choices; NB101 has edge bits and
vertex ops, DARTS the input pairs and ops of each node (``space.params``). Each becomes one
:class:`~optuna.distributions.CategoricalDistribution` (optionally behind a prefix when one trial
suggests several cells). Names and choices are stable, which is what lets Optuna's samplers share
history across trials, processes and resumed runs, and lets :class:`~nasplug.optuna.FilteredSampler`
recognise the architecture part of a trial.

Some digit vectors are not cells (an NB101 matrix without an input→output path, or with more than 9
edges after pruning). :class:`~nasplug.optuna.FilteredSampler` — what ``nasplug search`` uses —
draws the digits jointly and never proposes one; with another sampler,
:func:`suggest_architecture` prunes such a trial before anything is trained.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from nasplug.errors import NasplugError
from nasplug.graph import ArchGraph
from nasplug.search.attrs import ATTR_ARCH, ATTR_KEY
from nasplug.search_spaces import DigitSpace, resolve_space
from nasplug.search_spaces.base import edge_param

if TYPE_CHECKING:  # optuna is imported lazily so that `import nasplug.optuna.params` stays cheap
    import optuna


def param_name(source: int, target: int, prefix: str = "") -> str:
    """The Optuna parameter name of edge ``(source, target)``: ``f"{prefix}edge_{source}_{target}"``."""
    return f"{prefix}{edge_param(source, target)}"


def arch_distributions(space: DigitSpace | str, prefix: str = "") -> dict[str, optuna.distributions.
                                                                       CategoricalDistribution]:
    """``{param name: CategoricalDistribution(choices)}`` for every digit, in the space's order
    (for a product space: ``edge_{s}_{t}`` with the op names)."""
    from optuna.distributions import CategoricalDistribution

    space = resolve_space(space)
    return {f"{prefix}{name}": CategoricalDistribution(choices) for name, choices in space.params}


def suggest_architecture(trial: optuna.Trial, space: DigitSpace | str = "nb201",
                         prefix: str = "") -> ArchGraph:
    """Suggest one architecture of ``space`` in a define-by-run objective.

    One ``suggest_categorical`` per edge (names ``edge_{s}_{t}``, op names as choices), so any
    Optuna sampler can search the space, and :class:`~nasplug.optuna.FilteredSampler` can sample the
    edges *jointly* and reject cells that fail a topology filter before they reach the objective.

    The chosen cell is also written to the trial's user attributes (``nasplug:arch``, its NB201 or DAG
    code, and ``nasplug:key``, its :meth:`~nasplug.ArchGraph.canonical_key`), which is what the
    duplicate cache and the reports read back from the storage.

    Examples
    --------
    >>> import optuna
    >>> study = optuna.create_study(direction="maximize")
    >>> def objective(trial):
    ...     arch = suggest_architecture(trial, "nb201")
    ...     return arch.path_stats().effective_width
    >>> study.optimize(objective, n_trials=3)
    """
    import numpy as np
    import optuna

    space = resolve_space(space)
    digits = []
    for name, choices in space.params:
        digits.append(choices.index(trial.suggest_categorical(f"{prefix}{name}", choices)))
    if not space.valid_digits(np.asarray([digits]))[0]:
        raise optuna.TrialPruned(f"not a cell of {space.name} (e.g. no input→output path); nothing trained")
    arch = space.from_digits(digits)
    trial.set_user_attr(f"{prefix}{ATTR_ARCH}" if prefix else ATTR_ARCH, str(arch))
    trial.set_user_attr(f"{prefix}{ATTR_KEY}" if prefix else ATTR_KEY, arch.canonical_key())
    return arch


def arch_to_params(arch: ArchGraph | str, space: DigitSpace | str = "nb201",
                   prefix: str = "") -> dict[str, str]:
    """The parameter dict of a cell, e.g. for ``study.enqueue_trial`` (warm-starting a search)."""
    space = resolve_space(space)
    digits = space.encode_digits(arch)
    return {f"{prefix}{name}": choices[d] for (name, choices), d in zip(space.params, digits)}


def params_to_arch(params: Mapping[str, Any], space: DigitSpace | str = "nb201",
                   prefix: str = "") -> ArchGraph:
    """The cell encoded by a trial's parameters (the inverse of :func:`arch_to_params`)."""
    space = resolve_space(space)
    digits = []
    for name, choices in space.params:
        key = f"{prefix}{name}"
        if key not in params:
            raise NasplugError(f"parameter {key!r} is missing: not a trial of {space!r}")
        digits.append(choices.index(params[key]))
    return space.from_digits(digits)
