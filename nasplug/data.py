"""Datasets for training: scikit-learn's digits (embedded, no download), CIFAR-10/100 and
ImageNet16-120 read from a user-given path.

Everything is held as tensors in memory and batched by index, which is fast for these small
datasets and keeps shuffling deterministic from one seed. Images are stored as ``uint8`` and
normalized per batch (CIFAR-10 as float32 would take 600 MB).

Formats (read with :mod:`pickle` + numpy; torchvision is not needed):

* CIFAR-10: ``cifar-10-batches-py/data_batch_1..5`` and ``test_batch``, each a pickled dict with
  ``data`` (N × 3072 uint8, channel-major 3×32×32) and ``labels``.
* CIFAR-100: ``cifar-100-python/train`` and ``test`` with ``data`` and ``fine_labels``.
* ImageNet16-120 (NAS-Bench-201's downsampled ImageNet): ``train_data_batch_1..10`` and
  ``val_data`` (``valid_data`` is accepted too) with ``data`` (N × 768, 3×16×16) and 1-based
  ``labels``; NAS-Bench-201 keeps the classes with label ≤ 120, which become 0..119.

Pickles can execute code when loaded: only point these loaders at files you trust.
"""

from __future__ import annotations

import pickle
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch

from nasplug.checks import number
from nasplug.errors import DataError

DATASETS = ("digits", "cifar10", "cifar100", "imagenet16-120")


SPLITS = ("train", "valid", "test")


@dataclass
class ArrayDataset:
    """Train / validation / test splits held as tensors.

    Attributes
    ----------
    x_train, x_valid, x_test
        ``(N, *input_shape)`` tensors, float32 (already normalized) or uint8 (normalized per batch
        with ``mean``/``std``, per channel, on the 0..1 scale). ``x_valid``/``y_valid`` are
        ``None`` for a dataset without a validation split (:meth:`with_validation` carves one).
    y_train, y_valid, y_test
        ``int64`` class labels ``0..num_classes-1``.
    """

    name: str
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    num_classes: int
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None
    x_valid: torch.Tensor | None = None
    y_valid: torch.Tensor | None = None

    @property
    def has_valid(self) -> bool:
        return self.y_valid is not None and len(self.y_valid) > 0

    def split(self, name: str) -> tuple[torch.Tensor, torch.Tensor]:
        """``(x, y)`` of the split ``"train"``, ``"valid"`` or ``"test"``."""
        if name not in SPLITS:
            raise DataError(f"split must be one of {', '.join(SPLITS)}, got {name!r}")
        if name == "valid" and not self.has_valid:
            raise DataError(f"{self.name} has no validation split (ArrayDataset.with_validation)")
        return getattr(self, f"x_{name}"), getattr(self, f"y_{name}")

    def sizes(self) -> dict[str, int]:
        """Examples per split (0 for a missing validation split)."""
        return {s: len(getattr(self, f"y_{s}")) if getattr(self, f"y_{s}") is not None else 0 for s in SPLITS}

    def with_validation(self, fraction: float = 0.1, seed: int = 0) -> ArrayDataset:
        """A copy whose validation split is a seeded random ``fraction`` of the training split
        (the rest stays for training); the test split is untouched. A dataset that already has
        a validation split is returned as it is."""
        if self.has_valid:
            return self
        number("valid_fraction", fraction, 0.0, 1.0, low_open=True, high_open=True)
        n = len(self.y_train)
        perm = torch.from_numpy(np.random.default_rng(seed).permutation(n))
        n_valid = max(1, int(round(fraction * n)))
        valid, train = perm[:n_valid], perm[n_valid:]
        return replace(self, x_train=self.x_train[train], y_train=self.y_train[train],
                       x_valid=self.x_train[valid], y_valid=self.y_train[valid])

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.x_train.shape[1:])

    @property
    def in_dim(self) -> int:
        """Flattened input size (what an MLP sees)."""
        return int(np.prod(self.input_shape))

    @property
    def in_channels(self) -> int:
        return int(self.input_shape[0])

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        """A batch as float32, normalized (a no-op for float storage)."""
        if x.dtype != torch.uint8:
            return x.float()
        x = x.float().div_(255.0)
        if self.mean is not None:
            shape = (1, -1) + (1,) * (x.dim() - 2)
            mean = torch.tensor(self.mean, device=x.device).view(shape)
            std = torch.tensor(self.std, device=x.device).view(shape)
            x = (x - mean) / std
        return x


def load_dataset(name: str, root: str | Path | None = None) -> ArrayDataset:
    """Load a dataset by name: ``digits`` (default, embedded, with a validation split), ``cifar10``,
    ``cifar100`` or ``imagenet16-120`` (the last three from ``root``, train and test splits only:
    :meth:`ArrayDataset.with_validation` holds one out; :class:`~nasplug.errors.DataError` when
    the files are missing or corrupt)."""
    key = name.lower().replace("_", "-")
    if key == "digits":
        return load_digits()
    if key in ("cifar10", "cifar-10"):
        return load_cifar(_need_root(root, name), 10)
    if key in ("cifar100", "cifar-100"):
        return load_cifar(_need_root(root, name), 100)
    if key in ("imagenet16-120", "imagenet16", "in16"):
        return load_imagenet16(_need_root(root, name))
    raise DataError(f"unknown dataset {name!r}; available: {', '.join(DATASETS)}")


def _need_root(root: str | Path | None, name: str) -> Path:
    if root is None:
        raise DataError(f"dataset {name!r} is read from disk: give its folder (--data-root)")
    path = Path(root).expanduser()
    if not path.is_dir():
        raise DataError(f"data folder {path} does not exist")
    return path


def load_digits(valid_fraction: float = 0.2, test_fraction: float = 0.2, seed: int = 0) -> ArrayDataset:
    """scikit-learn's 8×8 digits (1,797 images, 10 classes), shipped with scikit-learn.

    A fixed seeded split: ``test_fraction`` of the images for test (359), ``valid_fraction`` for
    validation (359; ``0`` for none) and the rest for training (1,079 by default). The test images
    do not depend on ``valid_fraction``, and the validation images come from the end of the
    seeded permutation, so the first training images do not either. Pixels 0..16 are
    standardized with the training split's global mean and standard deviation (a per-pixel std
    is zero on the always-blank border). Inputs have shape ``(1, 8, 8)``: the CNN uses them as
    images, the MLP flattens them to 64 features.
    """
    from sklearn.datasets import load_digits as sk_digits

    number("valid_fraction", valid_fraction, 0.0, 1.0, high_open=True)
    number("test_fraction", test_fraction, 0.0, 1.0, low_open=True, high_open=True)
    bunch = sk_digits()
    x = bunch.data.astype(np.float32).reshape(-1, 1, 8, 8)
    y = bunch.target.astype(np.int64)
    perm = np.random.default_rng(seed).permutation(len(y))
    n_test = int(round(test_fraction * len(y)))
    n_valid = int(round(valid_fraction * len(y)))
    if n_test + n_valid >= len(y):
        raise DataError(f"test_fraction + valid_fraction must leave training images, got "
                        f"{test_fraction} + {valid_fraction}")
    test, train = perm[:n_test], perm[n_test:len(y) - n_valid]
    valid = perm[len(y) - n_valid:]
    mean, std = float(x[train].mean()), float(x[train].std())
    x = (x - mean) / std
    return ArrayDataset("digits", torch.from_numpy(x[train]), torch.from_numpy(y[train]),
                        torch.from_numpy(x[test]), torch.from_numpy(y[test]), 10,
                        x_valid=torch.from_numpy(x[valid]) if n_valid else None,
                        y_valid=torch.from_numpy(y[valid]) if n_valid else None)


def _unpickle(path: Path) -> dict:
    if not path.is_file():
        raise DataError(f"missing data file {path}")
    try:
        with path.open("rb") as fh:
            entry = pickle.load(fh, encoding="latin1")
    except Exception as err:  # truncated / not a pickle / wrong protocol
        raise DataError(f"cannot read {path}: {type(err).__name__}: {err}") from None
    if not isinstance(entry, dict):
        raise DataError(f"{path} does not hold a dict of 'data' and labels")
    # the CIFAR pickles were written by Python 2; keys may come back as bytes
    return {k.decode() if isinstance(k, bytes) else k: v for k, v in entry.items()}


def _images(entry: dict, path: Path, label_key: str, side: int) -> tuple[np.ndarray, np.ndarray]:
    try:
        data = np.asarray(entry["data"], dtype=np.uint8)
        labels = np.asarray(entry[label_key], dtype=np.int64)
    except KeyError as err:
        raise DataError(f"{path} has no {err.args[0]!r} entry") from None
    if data.ndim != 2 or data.shape[1] != 3 * side * side or len(labels) != len(data):
        raise DataError(
            f"{path}: expected 'data' of shape (N, {3 * side * side}) and N labels, got "
            f"{data.shape} and {labels.shape}"
        )
    return data.reshape(-1, 3, side, side), labels


def _channel_stats(x: np.ndarray) -> tuple[tuple[float, ...], tuple[float, ...]]:
    flat = x.transpose(1, 0, 2, 3).reshape(x.shape[1], -1).astype(np.float64) / 255.0
    std = flat.std(axis=1)
    return tuple(flat.mean(axis=1).tolist()), tuple(np.where(std > 0, std, 1.0).tolist())


def _finish(name: str, xtr, ytr, xte, yte, num_classes: int) -> ArrayDataset:
    for split, y in (("train", ytr), ("test", yte)):
        if len(y) and (y.min() < 0 or y.max() >= num_classes):
            raise DataError(f"{name}: {split} labels outside 0..{num_classes - 1}")
    mean, std = _channel_stats(xtr)
    return ArrayDataset(name, torch.from_numpy(np.ascontiguousarray(xtr)), torch.from_numpy(ytr),
                        torch.from_numpy(np.ascontiguousarray(xte)), torch.from_numpy(yte),
                        num_classes, mean, std)


def load_cifar(root: str | Path, num_classes: int = 10) -> ArrayDataset:
    """CIFAR-10/100 in torchvision's on-disk python format under ``root`` (the folder holding
    ``cifar-10-batches-py`` / ``cifar-100-python``, or that folder itself)."""
    root = Path(root)
    folder, train_files, test_files, key = (
        ("cifar-10-batches-py", [f"data_batch_{i}" for i in range(1, 6)], ["test_batch"], "labels")
        if num_classes == 10 else ("cifar-100-python", ["train"], ["test"], "fine_labels")
    )
    base = root / folder if (root / folder).is_dir() else root
    if not (base / train_files[0]).is_file():
        raise DataError(f"CIFAR-{num_classes} not found: expected {root / folder}/{train_files[0]}")

    def read(files):
        parts = [_images(_unpickle(base / f), base / f, key, 32) for f in files]
        return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])

    (xtr, ytr), (xte, yte) = read(train_files), read(test_files)
    return _finish(f"cifar{num_classes}", xtr, ytr, xte, yte, num_classes)


def load_imagenet16(root: str | Path, num_classes: int = 120) -> ArrayDataset:
    """ImageNet16-120 in NAS-Bench-201's format: ``train_data_batch_1..10`` and ``val_data``
    under ``root``; 1-based labels, classes ``≤ num_classes`` kept (as 0-based)."""
    root = Path(root)
    if not (root / "train_data_batch_1").is_file():
        raise DataError(f"ImageNet16 not found: expected {root}/train_data_batch_1..10 and val_data")
    valid = next((root / n for n in ("val_data", "valid_data") if (root / n).is_file()), None)
    if valid is None:
        raise DataError(f"ImageNet16: missing {root}/val_data")

    def read(paths):
        xs, ys = [], []
        for path in paths:
            x, y = _images(_unpickle(path), path, "labels", 16)
            keep = (y >= 1) & (y <= num_classes)
            xs.append(x[keep])
            ys.append(y[keep] - 1)
        return np.concatenate(xs), np.concatenate(ys)

    xtr, ytr = read([root / f"train_data_batch_{i}" for i in range(1, 11)])
    xte, yte = read([valid])
    return _finish(f"imagenet16-{num_classes}", xtr, ytr, xte, yte, num_classes)


def augment_batch(x: torch.Tensor, generator: torch.Generator, pad: int = 4) -> torch.Tensor:
    """Random horizontal flip and random crop after zero padding (NB201's CIFAR augmentation),
    vectorized over the batch; random draws come from a CPU generator so runs are reproducible."""
    n, _, h, w = x.shape
    flip = (torch.rand(n, generator=generator) < 0.5).to(x.device)
    x = torch.where(flip.view(-1, 1, 1, 1), x.flip(3), x)
    xp = torch.nn.functional.pad(x, (pad, pad, pad, pad))
    i = torch.randint(0, 2 * pad + 1, (n,), generator=generator).to(x.device)
    j = torch.randint(0, 2 * pad + 1, (n,), generator=generator).to(x.device)
    rows = (i[:, None] + torch.arange(h, device=x.device))[:, :, None]  # (n, h, 1)
    cols = (j[:, None] + torch.arange(w, device=x.device))[:, None, :]  # (n, 1, w)
    batch = torch.arange(n, device=x.device)[:, None, None]
    return xp.permute(0, 2, 3, 1)[batch, rows, cols].permute(0, 3, 1, 2).contiguous()
