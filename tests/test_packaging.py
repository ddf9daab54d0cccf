"""The wheel a user installs with pip: built from the repository, installed in a fresh venv, used from elsewhere.

Why a real build: setuptools ships only ``.py`` files unless told otherwise, and nothing in an editable install
notices (it reads the repository). The fresh venv borrows the project venv's dependencies through a ``.pth``
line (a plain path: the project's editable-install hook there is not run), so nothing is downloaded and the
only ``ntg`` it can import is the wheel's.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest
from test_registry import mirror  # noqa: F401  (fixture: local HTTP mirror of raw.githubusercontent.com)

from ntg.data import registry
from ntg.data.manifest import read_manifest, sha256_file

REPO = Path(__file__).resolve().parents[1]
CACHE_JUNK = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info")


def _run(cmd: list[str], cwd: Path, env: dict[str, str] | None = None, timeout: float = 300) -> str:
    done = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, f"{cmd} failed ({done.returncode}):\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done.stdout


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel built from a copy of the sources (a build in the repository would leave build/ behind)."""
    src = tmp_path_factory.mktemp("src")
    shutil.copytree(REPO / "ntg", src / "ntg", ignore=CACHE_JUNK)
    for name in ("pyproject.toml", "README.md", "MANIFEST.in", "LICENSE"):
        if (REPO / name).exists():
            shutil.copy2(REPO / name, src / name)
    out = tmp_path_factory.mktemp("dist")
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index",
          "-q", "-w", str(out), str(src)], cwd=src)
    (found,) = out.glob("ntg-*.whl")
    return found


@pytest.fixture(scope="module")
def fresh_venv(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A new venv with only the wheel installed; dependencies come from the project venv's site-packages."""
    venv = tmp_path_factory.mktemp("venv") / "fresh"
    _run([sys.executable, "-m", "venv", "--without-pip", str(venv)], cwd=venv.parent)
    python = venv / "bin" / "python"
    site = Path(_run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                     cwd=venv.parent).strip())
    deps = {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}
    (site / "_ntg_test_deps.pth").write_text("".join(f"{p}\n" for p in sorted(deps)))
    _run([sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps", "--no-index", "-q",
          str(wheel)], cwd=venv.parent)
    return venv


def _clean_env(tmp: Path, **extra: str) -> dict[str, str]:
    """The environment of a user outside the repository: no PYTHONPATH, an empty data root, a private cache."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("NTG_", "PYTHONPATH", "VIRTUAL_ENV"))}
    (tmp / "empty-root").mkdir(exist_ok=True)
    env.update(NTG_DATA_ROOT=str(tmp / "empty-root"), NTG_CACHE=str(tmp / "cache"), OMP_NUM_THREADS="1", **extra)
    return env


def test_wheel_ships_every_data_file(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    manifests = {f"ntg/data/manifests/{spec.manifest}" for spec in registry.REGISTRY.values() if spec.manifest}
    assert manifests and manifests <= names, sorted(manifests - names)
    # any data file (not code) in the package tree must be in the wheel, so the next one is not forgotten
    data_files = {
        p.relative_to(REPO).as_posix()
        for p in (REPO / "ntg").rglob("*")
        if p.is_file() and p.suffix not in {".py", ".pyc"} and "__pycache__" not in p.parts
    }
    assert data_files <= names, f"not in the wheel: {sorted(data_files - names)}; add them to package-data"
    assert "ntg-0.1.0.dist-info/entry_points.txt" in names or any(n.endswith("entry_points.txt") for n in names)


def test_installed_wheel_lists_and_downloads_outside_the_repository(
    fresh_venv: Path, mirror, tmp_path: Path  # noqa: F811
) -> None:
    url, _ = mirror
    work = tmp_path / "elsewhere"
    work.mkdir()
    env = _clean_env(tmp_path, NTG_DATASET_MIRROR=url)
    where = _run([str(fresh_venv / "bin" / "python"), "-c",
                  "import ntg, ntg.data.registry as r; print(ntg.__file__); print(r.MANIFESTS)"], work, env)
    ntg_file, manifests_dir = (Path(line) for line in where.split())
    assert fresh_venv in ntg_file.parents and REPO not in ntg_file.parents
    assert manifests_dir.is_dir() and fresh_venv in manifests_dir.parents

    ntg = str(fresh_venv / "bin" / "ntg")
    listing = _run([ntg, "data", "list"], work, env)
    for name in registry.REGISTRY:
        assert name in listing

    out = work / "mirage"
    _run([ntg, "data", "prepare", "mirage19-sample", "--out", str(out), "--min-flows-per-class", "1",
          "--split-by", "flow"], work, env)
    spec = registry.get_spec("mirage19-sample")
    for rel, info in read_manifest(registry.MANIFESTS / spec.manifest).items():
        assert sha256_file(tmp_path / "cache" / "datasets" / spec.folder / rel) == info["sha256"]
    assert (out / "flows.parquet").is_file() and (out / "meta.json").is_file()


def _resolves(dotted: str) -> bool:
    """Whether ``a.b.c`` is an importable module, or an attribute of the importable module ``a.b``."""
    import importlib

    try:
        importlib.import_module(dotted)
        return True
    except ImportError:
        pass
    parent, _, name = dotted.rpartition(".")
    try:
        return hasattr(importlib.import_module(parent), name)
    except ImportError:
        return False


def test_benchmarks_import_what_exists() -> None:
    """Every ``from ntg... import name`` in benchmarks/ (module level or inside a function) resolves: the
    benchmarks are not collected by pytest, so a moved function would otherwise break them silently."""
    import ast

    missing: list[str] = []
    for script in sorted((REPO / "benchmarks").glob("*.py")):
        for node in ast.walk(ast.parse(script.read_text(), filename=str(script))):
            if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "ntg" and not node.level:
                names = [f"{node.module}.{alias.name}" for alias in node.names]
            elif isinstance(node, ast.Import):
                names = [alias.name for alias in node.names if alias.name.split(".")[0] == "ntg"]
            else:
                continue
            missing += [f"{script.name}:{node.lineno}: {name}" for name in names if not _resolves(name)]
    assert not missing, "benchmarks import what does not exist:\n" + "\n".join(missing)
