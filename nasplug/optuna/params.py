"""Define-by-run architecture parameters: one Optuna categorical per edge of a product space.

Every space in :mod:`nasplug.search_spaces` is a product space (each edge ``(s, t)`` independently takes one
op), so the natural Optuna encoding is one :class:`~optuna.distributions.CategoricalDistribution` per
edge, named ``edge_{s}_{t}`` (optionally behind a prefix when one trial suggests several cells), with
the op *names* as choices. Names and choices are stable, which is what lets Optuna's samplers share
history across trials, processes and resumed runs, and lets :class:`~nasplug.optuna.FilteredSampler`
recognise the architecture part of a trial.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from nasplug.errors import NasplugError
from nasplug.graph import ArchGraph
from nasplug.search.attrs import ATTR_ARCH, ATTR_KEY
from nasplug.search_spaces import ProductSpace, resolve_space

if TYPE_CHECKING:  # optuna is imported lazily so that `import nasplug.optuna.params` stays cheap
    import optuna


def param_name(source: int, target: int, prefix: str = "") -> str:
    """The Optuna parameter name of edge ``(source, target)``: ``f"{prefix}edge_{source}_{target}"``."""
    return f"{prefix}edge_{source}_{target}"


def arch_distributions(space: ProductSpace | str, prefix: str = "") -> dict[str, optuna.distributions.
                                                                         CategoricalDistribution]:
    """``{param name: CategoricalDistribution(op names)}`` for every edge, in the space's edge order."""
    from optuna.distributions import CategoricalDistribution

    space = resolve_space(space)
    choices = tuple(op.name for op in space.ops)
    return {param_name(s, t, prefix): CategoricalDistribution(choices) for s, t in space.pairs}


def suggest_architecture(trial: optuna.Trial, space: ProductSpace | str = "nb201",
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
    space = resolve_space(space)
    digits = []
    choices = tuple(op.name for op in space.ops)
    for s, t in space.pairs:
        name = trial.suggest_categorical(param_name(s, t, prefix), choices)
        digits.append(choices.index(name))
    arch = space.from_digits(digits)
    trial.set_user_attr(f"{prefix}{ATTR_ARCH}" if prefix else ATTR_ARCH, str(arch))
    trial.set_user_attr(f"{prefix}{ATTR_KEY}" if prefix else ATTR_KEY, arch.canonical_key())
    return arch


def arch_to_params(arch: ArchGraph | str, space: ProductSpace | str = "nb201",
                   prefix: str = "") -> dict[str, str]:
    """The parameter dict of a cell, e.g. for ``study.enqueue_trial`` (warm-starting a search)."""
    space = resolve_space(space)
    digits = space.digits(space.encode(arch))
    return {param_name(s, t, prefix): space.ops[d].name for (s, t), d in zip(space.pairs, digits)}


def params_to_arch(params: Mapping[str, Any], space: ProductSpace | str = "nb201",
                   prefix: str = "") -> ArchGraph:
    """The cell encoded by a trial's parameters (the inverse of :func:`arch_to_params`)."""
    space = resolve_space(space)
    names = [op.name for op in space.ops]
    digits = []
    for s, t in space.pairs:
        key = param_name(s, t, prefix)
        if key not in params:
            raise NasplugError(f"parameter {key!r} is missing: not a trial of {space!r}")
        digits.append(names.index(params[key]))
    return space.from_digits(digits)
