"""A search's settings as one typed, validated, picklable object shared by every backend.

:class:`SearchConfig` is what ``nasplug search`` builds from its options and what the Optuna runner
(and the Ray backend) consume; worker processes receive it as it is. The **evaluation identity**
(:meth:`SearchConfig.identity`) is the part that determines what a trial's value means — space,
objective, data, model, training settings, direction, filter — and is stored with the study.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

from nasplug.errors import NasplugError
from nasplug.search.costs import Network
from nasplug.search.evaluation import Evaluator, load_callable, table_evaluator, train_evaluator
from nasplug.search.objectives import ObjectiveSet, format_objectives, parse_objectives
from nasplug.search_spaces import get as get_space

OBJECTIVES = ("train", "table", "custom")
DIRECTIONS = ("maximize", "minimize")
SAMPLERS = ("tpe", "random", "cmaes", "gp", "nsga2")
PRUNERS = ("none", "median")
#: Fields that make up the evaluation identity (what a stored value means).
IDENTITY_FIELDS = ("space", "objective", "benchmark", "callable", "dataset", "model", "epochs",
                   "base_lr", "direction", "filter", "dedupe", "objectives")


@dataclass
class SearchConfig:
    """Everything a search needs, as plain data.

    ``objective`` is ``"train"`` (train each cell, ``dataset``/``model``/``epochs``/``base_lr``),
    ``"table"`` (look values up in the NAS-Bench-201 file ``benchmark``, ``dataset`` = its dataset)
    or ``"custom"`` (the user's ``callable`` = ``"module:function"``). ``storage`` is a SQLite file,
    an SQLAlchemy URL or ``journal:PATH``; ``study_name`` defaults to one derived from the settings.
    ``objectives`` (e.g. ``"accuracy,params"``) makes the search multi-objective: the accuracy against
    costs of the network (:mod:`nasplug.search.objectives`); it is kept in normalized form.
    """

    space: str = "nb201"
    objective: str = "train"
    benchmark: str | None = None
    callable: str | None = None
    direction: str = "maximize"
    dataset: str | None = None
    data_root: str | None = None
    model: str | None = None
    epochs: int = 3
    base_lr: float | None = None
    device: str = "auto"
    filter: str = "dag_box"
    scorer: str | None = None
    sampler: str = "tpe"
    pruner: str = "none"
    n_trials: int = 30
    timeout: float | None = None
    seed: int = 0
    max_tries: int = 20
    dedupe: bool = True
    storage: str = "results/search/study.db"
    study_name: str | None = None
    heartbeat: int | None = None
    jobs: int = 1
    quiet: bool = False
    objectives: str | None = None

    def __post_init__(self) -> None:
        self.filter = (self.filter or "none").strip()
        if self.objective not in OBJECTIVES:
            raise NasplugError(f"objective must be one of {', '.join(OBJECTIVES)}, got {self.objective!r}")
        if self.objective == "table" and not self.benchmark:
            raise NasplugError("a table objective needs a benchmark file (--benchmark FILE)")
        if self.objective == "custom" and not self.callable:
            raise NasplugError("a custom objective needs --objective MODULE:FUNCTION")
        if self.direction not in DIRECTIONS:
            raise NasplugError(f"direction must be maximize or minimize, got {self.direction!r}")
        if self.sampler not in SAMPLERS:
            raise NasplugError(f"sampler must be one of {', '.join(SAMPLERS)}, got {self.sampler!r}")
        if self.pruner not in PRUNERS:
            raise NasplugError(f"pruner must be one of {', '.join(PRUNERS)}, got {self.pruner!r}")
        for name in ("n_trials", "jobs", "max_tries", "epochs"):
            if int(getattr(self, name)) < 1:
                raise NasplugError(f"{name.replace('_', '-')} must be at least 1, got {getattr(self, name)}")
        if self.objective != "train":
            self.model = None
        if self.objective == "table":
            self.dataset = self.dataset or "cifar10"
        elif self.objective == "train":
            self.dataset = self.dataset or "digits"
            self.model = self.model or ("mlp" if self.dataset == "digits" else "nb201")
        else:
            self.dataset = None
        if self.objective != "custom" and self.direction != "maximize":
            raise NasplugError("accuracies are maximized: --direction is for --objective only")
        if self.objectives is not None:
            self._check_objectives()
        get_space(self.space)  # an unknown space is a one-line error before any work
        if self.study_name is None:
            self.study_name = self.default_study_name()

    def _check_objectives(self) -> None:
        self.objectives = format_objectives(parse_objectives(self.objectives))
        if self.pruner != "none":
            raise NasplugError("--pruner stops trials on one intermediate value: not with --objectives")
        if self.sampler == "cmaes":
            raise NasplugError("--sampler cmaes is single-objective: with --objectives use nsga2, tpe, gp "
                               "or random")
        self.network()  # no network (a custom objective), or one that cannot take the data: one line now

    # ------------------------------------------------------------------ derived
    @property
    def directions(self) -> tuple[str, ...]:
        """The study's directions: one per objective."""
        if self.objectives is None:
            return (self.direction,)
        return tuple(o.direction for o in parse_objectives(self.objectives))

    def network(self) -> Network:
        """The network a cell's costs describe: the trained model, or NB201's for a table lookup."""
        if self.objective == "custom":
            raise NasplugError("--objectives charges the costs of the network nasplug trains or looks up; "
                               "a custom --objective has none")
        if self.objective == "train":
            return Network.for_dataset(self.model, self.dataset)
        return Network.for_dataset("nb201", self.dataset)

    def objective_set(self) -> ObjectiveSet | None:
        """The objective vector of a multi-objective search (``None`` for a single objective)."""
        if self.objectives is None:
            return None
        return ObjectiveSet(self.objectives, self.network(), device=self.device)

    def default_study_name(self) -> str:
        if self.objective == "table":
            label = f"table-{self.dataset}"
        elif self.objective == "custom":
            label = "custom-" + str(self.callable).replace(":", ".")
        else:
            label = f"train-{self.dataset}-{self.epochs}ep"
        if self.objectives:  # a multi-objective study never shares a name with a single-objective one
            label += "-" + "-".join(o.name for o in parse_objectives(self.objectives))
        return f"nasplug-{self.space}-{label}-{self.sampler}-{self.filter}-seed{self.seed}"

    def identity(self) -> dict[str, Any]:
        """The evaluation identity: the settings that decide what a trial's value means."""
        return {name: getattr(self, name) for name in IDENTITY_FIELDS}

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SearchConfig:
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})

    def evaluator(self) -> Evaluator:
        """The evaluator of this search's objective (loads the table / data / user function)."""
        if self.objective == "table":
            if not Path(self.benchmark).is_file():
                raise NasplugError(f"{self.benchmark}: no such file")
            return table_evaluator(self.benchmark, self.dataset, self.space)
        if self.objective == "custom":
            return load_callable(self.callable)
        return train_evaluator(self.dataset, data_root=self.data_root, model=self.model,
                               epochs=self.epochs, base_lr=self.base_lr, seed=self.seed,
                               device=self.device)
