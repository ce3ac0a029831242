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
from nasplug.search.evaluation import Evaluator, load_callable, table_evaluator, train_evaluator
from nasplug.search_spaces import get as get_space

OBJECTIVES = ("train", "table", "custom")
DIRECTIONS = ("maximize", "minimize")
SAMPLERS = ("tpe", "random", "cmaes", "gp")
PRUNERS = ("none", "median")
#: Fields that make up the evaluation identity (what a stored value means).
IDENTITY_FIELDS = ("space", "objective", "benchmark", "callable", "dataset", "model", "epochs",
                   "base_lr", "direction", "filter", "dedupe")


@dataclass
class SearchConfig:
    """Everything a search needs, as plain data.

    ``objective`` is ``"train"`` (train each cell, ``dataset``/``model``/``epochs``/``base_lr``),
    ``"table"`` (look values up in the NAS-Bench-201 file ``benchmark``, ``dataset`` = its dataset)
    or ``"custom"`` (the user's ``callable`` = ``"module:function"``). ``scored_startup`` > 0 starts
    the search from the best-scored distinct cells (``FilteredSampler(scored_startup=...)``, needs a
    ``scorer``). ``storage`` is a SQLite file,
    an SQLAlchemy URL or ``journal:PATH``; ``study_name`` defaults to one derived from the settings.
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
    scored_startup: int = 0
    dedupe: bool = True
    storage: str = "results/search/study.db"
    study_name: str | None = None
    heartbeat: int | None = None
    jobs: int = 1
    quiet: bool = False

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
        if self.scored_startup < 0:
            raise NasplugError(f"scored-startup must be at least 0, got {self.scored_startup}")
        if self.scored_startup and (self.scorer is None or str(self.scorer).strip().lower() in ("", "none")):
            raise NasplugError("--scored-startup needs --scorer (e.g. live_param_cost) to rank the cells")
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
        get_space(self.space)  # an unknown space is a one-line error before any work
        if self.study_name is None:
            self.study_name = self.default_study_name()

    # ------------------------------------------------------------------ derived
    def default_study_name(self) -> str:
        if self.objective == "table":
            label = f"table-{self.dataset}"
        elif self.objective == "custom":
            label = "custom-" + str(self.callable).replace(":", ".")
        else:
            label = f"train-{self.dataset}-{self.epochs}ep"
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
