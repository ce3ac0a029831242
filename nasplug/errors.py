"""Exceptions users can catch; the CLI turns them into one line on stderr and exit status 2."""

from __future__ import annotations

import importlib
from types import ModuleType


class NasplugError(Exception):
    """Base class of every error caused by user input (bad architecture, missing file, ...)."""


class ArchError(NasplugError, ValueError):
    """A malformed, cyclic or otherwise invalid architecture, or an unknown op."""


class DataError(NasplugError, OSError):
    """A missing, truncated or mismatched data or benchmark file."""


class MissingDependency(NasplugError, ImportError):
    """An optional dependency that the chosen option needs is not installed."""


def require(module: str, extra: str, purpose: str) -> ModuleType:
    """Import an optional dependency, or raise :class:`MissingDependency` naming the extra that
    installs it (``pip install 'nasplug[EXTRA]'``)."""
    try:
        return importlib.import_module(module)
    except ImportError:
        raise MissingDependency(
            f"{purpose} needs the optional package {module.split('.')[0]!r}: "
            f"pip install 'nasplug[{extra}]'"
        ) from None
