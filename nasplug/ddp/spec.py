"""What one (re)training job is: a :class:`TrainSpec`, built from a :class:`Recipe` by :func:`make_spec`.

A spec is plain, JSON-able data: the driver resolves everything that can fail (the architecture,
its principled learning rate, the defaults) *before* any worker starts, and every worker — a
torchrun process, a Ray Train actor on another machine, a restarted worker — trains exactly the
same thing from it. :meth:`TrainSpec.job_id` hashes the fields that decide the result, so a rerun
finds a job's checkpoint and result again and never mixes runs of different settings.

**Learning rate and the global batch.** ``batch_size`` is the *global* batch: W workers each take
``batch_size / W`` samples per step and average their gradients, which is the same update as one
process with ``batch_size`` (tests/test_ddp.py). So the number of workers never changes the
learning rate. A recipe's learning rate belongs to the recipe's batch size; a different global
batch scales it linearly, ``lr · B / B_recipe`` (the linear scaling rule: P. Goyal et al.,
*Accurate, Large Minibatch SGD: Training ImageNet in 1 Hour*, arXiv:1706.02677). The principled
rate is that base rate times the architecture's multiplier [C24 eq. 8–9]; ``lr=`` is used as given.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any

from nasplug import checks
from nasplug.errors import NasplugError
from nasplug.graph import ArchGraph
from nasplug.models import INIT_MODES, is_nb201_cell
from nasplug.theory.hparams import principled_lr
from nasplug.train import MODELS, SCHEDULES, check_train_args


@dataclass(frozen=True)
class Recipe:
    """Optimizer settings of a training recipe (SGD; ``lr`` is the peak rate at ``batch_size``)."""

    name: str
    epochs: int
    batch_size: int
    lr: float
    momentum: float = 0.9
    nesterov: bool = True
    weight_decay: float = 5e-4
    warmup_epochs: float = 0.0
    schedule: str = "cosine"


#: ``nb201``: NAS-Bench-201's recipe (X. Dong, Y. Yang, ICLR 2020, §2.4): SGD with Nesterov momentum
#: 0.9, weight decay 5e-4, cosine annealing from 0.1 to 0, batch 256, 200 epochs, random flip and
#: 4-pixel-padded crop on images. ``default``: ``nasplug train``'s defaults.
RECIPES = {
    "nb201": Recipe("nb201", epochs=200, batch_size=256, lr=0.1),
    "default": Recipe("default", epochs=10, batch_size=64, lr=0.1),
}

#: Fields that say how to run a job, not what it computes (left out of :meth:`TrainSpec.job_id`).
#: The GPU options only act on CUDA devices, so they cannot change a CPU result either.
RUN_FIELDS = ("data_root", "lr_rule", "device", "amp", "channels_last", "compile", "evaluate_every")


@dataclass(frozen=True)
class TrainSpec:
    """One training job. ``batch_size`` is global; ``lr`` is the peak rate for it (module docstring).

    ``amp=None`` enables bf16 autocast on CUDA devices that support it, ``channels_last=None`` uses
    that memory format for conv nets on CUDA, ``compile`` wraps the model in :func:`torch.compile`
    on CUDA; on CPUs all three are off, so CPU results never depend on them.
    """

    arch: str
    model: str
    dataset: str = "digits"
    data_root: str | None = None
    width: int | None = None
    init: str = "arch_aware"
    seed: int = 0
    recipe: str = "default"
    epochs: int = 10
    batch_size: int = 64
    lr: float = 0.1
    lr_rule: str = "given"
    momentum: float = 0.9
    nesterov: bool = True
    weight_decay: float = 5e-4
    warmup_epochs: float = 0.0
    schedule: str = "cosine"
    augment: bool = False
    max_steps: int | None = None
    device: str = "auto"
    amp: bool | None = None
    channels_last: bool | None = None
    compile: bool = False
    evaluate_every: int = 1

    def __post_init__(self) -> None:
        ArchGraph.parse(self.arch)  # a bad architecture is a user error here, not in a worker
        checks.choice("model", self.model, MODELS)
        checks.choice("init", self.init, INIT_MODES)
        checks.choice("schedule", self.schedule, SCHEDULES)
        if self.width is not None:
            checks.integer("width", self.width, 1)
        check_train_args(epochs=self.epochs, batch_size=self.batch_size, momentum=self.momentum,
                         weight_decay=self.weight_decay, warmup_epochs=self.warmup_epochs,
                         evaluate_every=self.evaluate_every, max_steps=self.max_steps, lr=self.lr,
                         seed=self.seed)

    def identity(self) -> dict[str, Any]:
        """The fields that decide what the job computes."""
        return {k: v for k, v in asdict(self).items() if k not in RUN_FIELDS}

    def job_id(self) -> str:
        """A short stable name of :meth:`identity` (12 hex digits of its SHA-1)."""
        text = json.dumps(self.identity(), sort_keys=True)
        return hashlib.sha1(text.encode()).hexdigest()[:12]

    def per_worker_batch(self, world_size: int) -> int:
        """``batch_size / world_size``; :class:`~nasplug.errors.NasplugError` unless it divides."""
        if world_size < 1 or self.batch_size % world_size:
            raise NasplugError(f"the global batch size {self.batch_size} must be divisible by the "
                               f"number of workers ({world_size})")
        return self.batch_size // world_size

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainSpec:
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})

    def with_run(self, **run: Any) -> TrainSpec:
        """The same job with other run settings (:data:`RUN_FIELDS`)."""
        unknown = set(run) - set(RUN_FIELDS)
        if unknown:
            raise ValueError(f"not run settings: {sorted(unknown)}")
        return replace(self, **run)


def default_model(arch: ArchGraph | str, dataset: str) -> str:
    """NAS-Bench-201's network for NB201 cells; otherwise the theory MLP on digits, the CNN-DAG on
    other (image) datasets."""
    if is_nb201_cell(ArchGraph.parse(arch)):
        return "nb201"
    return "mlp" if dataset == "digits" else "cnn"


def make_spec(arch: ArchGraph | str, dataset: str = "digits", *, model: str | None = None,
              recipe: str | None = None, data_root: str | None = None, epochs: int | None = None,
              batch_size: int | None = None, lr: float | None = None, base_lr: float | None = None,
              init: str = "arch_aware", width: int | None = None, seed: int = 0,
              momentum: float | None = None, weight_decay: float | None = None,
              warmup_epochs: float | None = None, schedule: str | None = None,
              augment: bool | None = None, max_steps: int | None = None, **run: Any) -> TrainSpec:
    """A :class:`TrainSpec` from a recipe with the caller's overrides (``None`` = the recipe's).

    ``model`` defaults to :func:`default_model`, ``recipe`` to ``nb201`` for the NB201 network and
    ``default`` otherwise. The learning rate is ``lr`` as given, or
    ``base_lr × lr_multiplier(arch) × batch_size / recipe.batch_size`` with ``base_lr`` defaulting
    to the recipe's rate (module docstring). ``augment`` defaults to on for image datasets other
    than digits. ``run`` takes the run settings (``device``, ``amp``, ...). Raises
    :class:`~nasplug.errors.ArchError` for a cell without an input→output path (it has no
    principled rate) and :class:`~nasplug.errors.NasplugError` for a bad setting.
    """
    if lr is not None and base_lr is not None:
        raise NasplugError("give either lr or base_lr, not both")
    arch = ArchGraph.parse(arch)
    model = model or default_model(arch, dataset)
    name = recipe or ("nb201" if model == "nb201" else "default")
    if name not in RECIPES:
        raise NasplugError(f"unknown recipe {name!r}; use one of {', '.join(RECIPES)}")
    r = RECIPES[name]
    batch = r.batch_size if batch_size is None else int(batch_size)
    if batch < 1:
        raise NasplugError(f"the batch size must be at least 1, got {batch}")
    if lr is None:
        base = r.lr if base_lr is None else float(base_lr)
        if not (math.isfinite(base) and base > 0):
            raise NasplugError(f"the base learning rate must be positive, got {base}")
        lr = principled_lr(arch, base, model) * batch / r.batch_size
        rule = f"base_lr {base:g} x lr_multiplier"
        if batch != r.batch_size:
            rule += f" x batch {batch}/{r.batch_size}"
    else:
        rule = "given"
    if data_root is not None:  # Ray Train workers run in their own working directory
        data_root = str(Path(data_root).expanduser().resolve())
    return TrainSpec(
        arch=str(arch), model=model, dataset=dataset, data_root=data_root, width=width, init=init,
        seed=seed, recipe=name, epochs=r.epochs if epochs is None else int(epochs), batch_size=batch,
        lr=float(lr), lr_rule=rule, momentum=r.momentum if momentum is None else float(momentum),
        nesterov=r.nesterov, weight_decay=r.weight_decay if weight_decay is None else float(weight_decay),
        warmup_epochs=r.warmup_epochs if warmup_epochs is None else float(warmup_epochs),
        schedule=schedule or r.schedule, augment=dataset != "digits" if augment is None else bool(augment),
        max_steps=max_steps, **run,
    )
