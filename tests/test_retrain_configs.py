"""The Ray cluster configurations of ray_configs/retrain-*.yaml validate offline against Ray's own
cluster-launcher schema (no cloud SDK, no credentials), and the commands they document exist."""

from __future__ import annotations

from pathlib import Path

import pytest

from nasplug.cli import build_parser

CONFIGS = sorted((Path(__file__).resolve().parents[1] / "ray_configs").glob("retrain-*.yaml"))


@pytest.mark.parametrize("path", CONFIGS, ids=[p.name for p in CONFIGS])
def test_cluster_config_is_valid(path):
    yaml = pytest.importorskip("yaml")
    pytest.importorskip("ray")
    from ray.autoscaler._private.util import prepare_config, validate_config

    config = yaml.safe_load(path.read_text())
    validate_config(prepare_config(config))  # raises on a misspelt or missing field
    assert config["available_node_types"]["gpu_worker"]["resources"]["GPU"] >= 1


def test_a_misspelt_field_is_caught():
    yaml = pytest.importorskip("yaml")
    pytest.importorskip("ray")
    import jsonschema
    from ray.autoscaler._private.util import prepare_config, validate_config

    config = yaml.safe_load(CONFIGS[0].read_text())
    config["available_node_types"]["gpu_worker"]["min_worker"] = 0
    with pytest.raises(jsonschema.ValidationError):
        validate_config(prepare_config(config))


def test_the_documented_command_parses():
    text = CONFIGS[0].read_text()
    line = text[text.index('"nasplug retrain'):text.index('--out /home/ubuntu/retrain"')]
    argv = line.strip('"').replace("\\\n#", " ").split()[1:] + ["--out", "x"]
    args = build_parser().parse_args(argv)
    assert (args.launcher, args.workers, args.device, args.top) == ("ray", 4, "cuda", 5)
