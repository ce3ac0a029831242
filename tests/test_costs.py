"""nasplug.search.costs: closed-form parameters and FLOPs against the networks the builders really
build (torch's parameter count, FLOPs counted by forward hooks), published NAS-Bench-201 counts,
the vectorized whole-space form, and the latency protocol (warm-up, repeats, median, cache)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from nasplug import ArchGraph, search_spaces
from nasplug.errors import NasplugError
from nasplug.models import build_nb201, count_parameters
from nasplug.models.measures import count_flops
from nasplug.search.costs import LatencyMeter, Network, dataset_shape, live_cell

torch.set_num_threads(1)
NB201 = search_spaces.get("nb201")
DAG5 = search_spaces.get("dag:5")
#: Cells with edge cases: nothing, no input→output path, only skips, dead convolutions, everything.
SPECIAL = [
    "|none~0|+|none~0|none~1|+|none~0|none~1|none~2|",
    "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|none~0|none~1|none~2|",
    "|skip_connect~0|+|skip_connect~0|skip_connect~1|+|skip_connect~0|skip_connect~1|skip_connect~2|",
    "|none~0|+|nor_conv_3x3~0|nor_conv_1x1~1|+|nor_conv_1x1~0|none~1|none~2|",
    "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|nor_conv_3x3~0|nor_conv_3x3~1|nor_conv_3x3~2|",
]


def _sample(space, n, seed=0):
    rng = np.random.default_rng(seed)
    return [space.from_digits(d) for d in space.sample_digits(n, rng)]


def _built(network: Network, arch: ArchGraph) -> tuple[int, int]:
    """Parameters of the network without its dead edges, FLOPs of a forward pass of the full one."""
    params = count_parameters(network.build(live_cell(arch)))
    flops = count_flops(network.build(arch), network.input_shape)
    return params, flops


@pytest.mark.parametrize("model, dataset", [("nb201", "cifar10"), ("nb201", "ImageNet16-120"),
                                            ("nb201", "cifar100"), ("cnn", "digits"), ("mlp", "digits"),
                                            ("mlp", "cifar10")])
def test_closed_forms_equal_the_built_networks_on_nb201_cells(model, dataset):
    network = Network.for_dataset(model, dataset)
    for arch in [*map(ArchGraph.parse, SPECIAL), *_sample(NB201, 6)]:
        assert network.costs(arch) == _built(network, arch), str(arch)


@pytest.mark.parametrize("model, width", [("mlp", None), ("mlp", 32), ("cnn", None), ("cnn", 8)])
def test_closed_forms_equal_the_built_networks_on_dag_cells(model, width):
    # DAG codes use `linear` edges: a Linear layer in the MLP, a 3x3 conv in the CNN.
    network = Network.for_dataset(model, "digits", width)
    for arch in _sample(DAG5, 6, seed=1) + [ArchGraph.parse("2_21_112"), ArchGraph.parse("0_00_000")]:
        assert network.costs(arch) == _built(network, arch), str(arch)


@pytest.mark.parametrize("naslib, published", [
    ((4, 3, 3, 3, 2, 3), 428_346),
    ((4, 1, 0, 0, 0, 3), 101_306),
    ((3, 3, 2, 1, 3, 2), 643_386),
])
def test_nb201_parameters_equal_published_counts_when_no_edge_is_dead(naslib, published):
    arch = ArchGraph.parse(naslib)
    assert arch.live_edges() == arch.edges  # the benchmark counts dead convs too; these have none
    assert Network.for_dataset("nb201", "cifar10").costs(arch)[0] == published


def test_dead_convolutions_cost_nothing():
    arch = ArchGraph.parse(SPECIAL[3])  # the 3x3 conv into node 2 and the 1x1 out of it are dead
    network = Network.for_dataset("nb201", "cifar10")
    assert network.costs(arch) == network.costs(live_cell(arch))
    assert network.costs(arch)[0] < count_parameters(build_nb201(arch, 10))


def test_whole_space_costs_equal_the_per_cell_ones():
    network = Network.for_dataset("nb201", "cifar10")
    table = network.space_costs(NB201)
    assert table.shape == (NB201.size, 2) and table.dtype == np.int64
    for i in np.random.default_rng(0).integers(0, NB201.size, 300).tolist() + [0, NB201.size - 1]:
        assert tuple(table[i]) == network.costs(NB201.decode(i))
    dag = Network.for_dataset("cnn", "digits")
    digits = DAG5.sample_digits(50, 3)
    assert dag.space_costs(DAG5, digits).tolist() == [list(dag.costs(DAG5.from_digits(d))) for d in digits]


def test_datasets_and_bad_networks():
    assert dataset_shape("in16") == ((3, 16, 16), 120)
    assert dataset_shape("cifar-100") == ((3, 32, 32), 100)
    assert Network.for_dataset("nb201", "c10") == Network("nb201", (3, 32, 32), 10, 16)
    for make, message in [(lambda: Network.for_dataset("nb201", "mnist"), "unknown dataset"),
                          (lambda: Network("resnet", (3, 32, 32), 10), "unknown model"),
                          (lambda: Network("cnn", (64,), 10), "needs image inputs"),
                          (lambda: Network("nb201", (3, 30, 30), 10), "divisible by 4")]:
        with pytest.raises(NasplugError, match=message):
            make()


# ---------------------------------------------------------------------- latency
class FakeClock:
    """A timer whose successive readings are given: each timed pass lasts a known time."""

    def __init__(self, durations):
        self.readings = np.concatenate([[0.0, d] for d in durations]).cumsum().tolist()

    def __call__(self):
        return self.readings.pop(0)


def test_latency_is_the_median_of_the_timed_repeats_after_warmup(monkeypatch):
    network = Network.for_dataset("mlp", "digits", 16)
    durations = [0.005, 0.001, 0.003, 0.100, 0.002]  # median 3 ms; the outlier does not move it
    calls = []
    build = Network.build

    def counting_build(self, arch):  # counts the forward passes the meter runs
        net = build(self, arch)
        net.register_forward_hook(lambda *args: calls.append(1))
        return net

    monkeypatch.setattr(Network, "build", counting_build)
    meter = LatencyMeter(network, "cpu", warmup=4, repeats=5, timer=FakeClock(durations))
    assert meter("2_21_112") == pytest.approx(3.0)
    assert len(calls) == 4 + 5


def test_latency_is_cached_per_network_not_per_canonical_key():
    network = Network.for_dataset("nb201", "ImageNet16-120")
    meter = LatencyMeter(network, "cpu", warmup=1, repeats=2)
    dead = ArchGraph.parse(SPECIAL[3])
    assert meter(dead) == meter(live_cell(dead)) and len(meter) == 1  # dead edges: same network
    # One canonical key, two networks: 2·conv(x) through two skips (one conv) vs conv(x) + conv'(x).
    one = ArchGraph.parse("|nor_conv_1x1~0|+|none~0|skip_connect~1|+|none~0|skip_connect~1|skip_connect~2|")
    two = ArchGraph.parse("|none~0|+|skip_connect~0|none~1|+|nor_conv_1x1~0|none~1|nor_conv_1x1~2|")
    assert one.canonical_key() == two.canonical_key()
    assert network.costs(one)[0] < network.costs(two)[0]
    meter(one), meter(two)
    assert len(meter) == 3
    assert all(v > 0 for v in meter._cache.values())


def test_latency_settings_are_checked():
    network = Network.for_dataset("mlp", "digits")
    for kwargs in ({"repeats": 0}, {"batch_size": 0}, {"warmup": -1}):
        with pytest.raises(NasplugError):
            LatencyMeter(network, **kwargs)
