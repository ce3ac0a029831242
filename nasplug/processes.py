"""Process lifetime, shared by every command that starts processes: how many cores this process
may use, SIGTERM handled like Ctrl-C, and children that never outlive their parent.

* :func:`stop_on_sigterm` — within the block SIGTERM (what ``kill``, ``timeout``, Slurm and
  ``docker stop`` send) raises :class:`KeyboardInterrupt`, so the clean-up written for Ctrl-C
  (mark and re-enqueue the running trials, stop worker processes, torchrun agents) runs for both.
  ``nasplug``'s entry point wraps every command in it.
* :func:`die_with_parent` — called first thing in a child process: Linux sends it SIGTERM when its
  parent exits, even when the parent is killed outright (``SIGKILL``), so no worker is orphaned.
* :func:`available_cores` — the CPUs this process may run on (its affinity mask, not the machine's);
  :data:`MAX_PROCESSES_PER_CORE` bounds the worker processes a command starts on them.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
from collections.abc import Iterator

#: Worker processes per CPU core a command may start on one machine: more only slow each other down.
MAX_PROCESSES_PER_CORE = 4


def available_cores() -> int:
    """CPUs this process may run on (``sched_getaffinity``; ``os.cpu_count()`` elsewhere), ≥ 1."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


@contextlib.contextmanager
def stop_on_sigterm() -> Iterator[None]:
    """Within the block, SIGTERM does what Ctrl-C does: it calls the SIGINT handler installed at
    that moment (Python's raises :class:`KeyboardInterrupt`; Ray Tune's stops the experiment
    gracefully). The previous handler is restored afterwards. Only the main thread can install
    signal handlers: elsewhere the block changes nothing. Enter it again after a library that
    installs its own SIGTERM handler (``ray.init``) to take SIGTERM back."""

    def interrupt(signum, frame):
        handler = signal.getsignal(signal.SIGINT)
        if handler is signal.SIG_IGN:
            return
        if callable(handler):
            handler(signal.SIGINT, frame)
            return
        raise KeyboardInterrupt

    try:
        previous = signal.signal(signal.SIGTERM, interrupt)
    except ValueError:  # not the main thread (e.g. called from a library user's worker thread)
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def die_with_parent() -> None:
    """Have Linux send this process SIGTERM when its parent exits (``prctl(PR_SET_PDEATHSIG)``);
    exit at once if the parent is already gone. A no-op on other systems."""
    if not sys.platform.startswith("linux"):
        return
    import ctypes

    parent = os.getppid()
    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # 1 = PR_SET_PDEATHSIG
    if os.getppid() != parent or parent == 1:
        os.kill(os.getpid(), signal.SIGTERM)
