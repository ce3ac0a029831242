"""A search's settings as one typed, validated, picklable object shared by every backend.

:class:`SearchConfig` is what ``nasplug search`` builds from its options and what the Optuna runner
(and the Ray backend) consume; worker processes receive it as it is.

**A study's identity.** :meth:`SearchConfig.identity` is everything that decides what a trial's
value *means* — space, objective, benchmark or user function, dataset, model, width, init, LR rule,
epochs, metric, direction, filter, dedupe and its key rule, the objectives of a multi-objective
search — with every default resolved. A backend
stores it with the study when it creates it and calls :meth:`SearchConfig.check_identity` before
it creates any trial of an existing study: a rerun with other settings is refused with one line
(give a new study name for a new study) instead of mixing values that mean different things.
Settings that only change *how* the space is searched (sampler, seed, max tries, workers, timeout,
pruner, storage) may change between runs of one study.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

from nasplug import checks
from nasplug.errors import NasplugError
from nasplug.processes import MAX_PROCESSES_PER_CORE, available_cores
from nasplug.search.costs import Network
from nasplug.search.dedupe import key_rule
from nasplug.search.evaluation import Evaluator, load_callable, table_evaluator, train_evaluator
from nasplug.search.objectives import ObjectiveSet, format_objectives, parse_objectives
from nasplug.search_spaces import get as get_space
from nasplug.theory.hparams import DEFAULT_BASE_LR, DEFAULT_WIDTH, MODELS

OBJECTIVES = ("train", "table", "custom")
DIRECTIONS = ("maximize", "minimize")
SAMPLERS = ("tpe", "random", "cmaes", "gp", "nsga2")
PRUNERS = ("none", "median")
INITS = ("arch_aware", "arch_aware_source", "he", "torch")
#: The default pre-training filter of a single-objective search ([C22]'s box). A multi-objective
#: search defaults to none: the box drops the cheapest cells of the accuracy-cost front
#: (docs/multiobjective.md).
DEFAULT_FILTER = "dag_box"
#: The default study name: one study per storage unless named (a rerun with other evaluation
#: settings is refused rather than silently starting a second study next to the first).
DEFAULT_STUDY_NAME = "nasplug-search"
#: The LR rule of the training objective: base LR × the cell's [C24] max-LR multiplier.
LR_RULE = "base_lr x lr_multiplier [C24]"


@dataclass
class SearchConfig:
    """Everything a search needs, as plain data.

    ``objective`` is ``"train"`` (train each cell: ``dataset``, ``model``, ``width``, ``init``,
    ``epochs``, ``base_lr``; selected on validation accuracy in %), ``"table"`` (look values up
    in the NAS-Bench-201 file ``benchmark``, ``dataset`` = its dataset) or ``"custom"`` (the
    user's ``callable`` = ``"module:function"``). ``storage`` is a SQLite file, an SQLAlchemy URL
    or ``journal:PATH``; ``filter`` defaults to :data:`DEFAULT_FILTER` (``"none"`` with ``objectives``).
    ``final_top`` best distinct cells of a training search are retrained
    with ``final_seeds`` seeds and evaluated once on the test split (``0`` to skip).
    ``objectives`` (e.g. ``"accuracy,params"``) makes the search multi-objective: the accuracy
    against costs of the network (:mod:`nasplug.search.objectives`); kept in normalized form.

    Raises :class:`~nasplug.errors.NasplugError` (one line naming the setting and its allowed
    values) for anything invalid, before any work. ``scored_startup`` > 0 starts the search from the
    best-scored distinct cells of the filtered space (``FilteredSampler(scored_startup=...)``;
    needs a ``scorer``).
    """

    space: str = "nb201"
    objective: str = "train"
    benchmark: str | None = None
    callable: str | None = None
    direction: str = "maximize"
    dataset: str | None = None
    data_root: str | None = None
    model: str | None = None
    width: int | None = None
    init: str = "arch_aware"
    epochs: int = 10
    base_lr: float | None = None
    device: str = "auto"
    filter: str | None = None
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
    final_top: int = 3
    final_seeds: int = 3
    quiet: bool = False
    objectives: str | None = None

    def __post_init__(self) -> None:
        if self.filter is None:  # the box filters for accuracy: it drops cheap cells of a cost front
            self.filter = "none" if self.objectives else DEFAULT_FILTER
        self.filter = (self.filter or "none").strip()
        checks.choice("objective", self.objective, OBJECTIVES)
        checks.choice("direction", self.direction, DIRECTIONS)
        checks.choice("sampler", self.sampler, SAMPLERS)
        checks.choice("pruner", self.pruner, PRUNERS)
        checks.choice("init", self.init, INITS)
        checks.device(self.device)
        for name, low in (("n_trials", 1), ("jobs", 1), ("max_tries", 1), ("epochs", 1),
                          ("final_top", 0), ("final_seeds", 1)):
            setattr(self, name, checks.integer(name, getattr(self, name), low))
        limit = MAX_PROCESSES_PER_CORE * available_cores()
        if self.jobs > limit:  # each job is a process on this machine
            raise NasplugError(
                f"jobs must be at most {limit} ({MAX_PROCESSES_PER_CORE} per CPU "
                f"core this process may use), got {self.jobs}: each job is a worker process here, and more "
                "only slow each other down (to add workers on other machines, run the same command "
                "there on a shared --storage)")
        self.seed = checks.integer("seed", self.seed, 0, checks.MAX_SEED)
        if self.timeout is not None:
            self.timeout = checks.number("timeout", self.timeout, 0.0, low_open=True)
        if self.heartbeat is not None:
            self.heartbeat = checks.integer("heartbeat", self.heartbeat, 1)
        if self.sampler == "cmaes":
            raise NasplugError(
                "sampler cmaes models only numerical parameters, and every parameter of an "
                "architecture search is categorical (one op per edge): CMA-ES would sample at "
                "random. Use --sampler random to say so, or tpe / gp to model the edges")
        if self.objective == "table" and not self.benchmark:
            raise NasplugError("a table objective needs a benchmark file (--benchmark FILE)")
        if self.objective == "custom" and not self.callable:
            raise NasplugError("a custom objective needs --objective MODULE:FUNCTION")
        self.scored_startup = checks.integer("scored_startup", self.scored_startup, 0)
        if self.scored_startup and (self.scorer is None or str(self.scorer).strip().lower() in ("", "none")):
            raise NasplugError("--scored-startup needs --scorer (e.g. live_param_cost) to rank the cells")
        if self.objective != "custom" and self.direction != "maximize":
            raise NasplugError("accuracies are maximized: --direction is for --objective only")
        if self.objective == "table":
            self.dataset = self.dataset or "cifar10"
            self.benchmark = str(Path(self.benchmark).expanduser().resolve())
            if not Path(self.benchmark).is_file():  # every trial would fail on it: say so now
                raise NasplugError(f"{self.benchmark}: no such file (the benchmark table)")
        elif self.objective == "train":
            self.dataset = (self.dataset or "digits").lower()
            default_model = "cnn" if self.dataset == "digits" else "nb201"
            self.model = checks.choice("model", self.model or default_model, MODELS)
            self.width = DEFAULT_WIDTH[self.model] if self.width is None else \
                checks.integer("width", self.width, 1)
            self.base_lr = DEFAULT_BASE_LR[self.model] if self.base_lr is None else \
                checks.number("base_lr", self.base_lr, 0.0, checks.MAX_LR, low_open=True)
        else:
            self.dataset = None
        if self.objective != "train":  # settings of the training objective only
            self.model = self.width = self.base_lr = None
        if self.objectives is not None:
            self._check_objectives()
        get_space(self.space)  # an unknown space is a one-line error before any work
        if self.study_name is None:
            self.study_name = DEFAULT_STUDY_NAME
        elif not str(self.study_name).strip():
            raise NasplugError("the study name is empty: give a name, or leave --study-name out")

    def _check_objectives(self) -> None:
        self.objectives = format_objectives(parse_objectives(self.objectives))
        if self.pruner != "none":
            raise NasplugError("--pruner stops trials on one intermediate value: not with --objectives")
        self.network()  # no network (a custom objective), or one that cannot take the data: one line now

    # ------------------------------------------------------------------ multi-objective
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
            return Network.for_dataset(self.model, self.dataset, self.width)
        return Network.for_dataset("nb201", self.dataset)

    def objective_set(self) -> ObjectiveSet | None:
        """The objective vector of a multi-objective search (``None`` for a single objective)."""
        if self.objectives is None:
            return None
        return ObjectiveSet(self.objectives, self.network(), device=self.device)

    # ------------------------------------------------------------------ identity
    @property
    def key_rule(self) -> str:
        """Which cells share one evaluation (:func:`~nasplug.search.dedupe.key_rule`)."""
        return key_rule(self.objective, self.model)

    @property
    def metric(self) -> str:
        """What a trial's value is, in words (metric and split)."""
        if self.objective == "train":
            return "validation accuracy (%)"
        if self.objective == "table":
            return f"{self.dataset} test accuracy (%) from the benchmark table"
        return f"the value returned by {self.callable}"

    def identity(self) -> dict[str, Any]:
        """The evaluation identity: the settings (defaults resolved) that decide what a trial's
        value means, as a JSON-ready dict."""
        out: dict[str, Any] = {"space": self.space, "objective": self.objective, "metric": self.metric,
                               "direction": self.direction, "filter": self.filter,
                               "dedupe": self.dedupe, "key_rule": self.key_rule,
                               "objectives": self.objectives}
        if self.objective == "table":
            out.update(benchmark=self.benchmark, dataset=self.dataset)
        elif self.objective == "custom":
            out.update(callable=self.callable)
        else:
            out.update(dataset=self.dataset, model=self.model, width=self.width, init=self.init,
                       epochs=self.epochs, lr_rule=LR_RULE, base_lr=self.base_lr)
        return out

    def check_identity(self, stored: dict[str, Any] | None, where: str = "") -> None:
        """Refuse to continue a study created with another identity (``stored``; ``None`` for a
        new study): one :class:`~nasplug.errors.NasplugError` listing the differences."""
        if stored is None:
            return
        ours = self.identity()
        diff = [k for k in ours if stored.get(k) != ours[k]]  # a key the study lacks differs too
        if not diff:
            return
        then = ", ".join(f"{k}={stored.get(k)}" for k in diff)
        now = ", ".join(f"{k}={ours.get(k)}" for k in diff)
        raise NasplugError(
            f"study {self.study_name!r}{' in ' + where if where else ''} was created with {then}; this "
            f"run has {now}. Rerun with the study's settings to continue it, or give --study-name "
            "NEW (or another --out) to start a new study")

    # ------------------------------------------------------------------ plain data
    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SearchConfig:
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})

    # ------------------------------------------------------------------ evaluation
    def evaluator(self) -> Evaluator:
        """The evaluator of this search's objective (loads the table / data / user function)."""
        if self.objective == "table":
            if not Path(self.benchmark).is_file():
                raise NasplugError(f"{self.benchmark}: no such file")
            return table_evaluator(self.benchmark, self.dataset, self.space)
        if self.objective == "custom":
            return load_callable(self.callable)
        return train_evaluator(self.dataset, data_root=self.data_root, model=self.model,
                               width=self.width, init=self.init, epochs=self.epochs,
                               base_lr=self.base_lr, seed=self.seed, device=self.device)

    def describe(self) -> str:
        """What one evaluation does, in one sentence: model, epochs, LR rule, metric and split."""
        if self.objective == "table":
            return (f"each cell's {self.dataset} test accuracy (%) is looked up in the benchmark "
                    f"table {self.benchmark} (no training; the table has no validation split)")
        if self.objective == "custom":
            return f"each cell is evaluated by {self.callable} ({self.direction}d)"
        model = {"mlp": "the theory MLP-DAG (convs as linear layers, pooling as the identity)",
                 "cnn": "a CNN-DAG (conv edges ReLU-conv-BN, 3x3 stem, global average pooling)",
                 "nb201": "the NAS-Bench-201 macro network",
                 "nb101": "the NAS-Bench-101 network",
                 "darts": "the DARTS / NAS-Bench-301 network"}[self.model]
        return (f"each cell is trained as {model} of width {self.width} on {self.dataset} for "
                f"{self.epochs} epochs (SGD, {self.init} init, LR = {self.base_lr:g} x the cell's [C24] "
                "max-LR multiplier), "
                "scored by its validation accuracy (%); the test split is used only once, for the "
                "best cells at the end")
