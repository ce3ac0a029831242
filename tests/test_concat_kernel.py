"""The NNGP kernel of concatenating cells (NAS-Bench-101, DARTS) against Monte-Carlo wide networks.

The simulator below writes the theory network out with numpy, independently of
``nasplug.theory.nngp``: a concat node stacks ``width/k`` coordinates of each of its ``k`` sources
(NAS-Bench-101's channel split: the first ``width mod k`` blocks get one more). Every parameterized
edge has its own fresh ``W ~ N(0, σ²/n)``, used once; given ``φ(z_s)`` the product ``φ(z_s) W`` has
independent Gaussian columns with covariance ``(σ²/n) φ(z_s) φ(z_s)ᵀ``, which is sampled exactly
without forming the ``n × n`` matrix — the same finite-width network, ``n/N`` times cheaper.
"""

from __future__ import annotations

import numpy as np
import pytest

from nasplug import ArchGraph
from nasplug.theory import gram_from_data, nngp_kernel


def simulate_kernel(arch: ArchGraph, x: np.ndarray, width: int, seeds, *, aligned: bool = True,
                    sigma2: float = 2.0) -> np.ndarray:
    """Empirical output kernel of the theory network with concatenation, mean over ``seeds``.

    ``aligned=True``: block ``i`` of a concat node holds its source's coordinates at the block's own
    positions (nasplug's rule); ``False``: the source's *first* coordinates, as NAS-Bench-101
    truncates wider inputs. The two agree for a concat node's own kernel.
    """
    n, dim = x.shape
    total = np.zeros((n, n))
    for seed in seeds:
        rng = np.random.default_rng(seed)

        def linear(h: np.ndarray, fan_in: int, var: float, rng=rng) -> np.ndarray:
            cov = var / fan_in * (h @ h.T)
            vals, vecs = np.linalg.eigh(cov)
            return (vecs * np.sqrt(np.clip(vals, 0, None))) @ rng.standard_normal((n, width))

        z = [linear(x, dim, 1.0)]
        for t in range(1, arch.n_nodes):
            node = np.zeros((n, width))
            blocks = [s for s in range(t) if arch.op(s, t).role == "concat"]
            offset = 0
            for i, a in enumerate(blocks):
                size = width // len(blocks) + (1 if i < width % len(blocks) else 0)
                src = slice(offset, offset + size) if aligned else slice(0, size)
                node[:, offset: offset + size] += z[a][:, src]
                offset += size
            for s in range(t):
                op = arch.op(s, t)
                if op.role in ("skip", "pool"):
                    node = node + z[s]
                elif op.role == "param":
                    node = node + linear(np.maximum(z[s], 0), width, sigma2)
            z.append(node)
        total += z[-1] @ z[-1].T / width
    return total / len(seeds)


def inputs(n: int = 6, dim: int = 12, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, dim)) + 0.7 * rng.standard_normal(dim)


def rel_err(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


NB101_CELL = ArchGraph.from_nb101(
    [[0, 1, 1, 0, 1], [0, 0, 1, 0, 1], [0, 0, 0, 1, 1], [0, 0, 0, 0, 1], [0, 0, 0, 0, 0]],
    ["input", "conv3x3-bn-relu", "maxpool3x3", "conv1x1-bn-relu", "output"])
DARTS_NORMAL = ArchGraph.from_darts(
    [("sep_conv_3x3", 0), ("skip_connect", 1), ("dil_conv_3x3", 0), ("max_pool_3x3", 2),
     ("sep_conv_5x5", 1), ("skip_connect", 3), ("avg_pool_3x3", 0), ("dil_conv_5x5", 4)], cell="normal")
#: a concat node read again by a skip and mixed with another skip (cross-covariances of a concat node)
MIXED = ArchGraph(6, {(0, 1): "linear", (0, 2): "linear", (1, 3): "concat", (2, 3): "concat",
                      (0, 3): "skip_connect", (3, 4): "linear", (3, 5): "skip_connect",
                      (4, 5): "skip_connect", (1, 5): "skip_connect"})


@pytest.mark.parametrize("arch", [NB101_CELL, DARTS_NORMAL, MIXED], ids=["nb101", "darts", "mixed"])
def test_concat_kernel_matches_monte_carlo(arch):
    """Width 4096, 16 seeds: within 3 % of the exact kernel; treating the concatenation as a sum is
    far off (it adds the blocks' kernels instead of averaging them)."""
    x = inputs()
    k0 = gram_from_data(x)
    emp = simulate_kernel(arch, x, 4096, range(16))
    exact = nngp_kernel(arch, k0, "exact")
    assert rel_err(emp, exact) < 0.03, rel_err(emp, exact)
    as_sum = ArchGraph(arch.n_nodes, {e: ("skip_connect" if op.role == "concat" else op)
                                      for e, op in arch.edges.items()})
    assert rel_err(emp, nngp_kernel(as_sum, k0, "exact")) > 0.3


def test_nb101_truncation_gives_the_same_output_kernel():
    """NAS-Bench-101 feeds each block from its source's first channels; a concat output's kernel is
    the same either way (only parameterized edges read it in the network)."""
    x = inputs(seed=3)
    emp = simulate_kernel(NB101_CELL, x, 4096, range(16), aligned=False)
    assert rel_err(emp, nngp_kernel(NB101_CELL, gram_from_data(x), "exact")) < 0.03


def test_concat_closed_form():
    """concat(linear(x), x) + linear(x): C = (h(K)+K)/2 + h(K) exactly (f₁ = h on a unit diagonal)."""
    from nasplug.theory import relu_map, synthetic_gram

    arch = ArchGraph(4, {(0, 1): "linear", (1, 3): "concat", (0, 2): "skip_connect", (2, 3): "concat",
                         (0, 3): "linear"})
    k0 = synthetic_gram(3, 0.4)
    expected = (relu_map(k0) + k0) / 2 + relu_map(k0)
    np.testing.assert_allclose(nngp_kernel(arch, k0, "exact"), expected, rtol=1e-12)
    np.testing.assert_allclose(nngp_kernel(arch, k0, "paper"), expected, rtol=1e-12)


def test_concat_in_path_statistics_and_init_rules():
    """Concat blocks are transparent for path counts, count once in d_in [C24 eq. 4], and pass on
    their share 1/k in the variance-weighted path histograms."""
    from nasplug.graph import ArchBatch
    from nasplug.theory.hparams import init_gains, weighted_depth_histograms

    # node 3 = concat(linear(x), skip(x)) + linear(x): paths of depths 1, 0, 1
    arch = ArchGraph(4, {(0, 1): "linear", (1, 3): "concat", (0, 2): "skip_connect", (2, 3): "concat",
                         (0, 3): "linear"})
    assert arch.path_stats().depth_histogram == (1, 2)
    assert init_gains(arch) == {(0, 1): 2.0, (0, 3): 1.0}  # d_in(3) = 1 (the blocks) + 1 (the linear)
    hist = weighted_depth_histograms(ArchBatch.from_archs([arch]))[0]
    # weights: concat blocks 1/2 each; the linear into node 3 has 1/d_in = 1/2, into node 1 1/1
    np.testing.assert_allclose(hist[:2], [0.5, 0.5 + 0.5])
