"""Packaging: one import name (`nasplug`), in a wheel, in the editable install, in a user's project.

The repository keeps scorers/ and search_spaces/ at the top level (its fixed layout); setuptools
installs them as nasplug.scorers and nasplug.search_spaces (pyproject's package-dir). These tests
prove the three ways the package is used: a wheel built from the tracked files contains only the
`nasplug` top-level name and every module; the editable install resolves the same modules; and a
user's project with its own `scorers.py` and `search_spaces/` runs a nasplug search untouched.
"""

from __future__ import annotations

import configparser
import shutil
import subprocess
import sys
import textwrap
import zipfile
from importlib import metadata
from pathlib import Path

import pytest

from nasplug import scorers

ROOT = Path(__file__).resolve().parents[1]
PACKAGE_DIRS = {"nasplug": "nasplug", "nasplug/scorers": "scorers", "nasplug/search_spaces": "search_spaces"}


def _tracked_files() -> list[str]:
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("needs a git checkout")
    out = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True)
    return [f for f in out.stdout.decode().split("\0") if f]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """A wheel built from a copy of the tracked files (what a clean checkout holds)."""
    src = tmp_path_factory.mktemp("checkout")
    for rel in _tracked_files():
        if (ROOT / rel).is_file():
            (src / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / rel, src / rel)
    dist = tmp_path_factory.mktemp("dist")
    build = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                            "-q", "-w", str(dist), str(src)], capture_output=True, text=True, timeout=300)
    assert build.returncode == 0, build.stderr
    (path,) = dist.glob("nasplug-*.whl")
    return path


def _source_modules() -> set[str]:
    out = set()
    for installed, folder in PACKAGE_DIRS.items():
        for path in (ROOT / folder).rglob("*.py"):
            rel = path.relative_to(ROOT / folder).as_posix()
            if installed == "nasplug" and rel.split("/")[0] in ("scorers", "search_spaces"):
                continue
            out.add(f"{installed}/{rel}")
    return out


def test_wheel_has_one_top_level_name_and_every_module(wheel):
    with zipfile.ZipFile(wheel) as zf:
        names = zf.namelist()
        top_level = {n.split("/")[0] for n in names if not n.split("/")[0].endswith(".dist-info")}
        assert top_level == {"nasplug"}
        assert _source_modules() <= {n for n in names if n.endswith(".py")}
        info = next(n for n in names if n.endswith(".dist-info/entry_points.txt"))
        entry_points = configparser.ConfigParser()
        entry_points.read_string(zf.read(info).decode())
    # every built-in scorer and filter is declared, so fresh processes resolve the same names
    assert set(entry_points["nasplug.scorers"]) == set(scorers.names())
    assert entry_points["console_scripts"]["nasplug"] == "nasplug.cli:main"


def test_wheel_imports_without_the_repository(wheel, tmp_path):
    site = tmp_path / "site"
    with zipfile.ZipFile(wheel) as zf:
        zf.extractall(site)
    code = ("import nasplug, nasplug.scorers as s, nasplug.search_spaces as sp; "
            f"assert nasplug.__file__.startswith({str(site)!r}), nasplug.__file__; "
            f"assert s.__file__.startswith({str(site)!r}); "
            "print(int(s.get('dag_box', space='nb201').keep_many(sp.get('nb201').batch()).sum()))")
    env = {"PYTHONPATH": str(site), "PATH": "/usr/bin:/bin"}
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "6256"  # [C22]'s box on NB201 (docs/theory.md §2's published count)


def test_editable_install_maps_the_top_level_folders():
    import nasplug.scorers
    import nasplug.search_spaces

    assert Path(nasplug.scorers.__file__).resolve() == (ROOT / "scorers" / "__init__.py").resolve()
    spaces_init = (ROOT / "search_spaces" / "__init__.py").resolve()
    assert Path(nasplug.search_spaces.__file__).resolve() == spaces_init
    declared = {ep.name for ep in metadata.entry_points(group=scorers.registry.GROUP)}
    assert declared == set(scorers.names())
    assert "scorers" not in sys.modules and "search_spaces" not in sys.modules


def test_user_project_with_its_own_scorers_and_search_spaces(tmp_path):
    """A research project's own `scorers.py` and `search_spaces/` must never be picked up."""
    (tmp_path / "scorers.py").write_text("raise SystemExit('the user scorers.py was imported')\n")
    (tmp_path / "search_spaces").mkdir()
    (tmp_path / "search_spaces" / "__init__.py").write_text("raise SystemExit('user search_spaces')\n")
    (tmp_path / "run.py").write_text(textwrap.dedent("""
        import optuna
        from nasplug.optuna import ArchObjective, FilteredSampler

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        sampler = FilteredSampler(optuna.samplers.RandomSampler(seed=0), filter="dag_box", space="nb201")
        study = optuna.create_study(direction="maximize", sampler=sampler)
        objective = ArchObjective(lambda arch: arch.path_stats().effective_width, "nb201")
        study.optimize(objective, n_trials=8)
        print(len(study.trials), "trials, best", round(study.best_value, 3))
    """))
    out = subprocess.run([sys.executable, "run.py"], cwd=tmp_path, capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stdout + out.stderr
    assert out.stdout.startswith("8 trials")
