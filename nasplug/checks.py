"""Argument checks shared by the library and the CLI: one rule and one message per kind of bad input
(and :func:`format_count`, how messages write counts of any size).

Library functions call these on their arguments (``epochs``, ``width``, ...); the CLI uses the same
checks as ``argparse`` types (:func:`cli_type`), so ``nasplug train --epochs 0`` and
``train_arch(..., epochs=0)`` fail with the same sentence, naming the argument and the allowed
range, before any work. Output locations are checked the same way (:func:`writable_dir`,
:func:`writable_file`): a search or a ranking never runs to fail on its report.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from nasplug.errors import NasplugError

#: Device strings torch understands that nasplug supports: ``auto``, ``cpu``, ``cuda``, ``cuda:N``, ``mps``.
DEVICE_PATTERN = re.compile(r"auto|cpu|cuda(:\d+)?|mps")


#: The largest seed the command line takes (numpy's and most tools' 32-bit range); torch's
#: generators and the derived per-epoch seeds stay well inside 64 bits.
MAX_SEED = 2**32 - 1
#: The largest learning rate torch's float32 optimizers can hold (a larger one overflows).
MAX_LR = 3.4028234663852886e38


def format_count(n: int) -> str:
    """An exact count of any size for a message: ``59,049`` below 10^15, else ``1.23e+2361`` from
    its base-10 logarithm (never a float conversion, which overflows beyond ~1.8e308)."""
    n = int(n)
    if abs(n) < 10**15:
        return f"{n:,}"
    exponent = math.floor(math.log10(abs(n)))
    mantissa = 10 ** (math.log10(abs(n)) - exponent)
    if round(mantissa, 2) >= 10:
        mantissa, exponent = mantissa / 10, exponent + 1
    return f"{'-' if n < 0 else ''}{mantissa:.2f}e+{exponent}"


def integer(name: str, value: Any, low: int | None = None, high: int | None = None) -> int:
    """``value`` as an int in ``[low, high]`` (either bound may be ``None``), or a
    :class:`~nasplug.errors.NasplugError` naming ``name`` and the range."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != int(value):
        raise NasplugError(f"{name} must be an integer{_range(low, high)}, got {value!r}")
    value = int(value)
    if (low is not None and value < low) or (high is not None and value > high):
        raise NasplugError(f"{name} must be an integer{_range(low, high)}, got {value}")
    return value


def number(name: str, value: Any, low: float | None = None, high: float | None = None, *,
           low_open: bool = False, high_open: bool = False) -> float:
    """``value`` as a finite float in the range (``low_open``/``high_open`` exclude the bound)."""
    try:
        x = float(value)
    except (TypeError, ValueError):
        x = math.nan
    bad = isinstance(value, bool) or not math.isfinite(x)
    if low is not None:
        bad = bad or x < low or (low_open and x == low)
    if high is not None:
        bad = bad or x > high or (high_open and x == high)
    if bad:
        raise NasplugError(f"{name} must be a number{_range(low, high, low_open, high_open)}, got {value!r}")
    return x


def choice(name: str, value: Any, choices: Sequence[str]) -> str:
    """``value`` if it is one of ``choices``."""
    if value not in choices:
        raise NasplugError(f"{name} must be one of {', '.join(choices)}; got {value!r}")
    return value


def device(value: Any, name: str = "device") -> str:
    """A device string nasplug can use: ``auto``, ``cpu``, ``cuda``, ``cuda:N`` or ``mps``
    (whether it is available is checked when training starts)."""
    if not isinstance(value, str) or not DEVICE_PATTERN.fullmatch(value):
        raise NasplugError(f"{name} must be auto, cpu, cuda, cuda:N or mps; got {value!r}")
    return value


def _range(low, high, low_open: bool = False, high_open: bool = False) -> str:
    def show(bound) -> str:
        return str(bound) if isinstance(bound, int) else f"{bound:g}"

    if low is not None and high is not None:
        return f" in {'(' if low_open else '['}{show(low)}, {show(high)}{')' if high_open else ']'}"
    if low is not None:
        return f" {'>' if low_open else '>='} {show(low)}"
    if high is not None:
        return f" {'<' if high_open else '<='} {show(high)}"
    return ""


# ---------------------------------------------------------------------- output locations
def writable_dir(path: str | os.PathLike, name: str = "output folder") -> Path:
    """Check that ``path`` is, or can be created as, a folder this process may write into.

    Nothing is left behind: the nearest existing ancestor must be a folder where a file can really
    be created (a temporary file is created and removed: permission bits alone say yes to root,
    and on ``/proc``) and the existing part of ``path`` must not be a file. Raises a one-line
    :class:`~nasplug.errors.NasplugError` naming ``name``.
    """
    path = Path(path).expanduser()
    if str(path) == "":
        raise NasplugError(f"{name} is empty")
    if path.exists():
        if not path.is_dir():
            raise NasplugError(f"{name} {path} exists and is not a folder")
        _probe(path, f"{name} {path} is not writable")
        return path
    _creatable(path, name)
    return path


def writable_file(path: str | os.PathLike, name: str = "output file") -> Path:
    """Check that the file ``path`` can be written (created, or overwritten)."""
    path = Path(path).expanduser()
    if path.is_dir():
        raise NasplugError(f"{name} {path} is a folder, not a file")
    if path.exists():
        if not os.access(path, os.W_OK):
            raise NasplugError(f"{name} {path} is not writable")
        return path
    _creatable(path, name)
    return path


def _creatable(path: Path, name: str) -> None:
    parent = path.absolute().parent
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir():
        raise NasplugError(f"{name} {path} cannot be created: {parent} is a file, not a folder")
    _probe(parent, f"{name} {path} cannot be created: {parent} is not writable")


def _probe(folder: Path, message: str) -> None:
    """Create and remove a temporary file in ``folder``; ``message`` (+ the OS's reason) if that fails."""
    import tempfile

    try:
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as err:
        raise NasplugError(f"{message} ({err.strerror or err})") from None


# ---------------------------------------------------------------------- argparse types
def cli_type(parse: Callable[[str], Any], check: Callable[[Any], Any]) -> Callable[[str], Any]:
    """An ``argparse`` type: ``parse`` the text (``int``/``float``/``str``), then ``check`` it; a
    failure becomes argparse's one-line error for that option."""
    import argparse

    def convert(text: str) -> Any:
        try:
            value = parse(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {_kind(parse)}, got {text!r}") from None
        try:
            return check(value)
        except NasplugError as err:
            raise argparse.ArgumentTypeError(str(err)) from None

    convert.__name__ = getattr(parse, "__name__", "value")
    return convert


def _kind(parse: Callable) -> str:
    return {"int": "an integer", "float": "a number"}.get(getattr(parse, "__name__", ""), "a value")


def int_arg(low: int | None = None, high: int | None = None) -> Callable[[str], int]:
    """``argparse`` type of an integer option in ``[low, high]``."""
    return cli_type(int, lambda v: integer("value", v, low, high))


def float_arg(low: float | None = None, high: float | None = None, *, low_open: bool = False,
              high_open: bool = False) -> Callable[[str], float]:
    """``argparse`` type of a number option in the range."""
    return cli_type(float, lambda v: number("value", v, low, high, low_open=low_open, high_open=high_open))


def seed_arg() -> Callable[[str], int]:
    """``argparse`` type of a seed: an integer in ``[0, MAX_SEED]``."""
    return int_arg(0, MAX_SEED)


def lr_arg() -> Callable[[str], float]:
    """``argparse`` type of a learning rate: a number in ``(0, MAX_LR]``."""
    return float_arg(0.0, MAX_LR, low_open=True)


def device_arg() -> Callable[[str], str]:
    return cli_type(str, device)
