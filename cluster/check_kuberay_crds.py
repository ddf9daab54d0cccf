"""Validate the KubeRay manifests in ``cluster/kuberay/`` against KubeRay's own CRD schemas.

    python cluster/check_kuberay_crds.py PATH/TO/kuberay/ray-operator/config/crd/bases

The CRD files are about 2 MB and need a KubeRay checkout, so this is a script, not a test: the test suite
checks the fields KubeRay requires (``tests/test_cluster_configs.py``) and this script the whole schema,
including keys the API server would drop silently (typos). Exit 0 when every manifest validates.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import jsonschema
import yaml

HERE = Path(__file__).resolve().parent
MANIFESTS = {HERE / "kuberay" / "raycluster.yaml": "ray.io_rayclusters.yaml",
             HERE / "kuberay" / "rayjob-sweep.yaml": "ray.io_rayjobs.yaml"}


def unknown_fields(doc: Any, schema: dict[str, Any], where: str = "") -> list[str]:
    """Keys that the CRD schema does not declare (the API server would drop them silently: typos)."""
    if isinstance(doc, list) and "items" in schema:
        return [u for i, item in enumerate(doc) for u in unknown_fields(item, schema["items"], f"{where}[{i}]")]
    if not isinstance(doc, dict) or schema.get("x-kubernetes-preserve-unknown-fields"):
        return []
    props = schema.get("properties")
    if props is None:
        return []
    return [u for key, value in doc.items()
            for u in ([f"{where}.{key}"] if key not in props else unknown_fields(value, props[key], f"{where}.{key}"))]


def check(manifest: Path, crd: Path) -> list[str]:
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml reads the 1.4 MB CRD in a second, not ten
    definition = yaml.load(crd.read_text(), Loader=loader)
    schema = next(v for v in definition["spec"]["versions"] if v["name"] == "v1")["schema"]["openAPIV3Schema"]
    doc = next(d for d in yaml.safe_load_all(manifest.read_text()) if d is not None)
    errors = [f"{manifest.name}: {e.message} at {'.'.join(map(str, e.path))}"
              for e in jsonschema.Draft7Validator(schema).iter_errors(doc)]
    return errors + [f"{manifest.name}: unknown field {u}" for u in unknown_fields(doc, schema)]


def main(argv: list[str]) -> int:
    if len(argv) != 1 or not Path(argv[0]).is_dir():
        print("usage: check_kuberay_crds.py KUBERAY/ray-operator/config/crd/bases", file=sys.stderr)
        return 2
    errors = [e for manifest, crd in MANIFESTS.items() for e in check(manifest, Path(argv[0]) / crd)]
    print("\n".join(errors) or f"{len(MANIFESTS)} manifests validate against KubeRay's CRD schemas")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
