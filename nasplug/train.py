"""Principled training of one architecture: SGD with warm-up + cosine, per-arch init and max LR.

:func:`train` trains any model on an :class:`~nasplug.data.ArrayDataset`; :func:`train_arch` builds
the model for an architecture (MLP-DAG, CNN-DAG or NAS-Bench-201 network, with the [C24] init) and
takes its learning rate either directly (``lr``) or as ``base_lr × lr_multiplier(arch)`` [C24 eq. 8–9].

Design choices
--------------
* A divergent run (NaN/inf loss) is a *result*, not an error: hyper-parameter searches feed it back
  as a failed trial. :func:`train` stops and returns :class:`TrainingDiverged` with the reason.
* ``callback(epoch, metrics)`` is called after every epoch; Optuna/Ray report through it and may
  raise (``optuna.TrialPruned``, Ray's stop) — those exceptions propagate unchanged.
* Deterministic on CPU for a given seed (seeded init, shuffling and augmentation generators);
  ``device="auto"`` picks CUDA when available, where bf16 autocast (AMP) is on by default.
* Resumable: ``on_state(epoch, state)`` receives everything the run needs to continue after every
  epoch (model, optimizer, epoch, step, RNG states, metrics so far), and ``train(..., state=state)``
  continues from it. On CPU a resumed run is bit-identical to an uninterrupted one (tested), which
  is what lets a search backend restart a trial on another worker from its last checkpoint.

[C24] W. Chen, J. Wu, Z. Wang, B. Hanin. *Principled Architecture-aware Scaling of
Hyper-parameters.* ICLR 2024, arXiv:2402.17440.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from torch import nn

from nasplug import checks
from nasplug.data import ArrayDataset, augment_batch, load_dataset
from nasplug.errors import NasplugError
from nasplug.graph import ArchGraph
from nasplug.models import build_cnn, build_darts, build_mlp, build_nb101, build_nb201, count_parameters
from nasplug.theory.hparams import DEFAULT_BASE_LR, DEFAULT_WIDTH, MODELS, principled_lr

#: Learning-rate schedules after the warm-up: cosine decay to 0, or constant (max-LR searches).
SCHEDULES = ("cosine", "constant")
Callback = Callable[[int, dict[str, float]], None]
StateCallback = Callable[[int, dict[str, Any]], None]


@dataclass
class TrainResult:
    """Outcome of a run. ``history`` holds every epoch's metrics dict (as given to the callback).

    ``valid_*`` are the last evaluation of the monitored split (the validation split when the
    dataset has one, else the test split: ``info["monitor"]`` says which) and ``test_*`` the one
    evaluation of the test split after training (NaN when ``test=False``).
    """

    status: str = "ok"
    epochs_run: int = 0
    lr: float = float("nan")
    history: list[dict[str, float]] = field(default_factory=list)
    train_loss: float = float("nan")
    valid_loss: float = float("nan")
    valid_acc: float = float("nan")
    test_loss: float = float("nan")
    test_acc: float = float("nan")
    seconds: float = 0.0
    device: str = "cpu"
    reason: str = ""
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class TrainingDiverged(TrainResult):
    """A run stopped because the loss became NaN or infinite; ``reason`` says when."""

    status: str = "diverged"


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """``"auto"`` → CUDA when available, else CPU; ``"cpu"``, ``"cuda"``, ``"cuda:N"``, ``"mps"``
    as given, after checking that the device exists (a one-line error otherwise)."""
    if isinstance(device, torch.device):
        device = str(device)
    checks.device(device)
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise NasplugError(f"device {device!r} requested but CUDA is not available")
    if dev.type == "cuda" and dev.index is not None and dev.index >= torch.cuda.device_count():
        raise NasplugError(f"device {device!r} requested but there are {torch.cuda.device_count()} "
                           "CUDA devices")
    if dev.type == "mps" and not torch.backends.mps.is_available():
        raise NasplugError("device 'mps' requested but MPS is not available")
    return dev


def lr_schedule(step: int, total_steps: int, warmup_steps: int, schedule: str = "cosine") -> float:
    """Factor of the peak LR at optimizer step ``step`` (0-based): linear warm-up from
    ``1/warmup_steps`` to 1, then cosine to 0 at ``total_steps`` (or constant 1: :data:`SCHEDULES`)."""
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    if schedule == "constant":
        return 1.0
    progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
    return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))


def forward_loss(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *,
                 amp: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """``(logits, loss)`` of a training batch: the forward pass (bf16 autocast on ``x``'s device
    when ``amp``), then the mean cross-entropy in float32. Shared by :func:`train` and the
    data-parallel loop (:func:`nasplug.ddp.fit`), so both compute the same update."""
    with torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=amp):
        logits = model(x)
    return logits, nn.functional.cross_entropy(logits.float(), y)


def optimizer_step(opt: torch.optim.Optimizer, loss: torch.Tensor) -> None:
    """One update of ``opt`` on ``loss`` (gradients cleared first)."""
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()


@torch.no_grad()
def evaluate(model: nn.Module, data: ArrayDataset, split: str = "test", *, batch_size: int = 512,
             device: str | torch.device = "cpu", amp: bool = False) -> tuple[float, float]:
    """Mean cross-entropy and accuracy (fraction) on a split (``"train"``, ``"valid"`` or
    ``"test"``), in eval mode."""
    device = torch.device(device)
    x_all, y_all = data.split(split)
    was_training = model.training
    model.eval()
    loss_sum, correct = 0.0, 0
    for i in range(0, len(y_all), batch_size):
        x = data.normalize(x_all[i:i + batch_size].to(device))
        y = y_all[i:i + batch_size].to(device)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
            logits = model(x)
        loss_sum += float(nn.functional.cross_entropy(logits.float(), y, reduction="sum"))
        correct += int((logits.argmax(1) == y).sum())
    model.train(was_training)
    n = max(1, len(y_all))
    return loss_sum / n, correct / n


def check_train_args(*, epochs: int, batch_size: int, momentum: float, weight_decay: float,
                     warmup_epochs: float, evaluate_every: int = 1, max_steps: int | None = None,
                     lr: float | None = None, seed: int | None = None) -> None:
    """The ranges :func:`train` accepts, one :class:`~nasplug.errors.NasplugError` per bad value
    (the CLI checks the same ranges as it parses)."""
    checks.integer("epochs", epochs, 1)
    checks.integer("batch_size", batch_size, 1)
    checks.number("momentum", momentum, 0.0, 1.0, high_open=True)
    checks.number("weight_decay", weight_decay, 0.0)
    checks.number("warmup_epochs", warmup_epochs, 0.0, epochs)  # a longer warm-up never reaches the LR
    checks.integer("evaluate_every", evaluate_every, 1)
    if max_steps is not None:
        checks.integer("max_steps", max_steps, 1)
    if lr is not None:
        checks.number("lr", lr, 0.0, checks.MAX_LR, low_open=True)
    if seed is not None:
        checks.integer("seed", seed, 0, checks.MAX_SEED)


def train(model: nn.Module, data: ArrayDataset, *, epochs: int = 10, lr: float = 0.05,
          batch_size: int = 64, momentum: float = 0.9, nesterov: bool = True,
          weight_decay: float = 5e-4, warmup_epochs: float = 0.0, schedule: str = "cosine",
          augment: bool = False, device: str | torch.device = "auto", amp: bool | None = None,
          seed: int = 0, callback: Callback | None = None, progress: bool = True,
          evaluate_every: int = 1, max_steps: int | None = None, test: bool = True,
          state: dict[str, Any] | None = None, on_state: StateCallback | None = None) -> TrainResult:
    """Train ``model`` with SGD, stopping early (as :class:`TrainingDiverged`) on a NaN/inf loss.

    Parameters
    ----------
    epochs, lr, batch_size, momentum, nesterov, weight_decay
        SGD settings: ``epochs >= 1``, peak learning rate ``lr > 0``, ``batch_size >= 1``,
        ``0 <= momentum < 1`` (``0`` gives plain SGD), ``weight_decay >= 0``.
    warmup_epochs
        Length of the linear warm-up (``>= 0``, fractions allowed); then cosine decay to 0.
    schedule
        ``"cosine"`` (default) or ``"constant"`` (warm-up, then constant; what max-LR searches use).
    augment
        Random flip + crop (images only).
    device, amp
        ``"auto"`` picks CUDA when available. ``amp=None`` enables bf16 autocast on CUDA only.
    seed
        Seeds shuffling and augmentation (the model's init is seeded by its builder).
    callback
        ``callback(epoch, metrics)`` after every evaluated epoch; its exceptions propagate.
    progress
        Show a tqdm bar over epochs.
    evaluate_every
        Evaluate the monitored split every this many epochs (and always after the last). The
        monitored split is the validation split when ``data`` has one (metrics ``valid_loss``,
        ``valid_acc``), else the test split (``test_loss``, ``test_acc``).
    max_steps
        Stop after this many optimizer steps (budgeted runs, e.g. one epoch's worth).
    test
        Evaluate the test split once after training (``result.test_*``). Searches pass
        ``False``: they select on the validation split and never look at the test split.
    state
        Continue a run from a state that ``on_state`` produced (same model, data and settings):
        weights, optimizer, epoch, step, the shuffling generator, torch's CPU RNG and the metrics
        so far are restored, and training goes on with the next epoch.
    on_state
        ``on_state(epoch, state)`` after every epoch, *before* ``callback``, so a caller can attach
        the state to the epoch's report (a checkpoint). ``state`` is a dict of CPU-independent copies
        (``torch.save``-able): keys ``model``, ``optimizer``, ``epoch``, ``step``, ``generator``,
        ``torch_rng``, ``result``.

    Returns
    -------
    TrainResult
        ``status="ok"``, or a :class:`TrainingDiverged` with ``reason``.
    """
    from tqdm.auto import tqdm

    checks.choice("schedule", schedule, SCHEDULES)
    check_train_args(epochs=epochs, batch_size=batch_size, momentum=momentum, weight_decay=weight_decay,
                     warmup_epochs=warmup_epochs, evaluate_every=evaluate_every, max_steps=max_steps, lr=lr,
                     seed=seed)
    dev = resolve_device(device)
    monitor = "valid" if data.has_valid else "test"
    amp = dev.type == "cuda" if amp is None else (amp and dev.type == "cuda")
    torch.manual_seed(seed)  # dropout-like randomness inside the model, if any
    gen = torch.Generator().manual_seed(seed)
    model = model.to(dev)
    model.train()
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=momentum,
                          nesterov=nesterov and momentum > 0, weight_decay=weight_decay)
    first_epoch, step, done_seconds = 1, 0, 0.0
    result = TrainResult(lr=lr, device=str(dev), info={"monitor": monitor})
    if state is not None:
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        gen.set_state(state["generator"])
        torch.set_rng_state(state["torch_rng"])
        first_epoch, step = int(state["epoch"]) + 1, int(state["step"])
        for key, value in state["result"].items():
            setattr(result, key, copy.deepcopy(value))
        result.device, done_seconds = str(dev), result.seconds
    n_train = len(data.y_train)
    steps_per_epoch = max(1, math.ceil(n_train / batch_size))
    total_steps = epochs * steps_per_epoch if max_steps is None else min(max_steps, epochs * steps_per_epoch)
    warmup_steps = int(round(warmup_epochs * steps_per_epoch))
    x_dev, y_dev = data.x_train.to(dev), data.y_train.to(dev)  # small datasets: keep on device
    start = time.perf_counter() - done_seconds
    bar = tqdm(range(first_epoch, epochs + 1), desc="train", unit="ep", disable=not progress, leave=False,
               initial=first_epoch - 1, total=epochs)
    try:
        for epoch in bar:
            loss_sum = torch.zeros((), device=dev)
            correct = torch.zeros((), device=dev, dtype=torch.long)
            seen = 0
            perm = torch.randperm(n_train, generator=gen).to(dev)
            for i in range(0, n_train, batch_size):
                if step >= total_steps:
                    break
                factor = lr_schedule(step, total_steps, warmup_steps, schedule)
                for group in opt.param_groups:
                    group["lr"] = lr * factor
                idx = perm[i:i + batch_size]
                x = data.normalize(x_dev[idx])
                y = y_dev[idx]
                if augment and x.dim() == 4:
                    x = augment_batch(x, gen)
                logits, loss = forward_loss(model, x, y, amp=amp)
                if not torch.isfinite(loss):
                    return _diverged(result, start, f"loss became {float(loss.detach())} at epoch {epoch}, "
                                     f"step {step + 1} (lr {lr * factor:.4g})")
                optimizer_step(opt, loss)
                step += 1
                loss_sum += loss.detach() * len(y)
                correct += (logits.argmax(1) == y).sum()
                seen += len(y)
            train_loss = float(loss_sum) / max(1, seen)
            if not math.isfinite(train_loss):
                return _diverged(result, start, f"training loss {train_loss} in epoch {epoch}")
            metrics = {"epoch": epoch, "train_loss": train_loss, "train_acc": float(correct) / max(1, seen),
                       "lr": opt.param_groups[0]["lr"], "steps": step}
            last = epoch == epochs or step >= total_steps
            if last or epoch % evaluate_every == 0:
                loss_m, acc_m = evaluate(model, data, monitor, device=dev, amp=amp)
                metrics.update({f"{monitor}_loss": loss_m, f"{monitor}_acc": acc_m})
                if not math.isfinite(loss_m):
                    return _diverged(result, start, f"{monitor} loss {loss_m} after epoch {epoch}")
                setattr(result, f"{monitor}_loss", loss_m)
                setattr(result, f"{monitor}_acc", acc_m)
            metrics["seconds"] = time.perf_counter() - start
            result.history.append(metrics)
            result.epochs_run, result.train_loss = epoch, train_loss
            shown = metrics.get(f"{monitor}_acc", float("nan"))
            bar.set_postfix(loss=f"{train_loss:.4f}", acc=f"{shown:.3f}")
            if on_state is not None:
                result.seconds = metrics["seconds"]
                on_state(epoch, _state(model, opt, gen, epoch, step, result))
            if callback is not None:
                callback(epoch, metrics)
            if last:
                break
    finally:
        bar.close()
    if test and monitor != "test":
        result.test_loss, result.test_acc = evaluate(model, data, "test", device=dev, amp=amp)
    result.seconds = time.perf_counter() - start
    return result


def _state(model: nn.Module, opt: torch.optim.Optimizer, gen: torch.Generator, epoch: int, step: int,
           result: TrainResult) -> dict[str, Any]:
    """Everything :func:`train` needs to continue after ``epoch`` (copies on the CPU)."""
    cpu = torch.device("cpu")
    return {
        "model": {k: v.detach().to(cpu, copy=True) for k, v in model.state_dict().items()},
        "optimizer": _to_cpu(opt.state_dict()),
        "epoch": epoch, "step": step, "generator": gen.get_state(), "torch_rng": torch.get_rng_state(),
        "result": copy.deepcopy({k: v for k, v in result.__dict__.items() if k not in ("status", "device")}),
    }


def _to_cpu(obj: Any) -> Any:
    """A copy of a nested state dict with every tensor copied to the CPU (never aliasing)."""
    if isinstance(obj, torch.Tensor):
        return obj.detach().to("cpu", copy=True)
    if isinstance(obj, dict):
        return {k: _to_cpu(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_to_cpu(v) for v in obj]
    return obj


def _diverged(result: TrainResult, start: float, reason: str) -> TrainingDiverged:
    fields = {k: v for k, v in result.__dict__.items() if k != "status"}
    out = TrainingDiverged(**fields)
    out.reason, out.seconds = reason, time.perf_counter() - start
    return out


def build_model(arch: ArchGraph | str, model: str, data: ArrayDataset, *, width: int | None = None,
                init: str = "arch_aware", seed: int | None = 0) -> nn.Module:
    """The network :func:`train_arch` trains (``width`` default :data:`DEFAULT_WIDTH`): ``mlp``
    (hidden width), ``cnn`` (channels), ``nb201`` (C, the benchmark's 16), ``nb101`` (stem
    channels, the benchmark's 128) or ``darts`` (C, 32; a DARTS genotype) — the last two
    NAS-Bench-101's and NAS-Bench-301's networks. Those two take He init for any
    architecture-aware mode (BN follows every conv; the [C24] gains are defined on the DAG's edges,
    and their projections and preprocessing are outside it)."""
    arch = ArchGraph.parse(arch)
    checks.choice("model", model, MODELS)
    width = DEFAULT_WIDTH[model] if width is None else checks.integer("width", width, 1)
    if model == "mlp":
        return build_mlp(arch, data.in_dim, width, data.num_classes, init=init, seed=seed)
    if len(data.input_shape) != 3:
        raise NasplugError(f"model {model!r} needs image inputs; {data.name} has shape {data.input_shape}")
    if model == "cnn":
        return build_cnn(arch, data.in_channels, width, data.num_classes, init=init, seed=seed)
    if model == "nb201":
        return build_nb201(arch, data.num_classes, C=width, in_channels=data.in_channels, init=init,
                           seed=seed)
    plain = "torch" if init == "torch" else "he"
    if model == "nb101":
        return build_nb101(arch, data.num_classes, stem_channels=width, in_channels=data.in_channels,
                           init=plain, seed=seed)
    return build_darts(arch, data.num_classes, C=width, in_channels=data.in_channels, init=plain, seed=seed)


def train_arch(arch: ArchGraph | str, dataset: str | ArrayDataset = "digits", *, model: str = "mlp",
               data_root: str | None = None, epochs: int = 10, lr: float | None = None,
               base_lr: float | None = None, lr_offset: float | None = None,
               lr_base: ArchGraph | str | Sequence[float] | None = None,
               lr_path_weights: str = "none", width: int | None = None, init: str = "arch_aware",
               seed: int = 0, **train_kwargs: Any) -> TrainResult:
    """Build and train one architecture with its principled init and learning rate.

    Give either ``lr`` (used as is) or ``base_lr`` (scaled by ``lr_multiplier(arch)``; default
    :data:`DEFAULT_BASE_LR` of the model when neither is given); ``lr_offset`` and
    ``lr_path_weights`` select the depth convention and ``lr_base`` names the network ``base_lr``
    was tuned on (an architecture, or its path depths; default: the model family's convention)
    (:func:`principled_lr`). Other keyword arguments go to :func:`train`. ``result.info``
    records the architecture, model, width, parameter count, how the LR was chosen and the
    monitored split.
    """
    if lr is not None and base_lr is not None:
        raise NasplugError("give either lr or base_lr, not both")
    checks.choice("model", model, MODELS)
    checks.integer("epochs", epochs, 1)
    if width is not None:
        checks.integer("width", width, 1)
    if lr_offset is not None:
        checks.number("lr_offset", lr_offset, 0.0)
    arch = ArchGraph.parse(arch)
    data = dataset if isinstance(dataset, ArrayDataset) else load_dataset(dataset, data_root)
    if lr is None:
        base_lr = DEFAULT_BASE_LR[model] if base_lr is None else checks.number("base_lr", base_lr, 0.0,
                                                                             low_open=True)
        lr = principled_lr(arch, base_lr, model, offset=lr_offset, base=lr_base,
                           path_weights=lr_path_weights)
        how = f"base_lr {base_lr:g} x lr_multiplier"
        if lr_path_weights != "none":
            how += f" (path weights {lr_path_weights})"
    else:
        how = "given"
    net = build_model(arch, model, data, width=width, init=init, seed=seed)
    train_kwargs.setdefault("augment", data.name != "digits")
    result = train(net, data, epochs=epochs, lr=lr, seed=seed, **train_kwargs)
    result.info.update(arch=str(arch), nodes=arch.n_nodes, model=model, dataset=data.name, init=init,
                       width=DEFAULT_WIDTH[model] if width is None else width,
                       params=count_parameters(net), lr_rule=how)
    return result
