"""The configurations in ray_configs/ are valid, offline, and a misspelt field is caught.

* Cluster-launcher YAMLs: Ray's own validation — the defaults of the provider merged in
  (``prepare_config``), then the JSON schema the Ray wheel ships (``validate_config``, which needs
  no cloud SDK and no credentials). Ray's schema leaves ``provider`` and each ``node_config`` open
  (cloud APIs own those fields), so a typo there is *not* caught: tested too, as the known limit.
* KubeRay manifests: the ``ray.io/v1`` CRD schemas of KubeRay (``../shared/data/kuberay``) in
  strict mode — like ``kubectl apply --validate=strict``, an unknown field is an error.
* The commands the configs run parse with nasplug's own command line, and every Ray version the
  configs pin is the Ray version these tests run with.
"""

from __future__ import annotations

import copy
import gzip
import re
import shlex
from pathlib import Path

import pytest
import yaml

jsonschema = pytest.importorskip("jsonschema")

CONFIGS = Path(__file__).resolve().parents[1] / "ray_configs"
LAUNCHER = sorted(CONFIGS.glob("*.yaml"))
KUBERAY = {"RayCluster": CONFIGS / "kuberay" / "raycluster.yaml",
           "RayJob": CONFIGS / "kuberay" / "rayjob.yaml"}
CRD_FILES = {"RayCluster": "ray.io_rayclusters.yaml.gz", "RayJob": "ray.io_rayjobs.yaml.gz"}


def _load(path: Path) -> dict:
    return yaml.safe_load(path.read_text())


# --------------------------------------------------------------------------- cluster launcher
def _validate_launcher(config: dict) -> None:
    # Ray's own offline validation (a private module of the autoscaler; no public equivalent).
    from ray.autoscaler._private.util import prepare_config, validate_config

    validate_config(prepare_config(copy.deepcopy(config)))


def test_there_are_launcher_configs_for_a_local_machine_aws_and_gcp():
    providers = {_load(p)["provider"]["type"] for p in LAUNCHER}
    assert providers == {"local", "aws", "gcp"}


@pytest.mark.parametrize("path", LAUNCHER, ids=lambda p: p.name)
def test_launcher_config_passes_rays_validation(path, ray_module):
    _validate_launcher(_load(path))


def _cloud(path: Path) -> bool:
    return _load(path)["provider"]["type"] != "local"


CLOUD = [p for p in LAUNCHER if _cloud(p)]


def _rename(mapping: dict, old: str, new: str) -> None:
    mapping[new] = mapping.pop(old)


@pytest.mark.parametrize("path", CLOUD, ids=lambda p: p.name)
@pytest.mark.parametrize("misspell", ["top-level key", "node type key", "fractional GPU resource",
                                      "unknown head node type"])
def test_a_misspelt_launcher_field_fails(path, misspell, ray_module):
    config = _load(path)
    worker = next(name for name in config["available_node_types"] if name != config["head_node_type"])
    if misspell == "top-level key":
        _rename(config, "available_node_types", "availble_node_types")
    elif misspell == "node type key":
        _rename(config["available_node_types"][worker], "max_workers", "max_worker")
    elif misspell == "fractional GPU resource":
        config["available_node_types"][worker]["resources"]["GPU"] = 0.5
    else:
        config["head_node_type"] = "haed"
    with pytest.raises((jsonschema.ValidationError, ValueError)):
        _validate_launcher(config)


@pytest.mark.parametrize("path", CLOUD, ids=lambda p: p.name)
def test_known_limit_typos_inside_node_config_and_provider_pass(path, ray_module):
    """Ray's schema cannot know every cloud API field: these typos pass (docs say so)."""
    config = _load(path)
    config["provider"]["regoin"] = "somewhere"
    head = config["available_node_types"][config["head_node_type"]]
    head["node_config"]["InstanceTyp"] = "m5.large"
    _validate_launcher(config)


# --------------------------------------------------------------------------- KubeRay
def strict(schema):
    """A CRD's OpenAPI schema as a JSON schema that rejects unknown fields, as the API server does
    with strict field validation: every object that lists its ``properties`` allows no others
    (unless it says ``additionalProperties`` or ``x-kubernetes-preserve-unknown-fields``)."""
    if isinstance(schema, list):
        return [strict(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out = {k: strict(v) for k, v in schema.items()}
    if "properties" in schema and "additionalProperties" not in schema \
            and not schema.get("x-kubernetes-preserve-unknown-fields"):
        out["additionalProperties"] = False
    return out


def _crd_schema(folder: Path, kind: str) -> dict:
    with gzip.open(folder / CRD_FILES[kind], "rt") as fh:
        crd = yaml.load(fh, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))  # ~1 MB: libyaml
    assert crd["spec"]["names"]["kind"] == kind
    return next(v for v in crd["spec"]["versions"] if v["name"] == "v1")["schema"]["openAPIV3Schema"]


class Invalid(Exception):
    """A manifest failing its schema: ``path: message`` of the most relevant error."""


def _validate_manifest(manifest: dict, validator) -> None:
    assert manifest["apiVersion"] == "ray.io/v1" and manifest["metadata"]["name"]
    error = jsonschema.exceptions.best_match(validator.iter_errors(manifest))
    if error is not None:
        raise Invalid(f"{'/'.join(map(str, error.absolute_path))}: {error.message}")


@pytest.fixture(scope="module")
def crds(kuberay_crds):
    """Validators per kind: ``(as the CRD says, strict)``."""
    out = {}
    for kind in KUBERAY:
        schema = _crd_schema(kuberay_crds, kind)
        out[kind] = (jsonschema.Draft7Validator(schema), jsonschema.Draft7Validator(strict(schema)))
    return out


@pytest.mark.parametrize("kind", KUBERAY)
def test_kuberay_manifest_is_valid_in_strict_mode(kind, crds):
    manifest = _load(KUBERAY[kind])
    assert manifest["kind"] == kind
    _validate_manifest(manifest, crds[kind][1])


def _cluster_spec(manifest: dict) -> dict:
    return manifest["spec"]["rayClusterSpec"] if manifest["kind"] == "RayJob" else manifest["spec"]


MISSPELLINGS = {
    "worker group key": lambda m: _rename(_cluster_spec(m)["workerGroupSpecs"][0], "replicas", "replica"),
    "container key": lambda m: _rename(
        _cluster_spec(m)["headGroupSpec"]["template"]["spec"]["containers"][0], "image", "imagee"),
    "resources key": lambda m: _rename(
        _cluster_spec(m)["workerGroupSpecs"][0]["template"]["spec"]["containers"][0]["resources"],
        "limits", "limit"),
    "spec key": lambda m: _rename(_cluster_spec(m), "enableInTreeAutoscaling", "enableInTreeAutoscalling"),
}


@pytest.mark.parametrize("kind", KUBERAY)
@pytest.mark.parametrize("misspell", MISSPELLINGS)
def test_a_misspelt_kuberay_field_fails_in_strict_mode_only(kind, misspell, crds):
    manifest = _load(KUBERAY[kind])
    MISSPELLINGS[misspell](manifest)
    with pytest.raises(Invalid, match="Additional properties are not allowed"):
        _validate_manifest(manifest, crds[kind][1])
    _validate_manifest(manifest, crds[kind][0])  # the CRD schema as is accepts it: strictness is the check


@pytest.mark.parametrize("kind", KUBERAY)
def test_a_wrong_kuberay_value_fails(kind, crds):
    manifest = _load(KUBERAY[kind])
    _cluster_spec(manifest)["authOptions"]["mode"] = "tokens"
    with pytest.raises(Invalid, match="authOptions/mode: 'tokens' is not one of"):
        _validate_manifest(manifest, crds[kind][1])


# --------------------------------------------------------------------------- what the configs run
def _commands() -> list[str]:
    """Every `nasplug search` / `retrain` command in the configs (the RayJob entrypoint, comments)."""
    found = [_load(KUBERAY["RayJob"])["spec"]["entrypoint"]]
    for path in [*LAUNCHER, KUBERAY["RayCluster"]]:
        lines = [re.sub(r"^#\s*", "", line).rstrip(" \\'") for line in path.read_text().splitlines()]
        text = " ".join(lines)
        found += [m.group(0) for m in re.finditer(r"nasplug search --[^']*?--out [^\s']+", text)]
        found += [m.group(0) for m in re.finditer(r'nasplug retrain --[^"]*?--out [^\s"]+', text)]
    return found


def test_the_commands_in_the_configs_are_valid_nasplug_commands(tmp_path, ray_module):
    from nasplug.cli import build_parser
    from nasplug.commands.search import config_from_args, ray_options_from_args

    commands = _commands()
    assert len(commands) >= 6 and any(c.startswith("nasplug retrain") for c in commands)
    for command in commands:
        args = build_parser().parse_args(shlex.split(command)[1:])
        if command.startswith("nasplug retrain"):
            assert (args.launcher, args.device) == ("ray", "cuda")
            continue
        assert args.backend == "ray"
        ray_options_from_args(args)
        config_from_args(args)


def test_configs_pin_the_ray_version_the_tests_ran_with(ray_module):
    version = ray_module.__version__
    for path in LAUNCHER:
        assert f"ray[default,tune]=={version}" in path.read_text(), path.name
    for path in KUBERAY.values():
        assert _cluster_spec(_load(path))["rayVersion"] == version
        images = re.findall(r"image: (\S+)", path.read_text())
        assert images and all(image.endswith(f"ray{version}") for image in images)
    assert f"FROM rayproject/ray:{version}-" in (CONFIGS / "kuberay" / "Dockerfile").read_text()
    assert f"Ray {version}" in (CONFIGS / "README.md").read_text()
