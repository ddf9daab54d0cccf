"""List and compare published generators from their model cards alone.

Every number comes from a card's ``model-index``, fetched through the standard client (``hf_hub_download`` of
``README.md`` + ``ModelCard``), so the same code reads the real Hub, the embedded olah zoo server or any mirror.
Which repos exist: ``HfApi.list_models(author=NS)`` where the server lists; a read-only mirror (olah) cannot,
so the zoo's own ``index.json`` names them; without an endpoint the zoo folder's cards are read directly.

Hypervolumes in :func:`compare` reuse :mod:`ntg.search.pareto` with one normalisation for all groups:
``log10(1+x)`` for compute-like metrics, min–max over **all** compared generators (0 = best, 1 = worst,
maximised metrics flipped) and the reference point 1.1 per metric, so the groups' values are comparable.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ntg.errors import NtgError
from ntg.utils.plots import pyplot, save_png
from ntg.zoo.card import HEADLINE_METRICS, METRIC_NAMES, read_card_info
from ntg.zoo.local import read_index, repo_dir
from ntg.zoo.server import default_zoo_dir

INFO_COLUMNS = ("repo_id", "family", "dataset", "sweep", "trial_id", "hardware")
#: Better direction of each card metric (fidelity parts follow the score: lower is better).
DIRECTIONS: dict[str, str] = {
    "fidelity_score": "min", "tstr_macro_f1": "max", "tstr_trtr_ratio": "max", "augmentation_gain": "max",
    "copy_rate": "min", "natural_copy_rate": "min", "dcr_median_synthetic": "max", "dcr_median_holdout": "max",
    "parameters": "min", "flops_per_flow": "min", "sampling_flows_per_s": "max",
}
LOG_METRICS = frozenset({"parameters", "flops_per_flow", "sampling_flows_per_s"})
HV_REFERENCE = 1.1
NORMALISATION = ("log10(1+x) for " + ", ".join(sorted(LOG_METRICS)) + "; min-max over all compared generators "
                 f"(0 = best, 1 = worst; maximised metrics flipped); reference point {HV_REFERENCE} per metric")
_REPO_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*")


def direction(metric: str) -> str:
    if metric.startswith("fidelity_"):
        return "min"
    if metric not in DIRECTIONS:
        raise NtgError(f"unknown card metric {metric!r}; choose one of {', '.join(DIRECTIONS)} or fidelity_<part>")
    return DIRECTIONS[metric]


# ---------------------------------------------------------------------------------------------- discovery
def repo_ids(namespace: str | None = None, *, endpoint: str | None = None,
             zoo_dir: str | Path | None = None) -> list[str]:
    """The published repos: the server's listing where it has one, else the zoo's ``index.json`` (no endpoint:
    the local zoo, ``zoo_dir`` or ``$NTG_ZOO`` or ``zoo/local``)."""
    listed = _server_listing(namespace, endpoint) if endpoint is not None else None
    if listed is None:
        zoo = default_zoo_dir(zoo_dir)
        if not (zoo / "index.json").is_file():
            where = f"the server at {endpoint} cannot list models and " if endpoint else ""
            raise NtgError(f"{where}{zoo}/index.json does not exist; pass --zoo DIR (the local zoo that "
                           "`ntg zoo publish` wrote) or an --endpoint that lists models")
        listed = [e["repo_id"] for e in read_index(zoo)]
        if namespace:
            listed = [r for r in listed if r.split("/")[0] == namespace]
    if namespace and not listed:
        raise NtgError(f"namespace {namespace!r}: no published ntg generators there; check the name "
                       "(`ntg zoo list` shows every namespace) or publish with `ntg zoo publish SWEEP --to NS`")
    return sorted(listed)


def _server_listing(namespace: str | None, endpoint: str | None) -> list[str] | None:
    """``list_models`` of the server, or None when it has no listing API (a mirror such as olah)."""
    import httpx2  # huggingface_hub's HTTP client: its transport errors (connection refused, DNS, timeout)
    from huggingface_hub import HfApi
    from huggingface_hub.errors import HfHubHTTPError

    try:
        models = HfApi(endpoint=endpoint).list_models(author=namespace, filter="ntg")  # the cards tag "ntg"
        return [m.id for m in models]
    except HfHubHTTPError as err:
        if err.response is not None and err.response.status_code in (404, 405, 501):
            return None
        raise _unreachable(endpoint, err) from None
    except ValueError:  # an answer that is no JSON list of models (olah 0.5 answers an empty body)
        return None
    except (httpx2.HTTPError, OSError) as err:
        raise _unreachable(endpoint, err) from None


def _unreachable(endpoint: str | None, err: Exception) -> NtgError:
    from huggingface_hub import constants

    return NtgError(f"cannot reach the model hub at {endpoint or constants.ENDPOINT} ({err.__class__.__name__}: "
                    f"{' '.join(str(err).split())[:200]}); start the zoo server (`ntg zoo serve`) or check --endpoint "
                    "/ HF_ENDPOINT")


def load_card(repo_id: str, *, endpoint: str | None = None, zoo_dir: str | Path | None = None) -> dict[str, Any]:
    """One repo's card info (:func:`ntg.zoo.card.read_card_info`) with ``repo_id``; from the server, or from the
    zoo folder when no endpoint is given and the repo is there."""
    import httpx2
    from huggingface_hub import HfApi, ModelCard, hf_hub_download
    from huggingface_hub.errors import EntryNotFoundError, HfHubHTTPError, LocalEntryNotFoundError

    if not _REPO_ID.fullmatch(repo_id):
        raise NtgError(f"{repo_id!r} is not a repo id; give NAMESPACE/NAME, e.g. my-org/ntg-markov-iot-1a2b3c4d")
    local = repo_dir(default_zoo_dir(zoo_dir), repo_id) / "README.md"
    try:
        if endpoint is None and local.is_file():
            card = ModelCard.load(local)
        else:  # model_info first: one request that fails at once; hf_hub_download retries a refused connection
            sha = HfApi(endpoint=endpoint).model_info(repo_id, revision="main").sha  # olah needs the revision
            card = ModelCard.load(hf_hub_download(repo_id, "README.md", revision=sha, endpoint=endpoint))
    except (httpx2.HTTPError, OSError) as err:
        raise _unreachable(endpoint, err) from None
    except EntryNotFoundError:
        raise NtgError(f"{repo_id}: the repo has no README.md model card; publish it with `ntg zoo publish`") from None
    except LocalEntryNotFoundError as err:
        raise _unreachable(endpoint, err) from None
    except HfHubHTTPError as err:
        status = err.response.status_code if err.response is not None else None
        if status in (401, 403, 404):
            raise NtgError(f"{repo_id}: no such model repo at {endpoint or 'the default hub'} (or it is private: set "
                           "HF_TOKEN); check the name with `ntg zoo list`") from None
        raise _unreachable(endpoint, err) from None
    return {"repo_id": repo_id, **read_card_info(card, repo_id)}


def list_generators(namespace: str | None = None, *, endpoint: str | None = None,
                    zoo_dir: str | Path | None = None, repos: Sequence[str] | None = None) -> pd.DataFrame:
    """One row per published generator: who it is (:data:`INFO_COLUMNS`) and every metric of its card."""
    ids = list(repos) if repos else repo_ids(namespace, endpoint=endpoint, zoo_dir=zoo_dir)
    rows = []
    for repo_id in ids:
        info = load_card(repo_id, endpoint=endpoint, zoo_dir=zoo_dir)
        rows.append({**{k: info.get(k) for k in INFO_COLUMNS}, **info["metrics"]})
    frame = pd.DataFrame(rows, columns=list(INFO_COLUMNS)) if not rows else pd.DataFrame(rows)
    metrics = [c for c in HEADLINE_METRICS if c in frame] + sorted(
        c for c in frame if c not in INFO_COLUMNS and c not in HEADLINE_METRICS)
    return frame[list(INFO_COLUMNS) + metrics]


def format_listing(frame: pd.DataFrame, columns: Sequence[str] = ("fidelity_score", "tstr_macro_f1", "copy_rate",
                                                                   "parameters", "flops_per_flow")) -> str:
    """The terminal table of ``ntg zoo list``: repo, family, dataset and a few headline metrics."""
    if frame.empty:
        return "no published generators"
    shown = frame[["repo_id", "family", "dataset"] + [c for c in columns if c in frame]].copy()
    for column in columns:
        if column in shown:
            shown[column] = shown[column].map(_short)
    return shown.to_string(index=False)


def _short(value: Any) -> str:
    if value is None or (isinstance(value, float) and not np.isfinite(value)):
        return "-"
    value = float(value)
    return f"{value:.3g}" if abs(value) < 1e4 else f"{value:.3e}"


# ---------------------------------------------------------------------------------------------- compare
def compare(repos: Sequence[str] | None = None, namespace: str | None = None, *, x: str = "flops_per_flow",
            y: str = "fidelity_score", endpoint: str | None = None, zoo_dir: str | Path | None = None,
            out_dir: str | Path, by: str | None = None) -> dict[str, Any]:
    """The fronts of several sweeps (or families, or datasets) in one plot and one table, with hypervolumes.

    ``by`` groups the generators: "sweep", "family" or "dataset"; by default sweeps when there are several,
    else families. Writes ``compare.png``, ``compare.csv`` (one row per generator) and ``compare.md``.
    """
    from ntg.utils.io import atomic_path

    frame = list_generators(namespace, endpoint=endpoint, zoo_dir=zoo_dir, repos=repos)
    frame, table, by = fronts(frame, x, y, by)
    directions = [direction(x), direction(y)]
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"plot": out / "compare.png", "csv": out / "compare.csv", "markdown": out / "compare.md"}
    columns = ["group", "repo_id", "family", "dataset", "sweep", x, y, "on_front"]
    with atomic_path(paths["csv"]) as tmp:
        frame[columns].to_csv(tmp, index=False)
    with atomic_path(paths["markdown"]) as tmp:
        tmp.write_text(_markdown(table, frame[columns], x, y, by))
    with atomic_path(paths["plot"]) as tmp:
        datasets = ", ".join(sorted(frame["dataset"].dropna().astype(str).unique())) or "unknown data"
        plot_fronts(frame, x, y, directions, tmp, title=f"Published generators by {by} (trained on {datasets})")
    return {**paths, "by": by, "hypervolume": dict(zip(table["group"], table["hypervolume"], strict=True)),
            "normalisation": NORMALISATION, "table": table, "generators": frame[columns]}


def fronts(frame: pd.DataFrame, x: str, y: str, by: str | None = None) -> tuple[pd.DataFrame, pd.DataFrame, str]:
    """Mark each group's front (``on_front``) and compute each group's hypervolume under common bounds."""
    from ntg.search.pareto import normalise, pareto_mask

    directions = [direction(x), direction(y)]
    missing = [m for m in (x, y) if m not in frame or frame[m].isna().all()]
    if frame.empty or missing:
        raise NtgError(f"no generator card has {', '.join(missing) or 'metrics'}; choose --x/--y among "
                       f"{', '.join(c for c in frame if c not in INFO_COLUMNS)}")
    by = by or ("sweep" if frame["sweep"].nunique() > 1 else "family")
    if by not in ("sweep", "family", "dataset"):
        raise NtgError(f"group by {by!r}: choose sweep, family or dataset")
    frame = frame[frame[x].notna() & frame[y].notna()].reset_index(drop=True)
    frame["group"] = frame[by].fillna("unknown").astype(str)
    values = frame[[x, y]].to_numpy(float)
    log_scale = [x in LOG_METRICS, y in LOG_METRICS]
    _, bounds = normalise(values, directions, log_scale=log_scale)  # one set of bounds for every group
    frame["on_front"] = False
    summary = []
    for group, rows in frame.groupby("group", sort=True):
        mask = pareto_mask(values[rows.index], directions)
        frame.loc[rows.index[mask], "on_front"] = True
        summary.append({"group": group, "generators": len(rows), "on_front": int(mask.sum()),
                        "hypervolume": _hypervolume(values[rows.index], directions, bounds, log_scale)})
    table = pd.DataFrame(summary).sort_values("hypervolume", ascending=False, ignore_index=True)
    return frame, table, by


def _hypervolume(values: np.ndarray, directions: list[str], bounds: np.ndarray, log_scale: list[bool]) -> float:
    from ntg.search.pareto import hypervolume

    return hypervolume(values, directions, reference=HV_REFERENCE, bounds=bounds, log_scale=log_scale)


def _markdown(table: pd.DataFrame, models: pd.DataFrame, x: str, y: str, by: str) -> str:
    lines = [f"# Fronts by {by}: {_label(y)} against {_label(x)}", "",
             f"Hypervolume of each {by}'s front on ({x}, {y}): {NORMALISATION}.", "",
             f"| {by} | generators | on its front | hypervolume |", "|---|---:|---:|---:|"]
    lines += [f"| {r.group} | {r.generators} | {r.on_front} | {r.hypervolume:.4f} |" for r in table.itertuples()]
    lines += ["", f"| {by} | repo | {x} | {y} | on front |", "|---|---|---:|---:|:-:|"]
    for _, r in models.sort_values(["group", x]).iterrows():
        front = "yes" if r["on_front"] else ""
        lines.append(f"| {r['group']} | `{r['repo_id']}` | {_short(r[x])} | {_short(r[y])} | {front} |")
    return "\n".join(lines) + "\n"


def _label(metric: str) -> str:
    return METRIC_NAMES.get(metric, metric.replace("_", " "))


def _scale(values: pd.Series, metric: str) -> str:
    """``log`` for a cost metric that is positive throughout, ``symlog`` (linear below 1) when some
    generators cost 0 (table baselines: no FLOPs) beside large values, else ``linear``."""
    if metric not in LOG_METRICS or not (values >= 0).all():
        return "linear"
    return "log" if (values > 0).all() else "symlog"


def _axis_label(metric: str, sense: str, scale: str = "linear") -> str:
    label = _label(metric) + {"log": " [log scale]", "symlog": " [symmetric log scale]"}.get(scale, "")
    return label if "better" in label else f"{label} ({'lower' if sense == 'min' else 'higher'} is better)"


def plot_fronts(frame: pd.DataFrame, x: str, y: str, directions: Sequence[str], path: Path, *,
                title: str) -> Path:
    """Every generator as a point, each group's front as a step line, one colour per group (PNG)."""
    plt = pyplot()

    fig, ax = plt.subplots(figsize=(7.5, 5))
    colours = plt.get_cmap("tab10")
    for i, (group, rows) in enumerate(frame.groupby("group", sort=True)):
        colour = colours(i % 10)
        ax.scatter(rows[x], rows[y], color=colour, alpha=0.45, s=24)
        front = rows[rows["on_front"]].sort_values(x, ascending=directions[0] == "min")
        ax.step(front[x], front[y], where="post", color=colour, linewidth=1.8,
                label=f"{group} ({len(front)}/{len(rows)} on front)")
        ax.scatter(front[x], front[y], color=colour, s=46, edgecolor="black", linewidth=0.6, zorder=3)
    x_scale, y_scale = _scale(frame[x], x), _scale(frame[y], y)
    ax.set_xscale(x_scale, **({"linthresh": 1.0} if x_scale == "symlog" else {}))
    ax.set_yscale(y_scale, **({"linthresh": 1.0} if y_scale == "symlog" else {}))
    ax.set_xlabel(_axis_label(x, directions[0], x_scale))
    ax.set_ylabel(_axis_label(y, directions[1], y_scale))
    ax.set_title(title)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8, loc="best")
    fig.tight_layout()
    return save_png(fig, path, dpi=120)
