"""Multi-objective searches: accuracy against the cost of the network (parameters, FLOPs, latency).

``--objectives accuracy,params`` (directions optional: ``accuracy:max,params:min``) makes a search
record, per cell, the value its evaluator returns — the accuracy, maximized — and one or more costs
of the network that would be trained, minimized (hardware-aware NAS):

========  ==========================================================  =========
name      value                                                       direction
========  ==========================================================  =========
accuracy  the evaluator's value (validation or table accuracy, %)     maximize
params    parameters on input→output paths (:mod:`~.costs`)           minimize
flops     multiply-accumulates of one input sample (:mod:`~.costs`)   minimize
latency   median ms of a forward pass on the search's device          minimize
========  ==========================================================  =========

:func:`parse_objectives` validates a specification (every mistake is one line naming it);
:class:`ObjectiveSet` computes a cell's vector. A search backend evaluates (or reuses, by canonical
key) the accuracy only: the costs are computed for each cell itself, because cells with one
canonical key can build networks of different sizes (:class:`~.costs.LatencyMeter`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from nasplug.errors import NasplugError
from nasplug.graph import ArchGraph
from nasplug.search.costs import LatencyMeter, Network
from nasplug.search.pareto import Bounds
from nasplug.search_spaces import ProductSpace

#: The objectives a search can record, with their fixed direction and unit.
OBJECTIVES: dict[str, tuple[str, str]] = {
    "accuracy": ("maximize", "%"),
    "params": ("minimize", "parameters"),
    "flops": ("minimize", "FLOPs"),
    "latency": ("minimize", "ms"),
}
_DIRECTION_NAMES = {"max": "maximize", "maximize": "maximize", "min": "minimize", "minimize": "minimize"}


@dataclass(frozen=True)
class Objective:
    """One objective: its name (a key of :data:`OBJECTIVES`) and direction."""

    name: str
    direction: str

    @property
    def unit(self) -> str:
        return OBJECTIVES[self.name][1]

    def __str__(self) -> str:
        return f"{self.name}:{self.direction}"


def parse_objectives(spec: str | Sequence[str]) -> tuple[Objective, ...]:
    """Objectives from ``"accuracy,params"`` / ``"accuracy:max,latency:min"`` (or a list of items).

    Needs ``accuracy`` and at least one cost, each once; a direction, when given (``max``/``min`` or
    ``maximize``/``minimize``), must be the objective's own. Raises
    :class:`~nasplug.errors.NasplugError` with one line naming the first mistake.
    """
    items = spec.split(",") if isinstance(spec, str) else list(spec)
    names = ", ".join(OBJECTIVES)
    out: list[Objective] = []
    for raw in items:
        name, sep, direction = str(raw).strip().partition(":")
        name, direction = name.strip().lower(), direction.strip().lower()
        if not name:
            raise NasplugError(f"--objectives: empty objective in {spec!r}; e.g. accuracy,params")
        if name not in OBJECTIVES:
            raise NasplugError(f"--objectives: unknown objective {name!r}; choose from {names}")
        own = OBJECTIVES[name][0]
        if sep:
            if direction not in _DIRECTION_NAMES:
                raise NasplugError(f"--objectives: direction of {name!r} must be max or min, "
                                   f"got {direction!r}")
            if _DIRECTION_NAMES[direction] != own:
                raise NasplugError(f"--objectives: {name} is always {own}d, got {name}:{direction}")
        if any(o.name == name for o in out):
            raise NasplugError(f"--objectives: {name!r} is given twice")
        out.append(Objective(name, own))
    if not any(o.name == "accuracy" for o in out):
        raise NasplugError("--objectives must include accuracy (the evaluated value), e.g. accuracy,params")
    if len(out) < 2:
        raise NasplugError("--objectives needs a cost next to accuracy (params, flops or latency), "
                           "e.g. accuracy,params")
    return tuple(out)


def format_objectives(objectives: Sequence[Objective]) -> str:
    """The normalized specification, e.g. ``"accuracy:maximize,params:minimize"``."""
    return ",".join(str(o) for o in objectives)


class ObjectiveSet:
    """The objective vector of a cell: the evaluated accuracy and the costs of its network.

    Parameters
    ----------
    objectives
        Parsed objectives, or a specification for :func:`parse_objectives`.
    network
        The network whose costs are charged (:class:`~nasplug.search.costs.Network`).
    device, latency
        Where latency is measured (``"auto"``, ``"cpu"``, ``"cuda"``), or a ready
        :class:`~nasplug.search.costs.LatencyMeter` (its network and device are then used).
    """

    def __init__(self, objectives: Sequence[Objective] | str, network: Network, *, device: str = "auto",
                 latency: LatencyMeter | None = None):
        self.objectives = parse_objectives(objectives) if isinstance(objectives, str) else tuple(objectives)
        self.network = network
        self.latency = latency
        if self.latency is None and "latency" in self.names:
            self.latency = LatencyMeter(network, device)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(o.name for o in self.objectives)

    @property
    def directions(self) -> tuple[str, ...]:
        return tuple(o.direction for o in self.objectives)

    @property
    def accuracy_index(self) -> int:
        """Position of the evaluated value in the vector."""
        return self.names.index("accuracy")

    def __repr__(self) -> str:
        return f"ObjectiveSet({format_objectives(self.objectives)!r}, {self.network})"

    def costs(self, arch: ArchGraph | str) -> dict[str, float]:
        """The costs among the objectives, by name (latency is measured, or read from its cache)."""
        arch = ArchGraph.parse(arch)
        out: dict[str, float] = {}
        if "params" in self.names or "flops" in self.names:
            out["params"], out["flops"] = (float(v) for v in self.network.costs(arch))
        if "latency" in self.names:
            out["latency"] = float(self.latency(arch))
        return {name: out[name] for name in self.names if name in out}

    def vector(self, arch: ArchGraph | str, accuracy: float) -> tuple[float, ...]:
        """The cell's values in objective order, ``accuracy`` at :attr:`accuracy_index`."""
        costs = self.costs(arch)
        return tuple(float(accuracy) if name == "accuracy" else costs[name] for name in self.names)

    def space_vectors(self, space: ProductSpace, accuracy: np.ndarray) -> np.ndarray:
        """``(size, M)`` vectors of every cell of an enumerable ``space`` (index order) from its
        ``(size,)`` accuracies (e.g. a benchmark table; NaN where unknown) — costs vectorized.
        Latency would need every network built and timed, so it is refused."""
        if "latency" in self.names:
            raise NasplugError("latency is measured per network: a whole space's front needs params or flops")
        accuracy = np.asarray(accuracy, dtype=np.float64)
        if accuracy.shape != (space.size,):
            raise NasplugError(f"expected ({space.size},) accuracies, got {accuracy.shape}")
        costs = self.network.space_costs(space).astype(np.float64)
        columns = {"accuracy": accuracy, "params": costs[:, 0], "flops": costs[:, 1]}
        return np.stack([columns[name] for name in self.names], axis=1)

    def bounds(self, space: ProductSpace, observed: np.ndarray,
               true_front: np.ndarray | None = None) -> Bounds:
        """Ideal and nadir that normalize this search's hypervolumes (:mod:`~nasplug.search.pareto`).

        With the space's ``(F, M)`` true Pareto front (e.g. from a benchmark table) the textbook
        points: ideal and nadir are the best and worst value of each objective over the front, so a
        hypervolume measures the region where the front lies. Otherwise a fixed box that does not
        depend on the search's results: accuracy from 100 % (ideal) to 0 %, parameters and FLOPs
        from the space's cheapest to its costliest cell (enumerable spaces), and latency — or the
        costs in a space too large to enumerate — over the ``(N, M)`` ``observed`` vectors.
        """
        if true_front is not None:
            return Bounds.of(true_front, self.directions)
        seen = Bounds.of(observed, self.directions)
        ideal, nadir = list(seen.ideal), list(seen.nadir)
        space_costs = self.network.space_costs(space) if space.enumerable else None
        for i, name in enumerate(self.names):
            if name == "accuracy":
                ideal[i], nadir[i] = 100.0, 0.0
            elif name in ("params", "flops") and space_costs is not None:
                column = space_costs[:, 0 if name == "params" else 1]
                ideal[i], nadir[i] = float(column.min()), float(column.max())
        return Bounds(tuple(ideal), tuple(nadir), self.directions)
