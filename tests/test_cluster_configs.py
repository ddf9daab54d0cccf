"""The Ray cluster configs in cluster/ validate offline, with Ray's and KubeRay's own rules where they exist.

A config that fails here would fail at `ray up`, `ray job submit` or `kubectl apply`, after minutes of cloud
time; so the launcher config goes through Ray's own ``prepare_config``/``validate_config`` (ray-schema.json),
the runtime env through the job CLI's parsing, ``RuntimeEnv`` and Ray's packager, and every ``ntg`` command
they or cluster/README.md give through ``ntg``'s own parser. KubeRay's CRD schemas are ~2 MB, too large to
vendor: the manifests are checked for the fields KubeRay requires, and against the CRDs when
``KUBERAY_CRD_DIR`` points at KubeRay's ``ray-operator/config/crd/bases``. No network, no cloud call.
"""

from __future__ import annotations

import argparse
import copy
import re
import shlex
import tomllib
import zipfile
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from conftest import REPO

CLUSTER = REPO / "cluster"
AWS = CLUSTER / "aws-gpu.yaml"
RUNTIME_ENV = CLUSTER / "runtime_env.yaml"
RAYCLUSTER = CLUSTER / "kuberay" / "raycluster.yaml"
RAYJOB = CLUSTER / "kuberay" / "rayjob-sweep.yaml"
SHARED = "/mnt/shared"
# What `ntg sweep` passes to ray.init(runtime_env={"env_vars": ...}) (ntg/search/driver.py, ray_session): a
# job runtime env that sets one of these keys too makes Ray refuse to start the sweep's driver.
SWEEP_DRIVER_ENV = {"RAY_AUTH_MODE": "disabled", "OMP_NUM_THREADS": "2"}


def load_all(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc is not None]


def torch_requirement() -> str:
    """The torch range of pyproject.toml, which every config must install."""
    deps = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    return next(d for d in deps if re.match(r"torch\b", d))


def test_every_file_parses() -> None:
    files = sorted(CLUSTER.rglob("*.yaml"))
    assert {AWS, RUNTIME_ENV, RAYCLUSTER, RAYJOB} <= set(files)
    for path in files:
        docs = load_all(path)
        assert docs and all(isinstance(d, dict) for d in docs), path


def test_launcher_config_passes_rays_schema() -> None:
    from ray.autoscaler._private.util import prepare_config, validate_config

    config = yaml.safe_load(AWS.read_text())
    prepared = prepare_config(copy.deepcopy(config))  # what `ray up` does before any cloud call
    validate_config(prepared)
    types = prepared["available_node_types"]
    head = types[prepared["head_node_type"]]
    workers = [t for name, t in types.items() if name != prepared["head_node_type"]]
    assert head["resources"] == {"CPU": 0}, "trials must not land on the head"
    assert len(workers) == 1 and workers[0]["node_config"]["InstanceType"].startswith(("g6", "g5"))
    assert 1 <= workers[0]["min_workers"] < workers[0]["max_workers"] <= prepared["max_workers"]
    assert prepared["idle_timeout_minutes"] > 0
    setup = " ".join(prepared["setup_commands"])
    assert torch_requirement() in setup and "download.pytorch.org/whl/cu" in setup and "~/ntg" in setup
    assert prepared["file_mounts"] == {"~/ntg": "."}
    assert all(f"{SHARED}:{SHARED}" in o for o in prepared["docker"]["run_options"] if o.startswith("-v"))
    for command in prepared["head_start_ray_commands"][1:] + prepared["worker_start_ray_commands"][1:]:
        assert "RAY_AUTH_MODE=disabled ray start" in command

    broken = copy.deepcopy(config)
    broken["available_node_types"]["ray.worker.gpu"]["min_worker"] = 1  # a typo Ray's schema must reject
    with pytest.raises(jsonschema.ValidationError, match="min_worker"):
        validate_config(prepare_config(broken))


def submitted_runtime_env() -> dict[str, Any]:
    """The runtime env as `ray job submit --working-dir . --runtime-env cluster/runtime_env.yaml` builds it."""
    from ray.dashboard.modules.dashboard_sdk import parse_runtime_env_args

    return parse_runtime_env_args(runtime_env=str(RUNTIME_ENV), working_dir=str(REPO))


def test_runtime_env_passes_rays_validation_and_merges_with_the_sweep_driver() -> None:
    from ray.runtime_env import RuntimeEnv
    from ray.runtime_env.runtime_env import _merge_runtime_env

    env = RuntimeEnv(**submitted_runtime_env())
    assert env.working_dir() == str(REPO)
    assert env.pip_config()["packages"] == [torch_requirement(), "${RAY_RUNTIME_ENV_CREATE_WORKING_DIR}"]
    assert not set(env.env_vars()) & set(SWEEP_DRIVER_ENV)
    assert _merge_runtime_env(env, RuntimeEnv(env_vars=SWEEP_DRIVER_ENV)) is not None
    # The same check catches the conflict it exists for.
    clashing = RuntimeEnv(**{**env, "env_vars": {**env.env_vars(), "OMP_NUM_THREADS": "1"}})
    assert _merge_runtime_env(clashing, RuntimeEnv(env_vars=SWEEP_DRIVER_ENV)) is None


def test_the_working_dir_upload_has_the_project_and_nothing_heavy(tmp_path: Path) -> None:
    from ray._private.runtime_env.packaging import PACKAGE_SIZE_WARNING, create_package

    env = submitted_runtime_env()
    package = tmp_path / "working_dir.zip"
    create_package(env["working_dir"], package, include_gitignore=True, excludes=env["excludes"])
    names = zipfile.ZipFile(package).namelist()
    assert {"pyproject.toml", "ntg/__init__.py", "ntg/cli/sweep.py", "search_spaces/transformer.yaml"} <= set(names)
    heavy = (".git/", ".venv/", "data/", "artifacts/", "runs/", "sweeps/", ".ntg-cache/")
    assert not [n for n in names if n.startswith(heavy) or "__pycache__" in n]
    assert package.stat().st_size < PACKAGE_SIZE_WARNING


def pod_containers(group: dict[str, Any]) -> list[dict[str, Any]]:
    return group["template"]["spec"]["containers"]


def check_ray_cluster_spec(spec: dict[str, Any], claim: str) -> None:
    """The fields KubeRay requires (and the ones this project relies on) in a RayCluster spec."""
    version = spec["rayVersion"]
    head = spec["headGroupSpec"]
    assert isinstance(head["rayStartParams"], dict) and head["rayStartParams"]["num-cpus"] == "0"
    assert spec["enableInTreeAutoscaling"] is True and spec["autoscalerOptions"]["idleTimeoutSeconds"] > 0
    groups = spec["workerGroupSpecs"]
    assert groups and len({g["groupName"] for g in groups}) == len(groups)
    for group in [head, *groups]:
        containers = pod_containers(group)
        assert containers and all(c["name"] and c["image"].startswith(f"rayproject/ray:{version}-") for c in containers)
        assert {"name": "RAY_AUTH_MODE", "value": "disabled"} in containers[0]["env"]
        assert any(m["mountPath"] == SHARED for m in containers[0]["volumeMounts"])
        claims = [v["persistentVolumeClaim"]["claimName"] for v in group["template"]["spec"]["volumes"]
                  if "persistentVolumeClaim" in v]
        assert claims == [claim]
    for group in groups:
        assert isinstance(group["rayStartParams"], dict)
        assert 1 <= group["minReplicas"] <= group["replicas"] <= group["maxReplicas"]
        resources = pod_containers(group)[0]["resources"]
        assert int(resources["limits"]["nvidia.com/gpu"]) >= 1
        assert resources["requests"] == resources["limits"]


def test_raycluster_carries_kuberays_required_fields() -> None:
    import ray

    cluster, claim = load_all(RAYCLUSTER)
    assert (cluster["apiVersion"], cluster["kind"], cluster["metadata"]["name"]) == ("ray.io/v1", "RayCluster", "ntg")
    assert (claim["apiVersion"], claim["kind"]) == ("v1", "PersistentVolumeClaim")
    assert claim["spec"]["accessModes"] == ["ReadWriteMany"]
    check_ray_cluster_spec(cluster["spec"], claim["metadata"]["name"])
    assert cluster["spec"]["rayVersion"] == ray.__version__, "the cluster's Ray must be the one ntg is tested on"


def test_rayjob_runs_a_sweep_on_the_same_cluster_spec() -> None:
    from ray.runtime_env import RuntimeEnv

    (job,) = load_all(RAYJOB)
    cluster, claim = load_all(RAYCLUSTER)
    assert (job["apiVersion"], job["kind"]) == ("ray.io/v1", "RayJob") and job["metadata"]["name"]
    spec = job["spec"]
    assert spec["rayClusterSpec"] == cluster["spec"], "rayjob-sweep.yaml's cluster drifted from raycluster.yaml"
    check_ray_cluster_spec(spec["rayClusterSpec"], claim["metadata"]["name"])
    assert spec["shutdownAfterJobFinishes"] is True and spec["ttlSecondsAfterFinished"] > 0
    assert spec["submitterConfig"]["backoffLimit"] >= 1
    assert spec["submitterPodTemplate"]["spec"]["restartPolicy"] == "Never"
    assert "ntg sweep " in spec["entrypoint"] and "--address auto" in spec["entrypoint"]

    job_env = RuntimeEnv(**yaml.safe_load(spec["runtimeEnvYAML"]))
    file_env = submitted_runtime_env()
    assert job_env.working_dir().startswith("https://") and job_env.working_dir().endswith(".zip")
    assert job_env.pip_config() == RuntimeEnv(pip=file_env["pip"]).pip_config()
    assert file_env["env_vars"].items() <= job_env.env_vars().items()
    assert not set(job_env.env_vars()) & set(SWEEP_DRIVER_ENV)


def ntg_commands() -> dict[str, list[list[str]]]:
    """Every `ntg ...` command in cluster/: the RayJob's entrypoint, README.md's bash blocks and the runtime
    env's comment (after `-- ` in `ray job submit` lines too), each as an argv without the leading `ntg`."""
    readme = (CLUSTER / "README.md").read_text()
    texts = {
        "entrypoint": yaml.safe_load(RAYJOB.read_text())["spec"]["entrypoint"],
        "runtime_env.yaml": RUNTIME_ENV.read_text(),  # its header comment gives the submit command
        "README.md": "\n".join(re.findall(r"```bash\n(.*?)```", readme, flags=re.S)),
    }
    from ntg.cli import build_parser

    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    command = re.compile(rf"(.*\s--\s+)?ntg\s+({'|'.join(map(re.escape, sub.choices))})\b")
    found: dict[str, list[list[str]]] = {}
    for name, text in texts.items():
        text = re.sub(r"\\\n\s*#?\s*", " ", text)  # continuation lines, also inside YAML comments
        for line in text.splitlines():
            line = line.strip().lstrip("#").strip()
            for part in re.split(r"&&|;", line):
                if not command.match(part.strip()):
                    continue
                words = shlex.split(part, comments=True)
                if "--" in words:
                    words = words[words.index("--") + 1:]
                if words[:1] == ["ntg"]:
                    found.setdefault(name, []).append(words[1:])
    return found


def test_every_ntg_command_in_the_configs_and_readme_parses(capsys: pytest.CaptureFixture[str]) -> None:
    from ntg.cli import build_parser

    found = ntg_commands()
    assert {"entrypoint", "runtime_env.yaml", "README.md"} <= set(found)
    sweeps = [argv for argvs in found.values() for argv in argvs if argv[0] == "sweep"]
    assert len(sweeps) >= 4 and any(a[:2] == ["data", "prepare"] for a in found["entrypoint"])
    for name, argvs in found.items():
        for argv in argvs:
            try:
                args = build_parser().parse_args(argv)
            except SystemExit:
                pytest.fail(f"{name}: `ntg {shlex.join(argv)}` does not parse: {capsys.readouterr().err.strip()}")
            if argv[0] == "sweep":
                assert args.address == "auto", f"{name}: a sweep submitted as a job joins the cluster"
                assert str(args.out).startswith((SHARED, "s3://", "gs://")) and str(args.data).startswith(SHARED)
