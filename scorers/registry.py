"""The one registry of scorers and filters, shared by the CLI, Optuna, Ray workers and user code.

Scorers and filters are declared as **entry points** of the group ``nasplug.scorers`` (name = the
registered name, value = ``module:factory``). nasplug declares its built-in ones there too, so a
fresh process — a Ray worker, a spawned multiprocessing worker, the CLI — resolves exactly the same
names without importing anything first, and a name loads only its own module (``nasplug.scorers``
never imports torch; ``get("naswot")`` does).

A factory is marked with :func:`register`, which records its kind, description and cost on it.
Third-party packages add scorers the same way::

    # mypkg/proxies.py
    from nasplug.scorers import BatchScorer, register

    @register("my_proxy", "scorer", "what it measures")
    def my_proxy(**params):
        return MyProxy(**params)

    # pyproject.toml of mypkg
    [project.entry-points."nasplug.scorers"]
    my_proxy = "mypkg.proxies:my_proxy"

Calling :func:`register` in a running process also makes the name resolvable in *that* process
(useful in a notebook); other processes need the entry point.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from importlib import metadata
from typing import Any

from nasplug.errors import NasplugError

#: Entry-point group of scorers and filters.
GROUP = "nasplug.scorers"
KINDS = ("scorer", "filter")


@dataclass(frozen=True)
class Entry:
    """A registered factory: ``kind`` is ``"scorer"`` or ``"filter"``; ``slow`` marks per-cell
    scorers that build a torch network for every cell (too slow for whole spaces on a CPU)."""

    name: str
    kind: str
    factory: Callable[..., Any]
    description: str
    slow: bool = False

    @property
    def takes_space(self) -> bool:
        """Whether the factory is fitted on a search space (it has a ``space`` parameter)."""
        return "space" in inspect.signature(self.factory).parameters


_REGISTRY: dict[str, Entry] = {}


def register(name: str, kind: str, description: str, *, slow: bool = False) -> Callable:
    """Decorator marking a factory as the scorer or filter ``name`` (see the module docstring)."""
    if kind not in KINDS:
        raise ValueError(f"kind must be 'scorer' or 'filter', got {kind!r}")

    def decorate(factory):
        entry = Entry(name, kind, factory, description, slow)
        factory.nasplug_entry = entry
        _REGISTRY[name] = entry
        return factory

    return decorate


@lru_cache(maxsize=1)
def _entry_points() -> dict[str, metadata.EntryPoint]:
    return {ep.name: ep for ep in metadata.entry_points(group=GROUP)}


def names() -> list[str]:
    """Every resolvable name, without importing any scorer module."""
    return sorted(set(_entry_points()) | set(_REGISTRY))


def entry(name: str) -> Entry:
    """The :class:`Entry` of ``name``, importing only the module that defines it."""
    if name in _REGISTRY:
        return _REGISTRY[name]
    point = _entry_points().get(name)
    if point is None:
        raise NasplugError(f"unknown scorer or filter {name!r}; available: {', '.join(names())}")
    found = getattr(point.load(), "nasplug_entry", None)
    if found is None or found.name != name:
        raise NasplugError(f"entry point {name!r} ({point.value}) is not a factory marked with "
                           f"nasplug.scorers.register({name!r}, ...)")
    _REGISTRY[name] = found
    return found


def get(name: str, **params: Any) -> Any:
    """Build the scorer or filter ``name`` with keyword parameters.

    Parameters the factory does not take are a :class:`~nasplug.errors.NasplugError`; anything
    the factory itself raises propagates unchanged (its bugs are not disguised as user errors).
    """
    found = entry(name)
    try:
        inspect.signature(found.factory).bind(**params)
    except TypeError as err:
        raise NasplugError(f"bad parameters for {name!r}: {err}") from None
    return found.factory(**params)


def available(kind: str | None = None, *, include_slow: bool = True) -> dict[str, str]:
    """Names (optionally only ``"scorer"`` or ``"filter"``, optionally without the slow per-cell
    ones) with descriptions. Imports every scorer module (torch included)."""
    out = {}
    for name in names():
        e = entry(name)
        if kind in (None, e.kind) and (include_slow or not e.slow):
            out[name] = e.description
    return out


def is_slow(name: str) -> bool:
    """Whether the scorer ``name`` builds a network per cell (see :func:`register`)."""
    return entry(name).slow
