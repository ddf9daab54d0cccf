"""``ntg zoo publish``: a sweep's Pareto set as Hub model repos, each with its test-split evaluation and a card.

For every feasible trial on the front (or every feasible trial), the generator is evaluated on the **test**
split, which the search never saw, on every axis; the evaluation is cached under ``SWEEP_DIR/zoo-eval/`` by
the sha256 of the generator's files and the evaluation settings, so re-publishing an unchanged generator
re-uses it. The repo is staged in a temporary folder, checked for leaks (token, home folder, host and user
name, the sweep's and the data's absolute paths: publishing refuses rather than leaks), then

* with an endpoint (``--endpoint`` or ``HF_ENDPOINT``): ``HfApi.create_repo(exist_ok=True)`` +
  ``upload_folder`` (a new commit of the same repo on every publish; files no longer produced are deleted);
* without one: a new commit of the repo's git repository in the local zoo, and ``<zoo>/index.json``.

CPU budget (recorded in each card): Random Forest only (no CNN), and the split seeds, augmentation seeds and
low-data fractions of :class:`~ntg.zoo.budget.CardBudget` (all settable: the augmentation axis is most of a
card's time); neural families are not refitted per split seed or per augmentation fraction (TSTR on the
generator's own split, TRTR over every split seed), baselines are (cheap), so their TSTR spans every split seed.
"""

from __future__ import annotations

import contextlib
import getpass
import hashlib
import json
import os
import shutil
import socket
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from ntg.errors import NtgError
from ntg.families import NEURAL_FAMILIES
from ntg.search.pareto import FrontResult, compute_front
from ntg.utils.io import MARKER_FILE, read_json
from ntg.zoo.budget import CardBudget
from ntg.zoo.card import build_card, card_body, repo_name, report_metrics, slug

EVAL_CACHE = "zoo-eval"
CONNECT_TIMEOUT_S = 5.0
READ_TIMEOUT_S = 120.0  # huggingface_hub waits forever by default; a server that accepts and never answers


@dataclass(frozen=True)
class Planned:
    """One trial to publish."""

    repo_id: str
    trial_id: str
    family: str
    generator_dir: Path
    objectives: dict[str, float]


def publish_sweep(sweep_dir: str | Path, namespace: str, *, endpoint: str | None = None, token: str | None = None,
                  private: bool = False, only_front: bool = True, dry_run: bool = False,
                  zoo_dir: str | Path | None = None, split_seeds: int | None = None, progress: bool = True,
                  data_dir: str | Path | None = None, augmentation_seeds: int | None = None,
                  augmentation_fractions: tuple[float, ...] | None = None) -> list[dict[str, Any]]:
    """Publish the sweep's generators (see the module docstring); one dict per repo: repo_id, url (or local
    path), commit, trial_id, family, dataset, sweep, metrics. ``dry_run`` prints the plan and writes nothing.

    ``endpoint`` defaults to ``HF_ENDPOINT`` unless ``zoo_dir`` is given; ``data_dir`` to the sweep's data.
    ``split_seeds``, ``augmentation_seeds`` and ``augmentation_fractions`` are the cards' evaluation budget
    (None: :class:`CardBudget`'s defaults)."""
    from ntg.zoo.local import default_zoo_dir

    sweep_dir = Path(sweep_dir)
    budget = CardBudget.given(split_seeds, augmentation_seeds, augmentation_fractions)
    eval_settings("markov", budget, False)  # a bad budget fails here, before anything is evaluated or written
    # an explicit zoo folder wins over HF_ENDPOINT, which may point at that zoo's read-only server
    endpoint = endpoint or (os.environ.get("HF_ENDPOINT") if zoo_dir is None else None) or None
    data_dir = _data_dir(sweep_dir, data_dir)
    dataset = dataset_slug(data_dir)
    front, plan = plan_publish(sweep_dir, namespace, dataset, only_front)
    zoo = Path(zoo_dir) if zoo_dir is not None else default_zoo_dir()
    where = endpoint.rstrip("/") if endpoint else f"the local zoo {zoo}"
    if dry_run:
        for item in plan:
            print(f"would publish {item.repo_id} (trial {item.trial_id}, {item.family}) to {where}")
        return [{"repo_id": p.repo_id, "trial_id": p.trial_id, "family": p.family, "dataset": dataset,
                 "sweep": sweep_dir.resolve().name, "url": None, "commit": None, "metrics": {}} for p in plan]
    if endpoint:
        check_endpoint(endpoint)
        token = token or os.environ.get("HF_TOKEN") or None
    results = []
    for i, item in enumerate(plan, 1):
        _say(progress, f"[{i}/{len(plan)}] {item.repo_id}: evaluating trial {item.trial_id} on the test split")
        report, settings_note, report_dir = evaluate_cached(sweep_dir, data_dir, item, budget, progress)
        with tempfile.TemporaryDirectory(prefix="ntg-publish-") as tmp:
            stage = Path(tmp) / "repo"
            info = stage_repo(stage, item, report, report_dir, front, dataset=dataset, sweep=sweep_dir.resolve().name,
                              settings_note=settings_note, scrub={str(data_dir.resolve()): dataset,
                                                                  str(sweep_dir.resolve()): "SWEEP_DIR"})
            check_no_leaks(stage, _secrets(token, sweep_dir, data_dir, item.generator_dir))
            message = f"ntg zoo publish: trial {item.trial_id} of sweep {info['sweep']}"
            if endpoint:
                url, commit = upload(stage, item.repo_id, endpoint, token, private, message)
            else:
                from ntg.zoo.local import commit_folder

                commit = commit_folder(zoo, item.repo_id, stage, message)
                url = str(zoo / "models" / item.repo_id)
        _say(progress, f"[{i}/{len(plan)}] {item.repo_id}: published commit {commit[:12]} to {where}")
        results.append({"repo_id": item.repo_id, "url": url, "commit": commit, "trial_id": item.trial_id,
                        "family": item.family, "dataset": dataset, "sweep": info["sweep"],
                        "metrics": info["metrics"]})
    if not endpoint:
        from ntg.zoo.local import update_index

        update_index(zoo, results)
    return results


def _say(progress: bool, line: str) -> None:
    if progress:
        print(line, file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------------------------- plan
def _data_dir(sweep_dir: Path, given: str | Path | None) -> Path:
    if given is not None:
        path = Path(given)
    else:
        meta = sweep_dir / "sweep.json"
        stored = read_json(meta).get("data_dir") if meta.is_file() else None
        if not stored:
            raise NtgError(f"{sweep_dir}: no sweep.json with the data folder; give it with --data DIR")
        path = Path(stored) if Path(stored).is_absolute() else sweep_dir / stored
    if not (path / "flows.parquet").is_file():
        raise NtgError(f"{path}: no prepared dataset (flows.parquet) for the test evaluation; give the sweep's "
                       "data folder with --data DIR (`ntg data prepare ... --out DIR` makes one)")
    return path


def dataset_slug(data_dir: Path) -> str:
    """The prepared data's registry name, else its folder name, as ``[a-z0-9-]``."""
    meta = read_json(data_dir / "meta.json") if (data_dir / "meta.json").is_file() else {}
    source = meta.get("source") if isinstance(meta, dict) else None
    name = source.get("name") if isinstance(source, dict) else None
    return slug(name or data_dir.resolve().name)


def plan_publish(sweep_dir: Path, namespace: str, dataset: str, only_front: bool) -> tuple[FrontResult,
                                                                                              list[Planned]]:
    """The front of the sweep and the trials to publish (front only, or every feasible trial)."""
    try:
        front = compute_front(sweep_dir)
    except NtgError as err:
        raise NtgError(f"nothing to publish: {err}") from None
    rows = front.trials[front.trials["competing"] & (front.trials["on_front"] if only_front else True)]
    plan = []
    for _, row in rows.iterrows():
        gen = row.get("generator_dir")
        gen_dir = (sweep_dir / gen) if isinstance(gen, str) and gen else None
        if gen_dir is None or not (gen_dir / "config.json").is_file():
            raise NtgError(f"{sweep_dir}: trial {row['trial_id']} kept no generator ({gen}); the sweep folder is "
                           "incomplete — copy it whole, or re-run `ntg sweep ... --resume`")
        plan.append(Planned(repo_name(namespace, row["family"], dataset, row["config_key"]), row["trial_id"],
                            row["family"], gen_dir, {n: float(row[n]) for n in front.names}))
    return front, plan


# ---------------------------------------------------------------------------------------------- evaluate
def eval_settings(family: str, budget: CardBudget, progress: bool) -> tuple[Any, str]:
    """The publish budget (module docstring) as :class:`EvaluateSettings`, and its one-line description."""
    from ntg.evaluation.evaluate import EvaluateSettings

    neural = family in NEURAL_FAMILIES
    settings = EvaluateSettings.for_profile("full", split_seeds=budget.split_seeds, classifiers=("rf",),
                                            retrain=not neural, augmentation_refit=not neural,
                                            augmentation_seeds=budget.augmentation_seeds, fractions=budget.fractions,
                                            progress=progress)
    fractions = ", ".join(f"{f:g}" for f in settings.fractions)
    note = (f"full profile on the test split, Random Forest, {budget.split_seeds} split seed(s) "
            f"({'TSTR on the generator own split, TRTR over all' if neural else 'refitted per split seed'}), "
            f"{budget.augmentation_seeds} augmentation seed(s) at fractions {fractions}"
            f"{', no refit per fraction' if neural else ''}")
    return settings, note


def generator_sha256(generator_dir: Path) -> str:
    digest = hashlib.sha256()
    for name in ("config.json", "model.safetensors"):
        path = generator_dir / name
        digest.update(name.encode() + b"\0" + (path.read_bytes() if path.is_file() else b""))
    return digest.hexdigest()


def evaluate_cached(sweep_dir: Path, data_dir: Path, item: Planned, budget: CardBudget,
                    progress: bool) -> tuple[dict[str, Any], str, Path]:
    """The test-split report of the trial's generator, from ``SWEEP_DIR/zoo-eval/`` when the same weights were
    evaluated with the same settings, else evaluated now (and cached)."""
    from dataclasses import asdict

    from ntg.evaluation.evaluate import evaluate

    settings, note = eval_settings(item.family, budget, progress)
    key = hashlib.sha256((generator_sha256(item.generator_dir) + json.dumps(
        {k: v for k, v in asdict(settings).items() if k != "progress"}, sort_keys=True, default=str)).encode())
    out = sweep_dir / EVAL_CACHE / key.hexdigest()[:24]
    if (out / "report.json").is_file():
        report = read_json(out / "report.json")
        status = (report.get("settings") or {}).get("axes_status") or {}
        if status and all(s.get("status") in ("done", "skipped") for s in status.values()):
            return report, note, out
    return evaluate(data_dir, item.generator_dir, out_dir=out, settings=settings, force=True), note, out


# ---------------------------------------------------------------------------------------------- stage
def stage_repo(stage: Path, item: Planned, report: dict[str, Any], report_dir: Path, front: FrontResult, *,
               dataset: str, sweep: str, settings_note: str, scrub: dict[str, str]) -> dict[str, Any]:
    """Write the repo's files into ``stage`` (the report's figures from ``report_dir``); return the card's info
    (with ``metrics``)."""
    import ntg
    from ntg.data.schema import PACKET_DTYPES, PACKET_FIELDS
    from ntg.evaluation.report import write_report
    from ntg.zoo.front_plot import plot_front_highlight

    stage.mkdir(parents=True)
    shutil.copy2(item.generator_dir / "model.safetensors", stage / "model.safetensors")
    config = read_json(item.generator_dir / "config.json")
    classes = (config.get("learnt") or {}).get("classes") or (report.get("data") or {}).get("classes")
    config["ntg"] = {"version": getattr(ntg, "__version__", None),
                     "n_packets": (config.get("hparams") or {}).get("n_packets"), "classes": classes,
                     "feature_schema": {"per_packet": {f: str(PACKET_DTYPES.get(f, "")) for f in PACKET_FIELDS},
                                        "per_flow": ["label", "proto", "n_packets"]}}
    (stage / "config.json").write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
    report = _scrubbed(report, {**scrub, str(item.generator_dir.resolve()): item.repo_id})
    report["data"]["path"] = report["data"]["described_as"] = dataset
    report["source"]["path"] = item.repo_id
    eval_dir = stage / "eval"
    eval_dir.mkdir()
    if (report_dir / "figures").is_dir():
        shutil.copytree(report_dir / "figures", eval_dir / "figures")
    write_report(report, eval_dir)
    plot_front_highlight(front, item.trial_id, stage / "front.png")
    hardware = hardware_name((report.get("cost") or {}).get("device"))
    metrics = report_metrics(report)
    info = {"repo_id": item.repo_id, "family": item.family, "dataset": dataset, "sweep": sweep,
            "trial_id": item.trial_id, "objectives": item.objectives, "hardware": hardware,
            "eval_settings": settings_note}
    build_card(info, metrics, card_body(info, metrics, report)).save(stage / "README.md")
    for marker in stage.rglob(MARKER_FILE):
        marker.unlink()
    return {**info, "metrics": metrics}


def _scrubbed(obj: Any, replacements: dict[str, str]) -> Any:
    """``obj`` (JSON-like) with every local path in ``replacements`` replaced by its public name."""
    if isinstance(obj, str):
        for old, new in sorted(replacements.items(), key=lambda kv: -len(kv[0])):
            obj = obj.replace(old, new)
        return obj
    if isinstance(obj, dict):
        return {k: _scrubbed(v, replacements) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_scrubbed(v, replacements) for v in obj]
    return obj


def hardware_name(device: str | None) -> str:
    """The sampling hardware in words (CPU model and core count, or the GPU's name): no host name."""
    import platform

    if device and device.startswith("cuda"):
        with contextlib.suppress(Exception):
            import torch

            return f"{torch.cuda.get_device_name(0)} (CUDA)"
    model = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return f"{model}, {os.cpu_count()} logical CPUs"


# ---------------------------------------------------------------------------------------------- leaks
def _secrets(token: str | None, *paths: Path) -> dict[str, str]:
    found = {"the token": token or ""}
    home = str(Path.home())
    if home not in ("/", ""):
        found["the home folder"] = home
    found["the host name"] = socket.gethostname()
    with contextlib.suppress(Exception):
        found["the user name"] = f"/{getpass.getuser()}/"
    found["the working folder"] = os.getcwd()
    for path in paths:
        found[f"the local path {path}"] = str(Path(path).resolve())
    return {what: text for what, text in found.items() if text and len(text) >= 4 and text != "/"}


def check_no_leaks(stage: Path, secrets: dict[str, str]) -> None:
    """Refuse to publish a file that holds a token, a local path, the user's or the host's name."""
    for path in sorted(p for p in stage.rglob("*") if p.is_file()):
        data = path.read_bytes()
        for what, text in secrets.items():
            if text.encode() in data:
                raise NtgError(f"refusing to publish: {path.relative_to(stage)} would contain {what}; this is a bug "
                               "of ntg zoo publish — please report it (nothing was published for this repo)")


# ---------------------------------------------------------------------------------------------- hub
def check_endpoint(endpoint: str) -> None:
    """A quick TCP connect, so a wrong or closed endpoint fails in seconds, not after the client's retries."""
    url = urlsplit(endpoint)
    if url.scheme not in ("http", "https") or not url.hostname:
        raise NtgError(f"--endpoint {endpoint!r} is not an http(s) URL; e.g. --endpoint https://huggingface.co")
    port = url.port or (443 if url.scheme == "https" else 80)
    try:
        socket.create_connection((url.hostname, port), timeout=CONNECT_TIMEOUT_S).close()
    except OSError as err:
        raise NtgError(f"cannot reach the hub at {endpoint} ({err.strerror or err}); check --endpoint / "
                       "HF_ENDPOINT and that the server runs, or publish to the local zoo without --endpoint") from None


@contextlib.contextmanager
def _xet_only_on_the_hub(endpoint: str) -> Iterator[None]:
    """Other servers (mirrors, test doubles) do not speak Xet: plain LFS uploads there."""
    from huggingface_hub import constants

    before = constants.HF_HUB_DISABLE_XET
    constants.HF_HUB_DISABLE_XET = before or not (urlsplit(endpoint).hostname or "").endswith("huggingface.co")
    try:
        yield
    finally:
        constants.HF_HUB_DISABLE_XET = before


@contextlib.contextmanager
def _bounded_client() -> Iterator[None]:
    """huggingface_hub's shared client has no timeout: give it one for the upload (restored afterwards)."""
    import httpx2
    from huggingface_hub import set_client_factory
    from huggingface_hub.utils import _http

    before = _http._GLOBAL_CLIENT_FACTORY

    def bounded() -> httpx2.Client:
        client = before()
        client.timeout = httpx2.Timeout(READ_TIMEOUT_S, connect=CONNECT_TIMEOUT_S)
        return client

    set_client_factory(bounded)
    try:
        yield
    finally:
        set_client_factory(before)


def upload(stage: Path, repo_id: str, endpoint: str, token: str | None, private: bool,
           message: str) -> tuple[str, str]:
    """create_repo (exist_ok) + upload_folder (stale files deleted); (repo URL, commit id)."""
    import httpx2
    from huggingface_hub import HfApi
    from huggingface_hub.errors import HfHubHTTPError

    api = HfApi(endpoint=endpoint.rstrip("/"), token=token)
    try:
        with _xet_only_on_the_hub(endpoint), _bounded_client():
            try:
                url = str(api.create_repo(repo_id, private=private, exist_ok=True))
            except ValueError as err:  # huggingface_hub 2.4: an existing repo after a 401/403 on create, on a
                if "Invalid HF URI" not in str(err):  # non-Hub endpoint, fails to parse its own RepoUrl
                    raise
                url = f"{api.endpoint}/{repo_id}"  # the repo exists; the upload below says if the token may write
            info = api.upload_folder(repo_id=repo_id, folder_path=stage, commit_message=message,
                                     delete_patterns="*")
    except HfHubHTTPError as err:
        status = err.response.status_code if err.response is not None else None
        hint = ("give a token with write access to the namespace (--token or HF_TOKEN)" if status in (401, 403)
                else "check the namespace and the endpoint (a read-only mirror such as `ntg zoo serve` takes no "
                "uploads: publish to the local zoo without --endpoint and with HF_ENDPOINT unset)")
        raise NtgError(f"{repo_id}: the hub at {endpoint} refused the upload (HTTP {status}: "
                       f"{' '.join(str(err).split())[:200]}); {hint}") from None
    except (OSError, RuntimeError, ValueError, httpx2.HTTPError) as err:  # transfer failures: RuntimeError
        cause = " ".join(str(err.__cause__ or err).split())[:200]
        raise NtgError(f"{repo_id}: upload to {endpoint} failed ({cause}); check the endpoint and re-run "
                       "to publish again") from None
    return url, info.oid


__all__ = ["CardBudget", "Planned", "check_endpoint", "check_no_leaks", "dataset_slug", "evaluate_cached",
           "plan_publish", "publish_sweep", "stage_repo"]
