"""Trainer, datasets and ``nasplug train``: loss goes down on digits, divergence is a result,
callbacks, determinism, the LR rule by hand, and the on-disk formats with tiny fake files."""

from __future__ import annotations

import json
import math
import pickle

import numpy as np
import pytest
import torch

from nasplug.cli import main
from nasplug.data import augment_batch, load_cifar, load_dataset, load_digits, load_imagenet16
from nasplug.errors import DataError
from nasplug.models import build_mlp, build_nb201
from nasplug.train import TrainingDiverged, lr_schedule, principled_lr, train, train_arch

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def digits():
    return load_digits()


def test_digits_shapes(digits):
    assert digits.input_shape == (1, 8, 8) and digits.in_dim == 64 and digits.num_classes == 10
    assert digits.sizes() == {"train": 1079, "valid": 359, "test": 359}


def test_digits_splits_partition_scikit_learns_images():
    from collections import Counter

    from sklearn.datasets import load_digits as sk_digits

    bunch = sk_digits()
    everything = Counter(tuple(r) for r in bunch.data.astype(int))
    data = load_digits()
    # the standardization is one affine map (train mean, std): undo it from the pixel range 0..16
    lo, hi = float(data.x_train.min()), float(data.x_train.max())

    def rows(x):
        raw = (x.reshape(len(x), -1).numpy() - lo) * 16.0 / (hi - lo)
        return Counter(tuple(r) for r in np.rint(raw).astype(int))

    train, valid, test = rows(data.x_train), rows(data.x_valid), rows(data.x_test)
    assert train + valid + test == everything  # a partition of the 1,797 images
    # the test split does not depend on how much validation is held out
    assert rows(load_digits(valid_fraction=0.0).x_test) == test
    assert load_digits(valid_fraction=0.0).sizes() == {"train": 1438, "valid": 0, "test": 359}


def test_training_reduces_loss_on_digits(digits):
    net = build_mlp("2_21_112", digits.in_dim, 64, 10, seed=0)
    result = train(net, digits, epochs=3, lr=0.05, progress=False, device="cpu")
    assert result.ok and result.epochs_run == 3
    losses = [m["train_loss"] for m in result.history]
    assert losses[-1] < 0.5 * math.log(10)  # well below chance (log 10 = 2.30)
    assert losses[-1] < losses[0]
    assert result.test_acc > 0.85


def test_cpu_runs_are_deterministic(digits):
    runs = [train(build_mlp("2_02_002", 64, 32, 10, seed=1), digits, epochs=2, lr=0.05, seed=4,
                  progress=False, device="cpu").history for _ in range(2)]
    assert [m["train_loss"] for m in runs[0]] == [m["train_loss"] for m in runs[1]]


def test_absurd_lr_returns_diverged(digits):
    result = train(build_mlp("2_22_222", 64, 32, 10, seed=0), digits, epochs=3, lr=1e6,
                   progress=False, device="cpu")
    assert isinstance(result, TrainingDiverged)
    assert result.status == "diverged" and not result.ok
    assert "nan" in result.reason or "inf" in result.reason


def test_callback_sees_every_epoch_and_its_exceptions_propagate(digits):
    seen = []

    class Stop(Exception):
        pass

    def callback(epoch, metrics):
        seen.append((epoch, set(metrics)))
        if epoch == 2:
            raise Stop

    with pytest.raises(Stop):
        train(build_mlp("2", 64, 16, 10), digits, epochs=5, lr=0.05, callback=callback, progress=False,
              device="cpu")
    assert [e for e, _ in seen] == [1, 2]
    assert {"train_loss", "valid_acc", "lr"} <= seen[0][1] and "test_acc" not in seen[0][1]


def test_resumed_run_is_bit_identical_to_an_uninterrupted_one(digits):
    """Interrupt after epoch 2 (the state saved then goes through torch.save/load, as a checkpoint
    would), resume in a freshly built model: weights, optimizer and metrics equal the straight run."""
    import io

    kw = dict(epochs=4, lr=0.05, seed=3, warmup_epochs=1, augment=False, progress=False, device="cpu")
    straight = build_mlp("2_21_112", 64, 32, 10, seed=0)
    full = train(straight, digits, **kw)

    saved = {}

    class Killed(Exception):
        pass

    def on_state(epoch, state):
        buf = io.BytesIO()
        torch.save(state, buf)
        saved[epoch] = buf.getvalue()

    def kill(epoch, metrics):
        if epoch == 2:
            raise Killed

    with pytest.raises(Killed):
        train(build_mlp("2_21_112", 64, 32, 10, seed=0), digits, callback=kill, on_state=on_state, **kw)
    assert sorted(saved) == [1, 2]
    state = torch.load(io.BytesIO(saved[2]), weights_only=False)
    resumed_net = build_mlp("2_21_112", 64, 32, 10, seed=7)  # another init: the state must win
    epochs_seen = []
    resumed = train(resumed_net, digits, state=state, callback=lambda e, m: epochs_seen.append(e), **kw)
    assert epochs_seen == [3, 4]
    assert [m["train_loss"] for m in resumed.history] == [m["train_loss"] for m in full.history]
    assert resumed.test_acc == full.test_acc and resumed.epochs_run == 4
    for a, b in zip(straight.state_dict().values(), resumed_net.state_dict().values()):
        assert torch.equal(a, b)


def test_state_is_a_copy_not_a_view_of_the_live_model(digits):
    states = []
    net = build_mlp("2", 64, 16, 10, seed=0)
    train(net, digits, epochs=2, lr=0.05, progress=False, device="cpu",
          on_state=lambda e, s: states.append(s))
    first, second = (s["model"] for s in states)
    assert any(not torch.equal(first[k], second[k]) for k in first)   # epoch 1 was not overwritten
    assert all(torch.equal(second[k], v) for k, v in net.state_dict().items())


def test_resuming_a_finished_run_returns_its_result(digits):
    states = []
    kw = dict(epochs=2, lr=0.05, progress=False, device="cpu")
    full = train(build_mlp("2", 64, 16, 10, seed=0), digits, on_state=lambda e, s: states.append(s), **kw)
    again = train(build_mlp("2", 64, 16, 10, seed=0), digits, state=states[-1], **kw)
    assert again.ok and again.epochs_run == 2 and again.test_acc == full.test_acc


def test_lr_schedule_by_hand():
    assert lr_schedule(0, 100, 10) == pytest.approx(0.1)
    assert lr_schedule(9, 100, 10) == pytest.approx(1.0)
    assert lr_schedule(10, 100, 10) == pytest.approx(1.0)  # cosine starts at the peak
    assert lr_schedule(55, 100, 10) == pytest.approx(0.5)  # half way through the cosine
    assert lr_schedule(0, 100, 0) == pytest.approx(1.0)


def test_base_lr_is_scaled_by_the_path_rule():
    # chain of 3 linear edges, offset 3, base depth 3: sqrt(3³ / 6³) [C24 eq. 8]
    assert principled_lr("2_02_002", 0.2, "mlp", offset=3) == pytest.approx(0.2 * math.sqrt(27 / 216))
    result = train_arch("2_02_002", "digits", base_lr=0.2, lr_offset=3, epochs=1, width=16,
                        progress=False, device="cpu")
    assert result.lr == pytest.approx(0.2 * math.sqrt(27 / 216))
    assert result.info["params"] > 0


def test_variance_weighted_path_option_reaches_training(digits):
    # 2_22: two paths (depths 1, 2) of weight 1/2 each -> Σ w L³ = (64 + 125) / 2 against 27
    expected = 0.2 * math.sqrt(27 / 94.5)
    assert principled_lr("2_22", 0.2, "mlp", path_weights="target") == pytest.approx(expected)
    result = train_arch("2_22", digits, base_lr=0.2, lr_path_weights="target", epochs=1, width=16,
                        max_steps=2, progress=False, device="cpu")
    assert result.lr == pytest.approx(expected) and "path weights target" in result.info["lr_rule"]


# ---------------------------------------------------------------------- on-disk datasets
def _dump(path, obj):
    with open(path, "wb") as fh:
        pickle.dump(obj, fh)


def _fake_images(rng, n, side):
    return rng.integers(0, 256, size=(n, 3 * side * side), dtype=np.uint8)


def test_fake_cifar10_and_100(tmp_path):
    rng = np.random.default_rng(0)
    c10 = tmp_path / "cifar-10-batches-py"
    c10.mkdir()
    for i in range(1, 6):  # bytes keys, like the real Python-2 pickles
        _dump(c10 / f"data_batch_{i}", {b"data": _fake_images(rng, 4, 32), b"labels": [i % 10] * 4})
    _dump(c10 / "test_batch", {b"data": _fake_images(rng, 3, 32), b"labels": [0, 1, 9]})
    data = load_dataset("cifar10", tmp_path)
    assert data.x_train.shape == (20, 3, 32, 32) and data.x_train.dtype == torch.uint8
    assert data.y_test.tolist() == [0, 1, 9] and data.num_classes == 10
    x = data.normalize(data.x_train)
    assert x.dtype == torch.float32
    assert x.mean(dim=(0, 2, 3)).abs().max() < 1e-4  # per-channel standardization
    c100 = tmp_path / "cifar-100-python"
    c100.mkdir()
    _dump(c100 / "train", {"data": _fake_images(rng, 5, 32), "fine_labels": [0, 50, 99, 3, 4]})
    _dump(c100 / "test", {"data": _fake_images(rng, 2, 32), "fine_labels": [99, 0]})
    assert load_cifar(c100, 100).y_train.tolist() == [0, 50, 99, 3, 4]
    # a short NB201 run on the fake CIFAR (tiny C)
    result = train_arch((3, 3, 2, 1, 3, 2), data, model="nb201", width=4, lr=0.01, epochs=1,
                        batch_size=8, progress=False, device="cpu")
    assert result.ok and result.info["params"] == sum(
        p.numel() for p in build_nb201((3, 3, 2, 1, 3, 2), 10, C=4).parameters())


def test_fake_imagenet16_keeps_120_classes(tmp_path):
    rng = np.random.default_rng(1)
    for i in range(1, 11):
        _dump(tmp_path / f"train_data_batch_{i}", {"data": _fake_images(rng, 3, 16), "labels": [1, 120, 121]})
    _dump(tmp_path / "val_data", {"data": _fake_images(rng, 2, 16), "labels": [200, 5]})
    data = load_imagenet16(tmp_path)
    assert data.x_train.shape == (20, 3, 16, 16)
    assert sorted(set(data.y_train.tolist())) == [0, 119]  # 1-based, ≤ 120 kept
    assert data.y_test.tolist() == [4] and data.num_classes == 120


def test_missing_and_corrupt_data_are_data_errors(tmp_path):
    with pytest.raises(DataError, match="data-root"):
        load_dataset("cifar10")
    with pytest.raises(DataError, match="not found"):
        load_dataset("cifar10", tmp_path)
    with pytest.raises(DataError, match="does not exist"):
        load_dataset("imagenet16-120", tmp_path / "nope")
    with pytest.raises(DataError, match="unknown dataset"):
        load_dataset("mnist")
    (tmp_path / "train_data_batch_1").write_bytes(b"not a pickle")
    _dump(tmp_path / "val_data", {"data": _fake_images(np.random.default_rng(0), 1, 16), "labels": [1]})
    with pytest.raises(DataError, match="cannot read"):
        load_imagenet16(tmp_path)
    (tmp_path / "train_data_batch_1").unlink()
    c10 = tmp_path / "cifar-10-batches-py"
    c10.mkdir()
    _dump(c10 / "data_batch_1", {"data": np.zeros((2, 10), np.uint8), "labels": [0, 1]})
    with pytest.raises(DataError, match="expected 'data' of shape"):
        load_cifar(tmp_path)


def test_augment_flips_and_crops():
    x = torch.arange(2 * 3 * 4 * 4, dtype=torch.float32).view(2, 3, 4, 4)
    out = augment_batch(x, torch.Generator().manual_seed(0), pad=0)  # no padding: flips only
    for i in range(2):
        assert torch.equal(out[i], x[i]) or torch.equal(out[i], x[i].flip(2))
    padded = augment_batch(x, torch.Generator().manual_seed(1), pad=2)
    assert padded.shape == x.shape


# ---------------------------------------------------------------------- CLI
def test_cli_train_smoke(capsys):
    assert main(["train", "2_02_002", "--epochs", "1", "--width", "16", "--json", "--device", "cpu"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["status"] == "ok" and out["epochs_run"] == 1 and out["info"]["model"] == "mlp"
    assert main(["train", "2_02_002", "--epochs", "1", "--width", "16", "--no-progress", "--lr", "0.05"]) == 0
    assert "status: ok" in capsys.readouterr().out


def test_cli_train_user_errors(capsys, tmp_path):
    assert main(["train", "2_02_002", "--dataset", "cifar10", "--data-root", str(tmp_path)]) == 2
    assert "not found" in capsys.readouterr().err
    assert main(["train", "|none~0|+|none~0|none~1|", "--epochs", "1"]) == 2  # no path: no LR
    assert "no input→output path" in capsys.readouterr().err


def test_train_arch_scales_base_lr_against_the_named_base_network():
    from nasplug.train import train_arch

    # base = the network the base LR was tuned on: the same architecture gets exactly base_lr
    result = train_arch("2_01_001_0001", epochs=1, base_lr=0.2, lr_base="2_01_001_0001", progress=False)
    assert result.lr == pytest.approx(0.2)
    # a chain twice as deep: sqrt(4³ / 5³) with offset 3 (paths of depth 1+3 vs 2+3)
    deeper = train_arch("2_02_001_0001", epochs=1, base_lr=0.2, lr_base="2_01_001_0001", progress=False)
    assert deeper.lr == pytest.approx(0.2 * (64 / 125) ** 0.5)
