"""The process table from /proc, for tests that kill workers or look for orphans (Linux only)."""

from __future__ import annotations

from pathlib import Path


def processes() -> dict[int, tuple[int, str]]:
    """Live processes: pid -> (parent pid, start time in clock ticks), zombies excluded."""
    out = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if fields[0] != "Z":
            out[int(stat.parent.name)] = (int(fields[1]), fields[19])
    return out


def descendants(pid: int) -> dict[int, str]:
    """Every live descendant of ``pid``: pid -> start time (with the pid, it names one process).
    torchrun and Ray put workers in sessions of their own, so the tree is what finds them."""
    procs, found, todo = processes(), {}, [pid]
    while todo:
        parent = todo.pop()
        for child, (ppid, start) in procs.items():
            if ppid == parent and child not in found:
                found[child] = start
                todo.append(child)
    return found


def alive(tree: dict[int, str]) -> list[int]:
    """The processes of ``tree`` (pid -> start time) still running."""
    procs = processes()
    return [pid for pid, start in tree.items() if pid in procs and procs[pid][1] == start]


def command_line(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""
