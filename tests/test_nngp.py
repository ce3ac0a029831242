"""NNGP kernels [C22 §3] checked against independent truths: closed forms worked out by hand,
brute-force path enumeration, Monte-Carlo simulation of wide random theory networks, and
spectral facts (Cauchy interlacing, homogeneity). Never against the code's own earlier output."""

from __future__ import annotations

import itertools
import math
import warnings

import networkx as nx
import numpy as np
import pytest

from nasplug import scorers, search_spaces
from nasplug.errors import NasplugError
from nasplug.graph import ArchGraph
from nasplug.theory import (
    GramError,
    check_gram,
    convergence_factor,
    default_gram,
    gram_from_data,
    kernel_stats,
    lambda_min,
    nngp_kernel,
    nngp_kernels,
    path_bound,
    relu_h,
    relu_map,
    synthetic_gram,
)

C_VALUES = [0.0, 0.25, 0.5, 0.9]


def h(c: float) -> float:
    """h written out again from docs/theory.md §3, independently of the module."""
    return (2 * c * math.asin(c) + 2 * math.sqrt(1 - c * c) + math.pi * c) / (2 * math.pi)


# ====================================================================== the ReLU map
def test_h_fixed_points():
    assert relu_h(1.0) == pytest.approx(1.0, abs=1e-15)
    assert relu_h(0.0) == pytest.approx(1 / math.pi, abs=1e-15)
    assert relu_h(-1.0) == pytest.approx(0.0, abs=1e-15)  # φ(u)φ(−u) = 0
    # round-off just outside [-1, 1] is clipped, never NaN
    assert np.isfinite(relu_h(np.array([1 + 1e-12, -1 - 1e-12]))).all()


def test_h_is_twice_the_relu_expectation():
    """h(c) = 2 E[φ(u)φ(v)] for standard Gaussians with correlation c (Monte-Carlo, 4·10⁵ draws)."""
    rng = np.random.default_rng(0)
    u, w = rng.standard_normal((2, 400_000))
    for c in (-0.6, 0.0, 0.5, 0.9):
        v = c * u + math.sqrt(1 - c * c) * w
        mc = 2 * np.mean(np.maximum(u, 0) * np.maximum(v, 0))
        assert mc == pytest.approx(h(c), abs=4e-3)


def test_relu_map_dead_units_and_sigma2():
    k = np.array([[4.0, 2.0, 0.0], [2.0, 1.0, 0.0], [0.0, 0.0, 0.0]])  # sample 2 is dead
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = relu_map(k)
    assert out[2].tolist() == [0, 0, 0] and out[:, 2].tolist() == [0, 0, 0]
    assert np.allclose(np.diag(out)[:2], [4.0, 1.0])  # σ² = 2 preserves the diagonal
    assert out[0, 1] == pytest.approx(2.0 * h(1.0))
    assert np.allclose(relu_map(k, sigma2=0.5), 0.25 * out)


# ====================================================================== [C22]'s worked examples
def lam1(c):
    return 1 - h(h(h(c)))


def lam2(c):
    return 3 * (1 - h(c))


def lam3(c):
    return 4 - (c + h(c) + 2 * h(h(c)))


EXAMPLES = {"2_02_002": lam1, "1_01_222": lam2, "2_21_112": lam3}


@pytest.mark.parametrize("c", C_VALUES)
def test_closed_forms_bound_and_kernels(c):
    """docs/theory.md §3 / [C22]: for a 2-sample Gram the eq. 12 bound, the paper kernel's λ_min and (for
    these three cells, whose skip branches never share ancestry) the exact kernel's λ_min all equal
    λ₁ = 1 − h³(c), λ₂ = 3(1 − h(c)), λ₃ = 4 − (c + h(c) + 2h²(c)): eq. 12 is tight here."""
    k0 = synthetic_gram(2, c)
    for code, closed in EXAMPLES.items():
        expected = closed(c)
        assert path_bound([code], k0)[0] == pytest.approx(expected, abs=1e-12), code
        assert lambda_min(nngp_kernel(code, k0, "paper")) == pytest.approx(expected, abs=1e-12), code
        assert lambda_min(nngp_kernel(code, k0, "exact")) == pytest.approx(expected, abs=1e-12), code
    values = [EXAMPLES[code](c) for code in EXAMPLES]
    assert values[0] < values[1] < values[2]


def test_closed_forms_published_numbers():
    k0 = synthetic_gram(2, 0.5)
    got = path_bound(list(EXAMPLES), k0)
    assert np.round(got, 3).tolist() == [0.262, 1.173, 1.523]


def test_eq12_is_not_an_upper_bound_when_depths_mix():
    """``2_11_002``: node 2 = skip(0) + skip(1) with node 1 = linear(0) mixes a depth-0 and a depth-1
    path before the last linear edge. By hand: K_2 = [[2, c + h(c)], ...], so the 2-sample
    λ_min = 2 − 2h((c + h(c))/2), while eq. 12 gives 2 − h(c) − h(h(c)), which is smaller by Jensen
    (h is convex): the path sum over-estimates the off-diagonal entry."""
    for c in (0.25, 0.5, 0.9):
        k0 = synthetic_gram(2, c)
        by_hand = 2 - 2 * h((c + h(c)) / 2)
        eq12 = 2 - h(c) - h(h(c))
        assert lambda_min(nngp_kernel("2_11_002", k0, "paper")) == pytest.approx(by_hand, abs=1e-12)
        assert lambda_min(nngp_kernel("2_11_002", k0, "exact")) == pytest.approx(by_hand, abs=1e-12)
        assert path_bound(["2_11_002"], k0)[0] == pytest.approx(eq12, abs=1e-12)
        assert eq12 < by_hand


def test_path_bound_against_enumerated_paths():
    """Eq. 12 evaluated by brute force — every input→output path via networkx, every pair i ≠ j —
    equals the histogram + largest-correlation shortcut."""
    rng = np.random.default_rng(3)
    x = rng.standard_normal((7, 5)) + 0.8 * rng.standard_normal(5)
    x *= math.sqrt(5) / np.linalg.norm(x, axis=1, keepdims=True)
    k0 = gram_from_data(x)
    np.fill_diagonal(k0, 1.0)
    space = search_spaces.get("dag:5")
    archs = [space.sample(rng) for _ in range(25)] + [ArchGraph.parse("|none~0|+|none~0|none~1|")]
    for arch in archs:
        g = arch.graph
        paths = list(nx.all_simple_paths(g, 0, arch.output)) if arch.output in nx.descendants(g, 0) else []
        depths = [sum(arch.op(a, b).is_parameterized for a, b in zip(p, p[1:])) for p in paths]

        def hd(c, d):
            for _ in range(d):
                c = h(c)
            return c

        brute = min(
            len(paths) - sum(hd(k0[i, j], d) for d in depths)
            for i, j in itertools.permutations(range(len(k0)), 2)
        )
        assert path_bound([arch], k0)[0] == pytest.approx(brute, abs=1e-12), arch


# ====================================================================== exact vs paper
def test_skip_cross_terms_double_the_kernel():
    """node1 = skip(0), node2 = skip(0) + skip(1): z_2 = 2 z_0, so C_22 = 4 K⁰; the paper's form 2 K⁰."""
    k0 = gram_from_data(np.random.default_rng(0).standard_normal((5, 3)))
    assert np.allclose(nngp_kernel("1_11", k0, "exact"), 4 * k0)
    assert np.allclose(nngp_kernel("1_11", k0, "paper"), 2 * k0)
    # pool is the identity and conv is linear in the theory network
    assert np.allclose(nngp_kernel("|avg_pool_3x3~0|+|skip_connect~0|avg_pool_3x3~1|", k0), 4 * k0)
    nb = ArchGraph.parse(
        "|nor_conv_3x3~0|+|skip_connect~0|avg_pool_3x3~1|+|none~0|skip_connect~1|nor_conv_1x1~2|"
    )
    assert np.allclose(nngp_kernel(nb, k0), nngp_kernel(nb.abstract(), k0))


def test_homogeneity_and_sigma2():
    """f₁ is positively 1-homogeneous, so every kernel is linear in the scale of K⁰, and a chain of
    d linear edges with weight variance σ² scales by (σ²/2)^d."""
    k0 = gram_from_data(np.random.default_rng(1).standard_normal((6, 4)))
    for code in ("2_21_112", "1_11_212", "2_11_011"):
        for mode in ("exact", "paper"):
            assert np.allclose(nngp_kernel(code, 3.5 * k0, mode), 3.5 * nngp_kernel(code, k0, mode))
    assert np.allclose(nngp_kernel("2_02_002", k0, sigma2=1.0), 0.5**3 * nngp_kernel("2_02_002", k0))


def test_equicorrelated_gram_is_the_two_sample_case():
    """A Gram αI + β11ᵀ keeps that form through every layer, so λ_min does not depend on N."""
    for code in ("2_21_112", "1_11_212", "2_11_011", "2_02_002"):
        small = lambda_min(nngp_kernel(code, synthetic_gram(2, 0.4)))
        large = lambda_min(nngp_kernel(code, synthetic_gram(9, 0.4)))
        assert large == pytest.approx(small, rel=1e-10)


def test_paper_kernel_obeys_interlacing():
    """Paper mode with unit-diagonal K⁰ has diagonal P (f₁ preserves the diagonal), and by Cauchy
    interlacing λ_min(K^H) <= min_{i≠j} (P − |K^H_ij|)."""
    k0 = default_gram(16, seed=2)
    space = search_spaces.get("nb201")
    idx = np.random.default_rng(4).choice(space.size, 300, replace=False)
    batch = space.batch(idx)
    kern = nngp_kernels(batch, k0, "paper")
    paths = np.array([space.decode(i).path_stats().num_paths for i in idx], dtype=float)
    assert np.allclose(np.diagonal(kern, axis1=1, axis2=2), paths[:, None])
    off = np.abs(kern) + np.eye(16)[None] * 1e300
    assert np.all(lambda_min(kern) <= (paths - off.min(axis=(1, 2))) + 1e-9)


def test_no_path_cells_score_zero_without_warnings():
    k0 = default_gram(8)
    dead = ["|none~0|+|none~0|none~1|+|none~0|none~1|none~2|",
            "|nor_conv_3x3~0|+|none~0|none~1|+|none~0|none~1|none~2|",  # nothing reaches the output
            "|none~0|+|none~0|none~1|+|none~0|nor_conv_3x3~1|none~2|"]  # dead node feeds a conv
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        kern = nngp_kernels(dead, k0)
        for name in ("nngp_lambda_min", "nngp_lambda_min_normalized", "nngp_inverse_condition",
                     "nngp_bound"):
            assert scorers.get(name, gram=k0).score_many(dead).tolist() == [0.0, 0.0, 0.0], name
    assert not kern.any()


def test_linear_cells_on_rank_deficient_gram_are_exactly_zero():
    """64 digits samples live in 61 dimensions: a purely linear (skip-only) cell has λ_min = 0,
    reported as exactly 0 rather than round-off of either sign; a cell with a ReLU is positive."""
    k0 = default_gram()
    assert np.linalg.matrix_rank(k0) <= 61
    lam = scorers.get("nngp_lambda_min").score_many(["1_11", "1_01", "2_11", "2_22"])
    assert lam[0] == 0.0 and lam[1] == 0.0
    assert lam[2] > 0 and lam[3] > 0


# ====================================================================== Monte-Carlo
def simulate_kernel(arch, x: np.ndarray, width: int, seeds, sigma2: float = 2.0,
                    sigma0_2: float = 1.0) -> np.ndarray:
    """Empirical output kernel z_H z_Hᵀ / n of wide random theory networks, averaged over seeds.

    z_0 = x W_0 with W_0 ~ N(0, σ_0²/d); z_t = Σ_skip/pool z_a + Σ_param φ(z_s) W_st,
    W_st ~ N(0, σ²/n) — written out here with torch, independently of nasplug.theory.nngp.
    """
    import torch

    arch = ArchGraph.parse(arch)
    xt = torch.as_tensor(x, dtype=torch.float32)
    n_samples, dim = xt.shape
    total = torch.zeros(n_samples, n_samples, dtype=torch.float64)
    for seed in seeds:
        gen = torch.Generator().manual_seed(seed)
        z = [xt @ (torch.randn(dim, width, generator=gen) * math.sqrt(sigma0_2 / dim))]
        for t in range(1, arch.n_nodes):
            node = torch.zeros(n_samples, width)
            for s in range(t):
                op = arch.op(s, t)
                if op.role in ("skip", "pool"):
                    node = node + z[s]
                elif op.role == "param":
                    w = torch.randn(width, width, generator=gen) * math.sqrt(sigma2 / width)
                    node = node + torch.relu(z[s]) @ w
            z.append(node)
        out = z[-1].double()
        total += out @ out.T / width
    return (total / len(seeds)).numpy()


def mc_inputs(n: int = 6, dim: int = 12, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, dim)) + 0.7 * rng.standard_normal(dim)  # correlated samples


def rel_err(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


def test_monte_carlo_exact_kernel_fast():
    """Width 2048, 4 seeds: the empirical kernel matches mode="exact" within 5 %; on node1 = skip(0),
    node2 = skip(0) + skip(1) the paper's propagation is off by 2×."""
    x = mc_inputs()
    k0 = gram_from_data(x)
    for code in ("1_11", "1_11_212", "2_11_011"):
        emp = simulate_kernel(code, x, 2048, seeds=range(4))
        exact, paper = nngp_kernel(code, k0, "exact"), nngp_kernel(code, k0, "paper")
        assert rel_err(emp, exact) < 0.05, code
        assert rel_err(emp, paper) > 0.2, code
        if code == "1_11":
            assert rel_err(emp, 2 * paper) < 0.05


@pytest.mark.slow
def test_monte_carlo_random_dags():
    """Random 5- and 6-node DAGs with skips, pooling and linear edges, σ² ∈ {2, 1}, width 4096."""
    rng = np.random.default_rng(11)
    x = mc_inputs(n=8, dim=16, seed=5)
    k0 = gram_from_data(x, sigma0_2=1.5)
    ops = ["none", "skip_connect", "avg_pool_3x3", "linear"]
    checked = 0
    while checked < 8:
        n_nodes = int(rng.integers(5, 7))
        edges = {(s, t): ops[rng.choice(4, p=[0.2, 0.35, 0.1, 0.35])]
                 for t in range(1, n_nodes) for s in range(t)}
        arch = ArchGraph(n_nodes, edges)
        if arch.path_stats().num_paths == 0:
            continue
        sigma2 = 2.0 if checked % 2 == 0 else 1.0
        emp = simulate_kernel(arch, x, 4096, seeds=range(6), sigma2=sigma2, sigma0_2=1.5)
        exact = nngp_kernel(arch, k0, "exact", sigma2=sigma2)
        assert rel_err(emp, exact) < 0.05, (str(arch), rel_err(emp, exact))
        checked += 1


# ====================================================================== batching and inputs
def test_batched_equals_scalar():
    k0 = default_gram(10, seed=1)
    for name, n in (("nb201", 40), ("dag:5", 40), ("dag:6", 15)):
        space = search_spaces.get(name)
        idx = np.random.default_rng(7).choice(space.size, n, replace=False)
        batch = space.batch(idx)
        for mode in ("exact", "paper"):
            batched = nngp_kernels(batch, k0, mode, chunk=3)
            scalar = np.stack([nngp_kernel(space.decode(i), k0, mode) for i in idx])
            assert np.allclose(batched, scalar, rtol=1e-12, atol=1e-12), (name, mode)
            stats = kernel_stats(batch, k0, mode, chunk=4)
            assert np.allclose(stats["lambda_min"], lambda_min(scalar), atol=1e-12)


def test_whole_nb201_space():
    lam = scorers.get("nngp_lambda_min").score_many(search_spaces.get("nb201").batch())
    assert lam.shape == (15_625,) and np.isfinite(lam).all() and (lam >= 0).all()
    # [C22]'s examples in NB201 clothing: conv chain < 3 parallel convs (same order as λ₁ < λ₂)
    s = scorers.get("nngp_lambda_min")
    chain = s.score("|nor_conv_3x3~0|+|none~0|nor_conv_3x3~1|+|none~0|none~1|nor_conv_3x3~2|")
    wide = s.score("|skip_connect~0|+|none~0|skip_connect~1|+|nor_conv_3x3~0|nor_conv_3x3~1|nor_conv_3x3~2|")
    assert chain < wide


def test_registered_scorers():
    names = {"nngp_lambda_min", "nngp_lambda_min_paper", "nngp_lambda_min_normalized",
             "nngp_inverse_condition", "nngp_convergence_factor", "nngp_bound"}
    assert names <= set(scorers.available("scorer"))
    k0 = synthetic_gram(2, 0.5)
    archs = ["2_02_002", "1_01_222", "2_21_112"]
    for name in ("nngp_lambda_min", "nngp_lambda_min_paper", "nngp_convergence_factor", "nngp_bound"):
        s = scorers.get(name, gram=k0)
        values = s.score_many(archs)
        order = np.argsort(values if s.higher_is_better else -values)
        assert order.tolist() == [0, 1, 2], name  # λ₁ < λ₂ < λ₃
    # the scale-free variants divide by the scale: 2×2 kernel [[P, s], [s, P]] has eigenvalues P ± s
    c = 0.5
    sums = {"2_02_002": (1, h(h(h(c)))), "1_01_222": (3, 3 * h(c)), "2_21_112": (4, c + h(c) + 2 * h(h(c)))}
    normalized = scorers.get("nngp_lambda_min_normalized", gram=k0).score_many(archs)
    inverse_cond = scorers.get("nngp_inverse_condition", gram=k0).score_many(archs)
    for arch, a, b in zip(archs, normalized, inverse_cond):
        p, s_ = sums[arch]
        assert a == pytest.approx((p - s_) / p) and b == pytest.approx((p - s_) / (p + s_)), arch
    # ... which is a genuinely different ranking: per unit of scale 1_01_222 beats 2_21_112
    assert normalized[1] > normalized[2] and inverse_cond[1] > inverse_cond[2]
    factor = scorers.get("nngp_convergence_factor", gram=k0, eta=0.2).score("2_02_002")
    assert factor == pytest.approx(1 - 0.2 * lam1(0.5) / 2)
    assert convergence_factor(np.array([0.0, 2.0]), 0.5).tolist() == [1.0, 0.5]
    # scale-free variants do not see the kernel's scale: z_2 = 2 z_0 normalizes like z_1 = z_0
    s = scorers.get("nngp_lambda_min_normalized", gram=default_gram(8))
    assert s.score("1_11") == pytest.approx(s.score("1"))


@pytest.mark.parametrize(
    "gram, message",
    [
        (np.ones((2, 3)), "square"),
        (np.ones(3), "square"),
        (np.ones((2, 2, 2)), "square"),
        (np.zeros((0, 0)), "at least"),
        (np.array([[1.0, np.nan], [np.nan, 1.0]]), "non-finite"),
        (np.array([[1.0, 0.2], [0.3, 1.0]]), "symmetric"),
        (np.array([[1.0, 2.0], [2.0, 1.0]]), "positive semi-definite"),
        ([["a", "b"], ["c", "d"]], "numeric"),
    ],
)
def test_bad_gram(gram, message):
    with pytest.raises(GramError, match=message) as info:
        nngp_kernel("2_21_112", gram)
    assert isinstance(info.value, NasplugError) and isinstance(info.value, ValueError)


def test_bad_arguments():
    with pytest.raises(GramError, match="unit-diagonal"):
        path_bound(["2_21_112"], 2 * synthetic_gram(3, 0.1))
    with pytest.raises(GramError, match="at least 2"):
        path_bound(["2_21_112"], np.ones((1, 1)))
    with pytest.raises(GramError, match="unit-diagonal"):
        scorers.get("nngp_bound", gram=2 * np.eye(3))
    with pytest.raises(NasplugError, match="mode"):
        nngp_kernel("2_21_112", np.eye(2), mode="fast")
    with pytest.raises(NasplugError, match="sigma2"):
        nngp_kernel("2_21_112", np.eye(2), sigma2=0.0)
    with pytest.raises(NasplugError, match="eta"):
        scorers.get("nngp_convergence_factor", gram=np.eye(2), eta=-1.0)
    with pytest.raises(GramError, match="correlation"):
        synthetic_gram(3, -0.9)
    with pytest.raises(GramError, match="NaN"):
        gram_from_data(np.array([[1.0, np.nan]]))
    with pytest.raises(GramError, match="n_samples"):
        default_gram(1)
    assert np.allclose(check_gram([[1.0, 0.5], [0.5, 1.0]]), [[1.0, 0.5], [0.5, 1.0]])


def test_default_gram_is_documented():
    g = default_gram()
    assert g.shape == (64, 64) and np.allclose(np.diag(g), 1.0)
    assert np.array_equal(g, default_gram(64, 0))  # seeded, reproducible
    assert not np.array_equal(g, default_gram(64, 1))
    off = g[~np.eye(64, dtype=bool)]
    assert off.min() < 0 < off.max()  # standardized pixels: correlations of both signs
