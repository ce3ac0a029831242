"""The scorer registry: entry points (built-in and third-party), parameter errors vs real bugs."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from nasplug import scorers
from nasplug.errors import NasplugError
from nasplug.search import resolve_filter, resolve_scorer


def test_unknown_parameter_is_a_user_error():
    with pytest.raises(NasplugError, match="bad parameters for 'dag_box'"):
        scorers.get("dag_box", fraction=0.5, no_such_option=1)
    with pytest.raises(NasplugError, match="bad parameters for 'nngp_lambda_min'"):
        scorers.get("nngp_lambda_min", n_sample=32)  # misspelt n_samples


def test_a_factory_bug_surfaces_as_itself():
    @scorers.register("buggy_for_test", "scorer", "raises TypeError inside")
    def buggy():
        return len(None)  # a real bug: TypeError from inside the factory

    try:
        with pytest.raises(TypeError, match="NoneType"):
            scorers.get("buggy_for_test")
    finally:
        scorers.registry._REGISTRY.pop("buggy_for_test")


def test_resolvers_check_the_kind():
    with pytest.raises(NasplugError, match="is a scorer, not a filter"):
        resolve_filter("effective_depth", "nb201")
    with pytest.raises(NasplugError, match="unknown filter 'nope'"):
        resolve_filter("nope", "nb201")
    with pytest.raises(NasplugError, match="is a filter, not a scorer"):
        resolve_scorer("dag_box")
    assert resolve_filter("none", "nb201") is None and resolve_scorer(None) is None


def test_filter_fitted_on_the_space_it_is_resolved_for():
    box5 = resolve_filter("dag_box", "dag:5")
    box201 = resolve_filter("dag_box", "nb201")
    assert box5.depth_range != box201.depth_range  # fitted on dag:5's own (d̄, m̄) range


def _run(code: str, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True,
                          timeout=120, **kwargs)


def test_a_fresh_process_resolves_names_loading_only_their_module():
    out = _run("""
        import sys
        from nasplug import scorers
        s = scorers.get("nngp_lambda_min")
        print(s.score("2_02_002") > 0, "torch" in sys.modules)
        scorers.get("num_params")
        print("torch" in sys.modules)
    """)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["True", "False", "True"]


def test_third_party_scorer_through_an_entry_point(tmp_path):
    """A plugin package declares its scorer in the entry-point group; a fresh process finds it."""
    (tmp_path / "myplugin.py").write_text(textwrap.dedent("""
        from nasplug.scorers import BatchScorer, register
        from nasplug.graph import live_edge_mask

        class LiveEdges(BatchScorer):
            name = "live_edges"

            def score_batch(self, batch):
                return live_edge_mask(batch).sum(axis=1).astype(float)

        @register("live_edges", "scorer", "number of live edges")
        def live_edges():
            return LiveEdges()
    """))
    info = tmp_path / "myplugin-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: myplugin\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text("[nasplug.scorers]\nlive_edges = myplugin:live_edges\n")
    out = _run("""
        from nasplug import scorers
        print(scorers.get("live_edges").score("2_21_112"), "live_edges" in scorers.available("scorer"))
    """, cwd=tmp_path, env={"PYTHONPATH": str(tmp_path), "PATH": "/usr/bin:/bin"})
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["6.0", "True"]


def test_pruning_sampler_is_a_deprecated_alias():
    from nasplug.optuna import FilteredSampler, PruningSampler

    with pytest.warns(FutureWarning, match="FilteredSampler"):
        sampler = PruningSampler(filter="dag_box", space="nb201")
    assert isinstance(sampler, FilteredSampler)
