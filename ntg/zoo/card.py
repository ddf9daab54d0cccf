"""Model cards of published generators, built with huggingface_hub's ``ModelCard`` / ``ModelCardData`` /
``EvalResult`` so the Hub (and any client) reads the metrics from the standard ``model-index``.

Every metric of the evaluation report that a reader compares generators on is one ``EvalResult`` (one
``metric_type`` each, split "test"); the sweep's provenance lives in extra card-data keys (``ntg_*``), which
``ModelCardData`` keeps. :func:`read_metrics` / :func:`read_card_info` parse both back, so listing and comparing
need nothing but the cards.
"""

from __future__ import annotations

import math
import re
from typing import Any

from huggingface_hub import EvalResult, ModelCard, ModelCardData

from ntg.errors import NtgError

TASK_TYPE = "tabular-generation"
TASK_NAME = "Network traffic flow generation"
HEADLINE_METRICS = ("fidelity_score", "tstr_macro_f1", "tstr_trtr_ratio", "augmentation_gain", "copy_rate",
                    "natural_copy_rate", "dcr_median_synthetic", "dcr_median_holdout", "parameters",
                    "flops_per_flow", "sampling_flows_per_s")
METRIC_NAMES = {
    "fidelity_score": "Fidelity score (lower is better)",
    "tstr_macro_f1": "TSTR macro-F1 (Random Forest)",
    "tstr_trtr_ratio": "TSTR / TRTR macro-F1",
    "augmentation_gain": "Augmentation gain at the smallest real fraction",
    "copy_rate": "Copy rate (synthetic flows equal to a training flow)",
    "natural_copy_rate": "Natural copy rate (real test flows equal to a training flow)",
    "dcr_median_synthetic": "Median distance to closest training record, synthetic",
    "dcr_median_holdout": "Median distance to closest training record, real held-out",
    "parameters": "Parameters",
    "flops_per_flow": "FLOPs per generated flow",
    "sampling_flows_per_s": "Sampling throughput (flows/s)",
}
CARD_KEYS = ("ntg_family", "ntg_dataset", "ntg_sweep", "ntg_trial_id", "ntg_objectives", "ntg_hardware")


def repo_name(namespace: str, family: str, dataset: str, config_key: str) -> str:
    """``NAMESPACE/ntg-<family>-<dataset>-<first 8 hex of config_key>`` (names lower-case ``[a-z0-9-]``)."""
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", namespace or ""):
        raise NtgError(f"namespace {namespace!r} is not a Hub user or organisation name; use letters, digits, "
                       "'-', '_' or '.', e.g. --to my-org")
    short = re.sub(r"[^0-9a-f]", "", str(config_key).lower())[:8]
    if len(short) < 8:
        raise NtgError(f"config key {config_key!r} has fewer than 8 hex digits; the trial record is damaged")
    return f"{namespace}/ntg-{slug(family)}-{slug(dataset)}-{short}"


def slug(text: str) -> str:
    """Lower-case ``[a-z0-9-]`` form of a name (runs of other characters become one '-')."""
    out = re.sub(r"[^a-z0-9]+", "-", str(text).lower()).strip("-")
    return out or "data"


def report_metrics(report: dict[str, Any]) -> dict[str, float]:
    """The card's metrics from an evaluation report (``report.json``); axes that did not run are left out."""
    head = report.get("headline") or {}
    fidelity, privacy, cost = report.get("fidelity") or {}, report.get("privacy") or {}, report.get("cost") or {}
    details = privacy.get("details") or {}
    values: dict[str, Any] = {
        "fidelity_score": fidelity.get("score"),
        **{f"fidelity_{k}": v for k, v in sorted((fidelity.get("score_parts") or {}).items())},
        "tstr_macro_f1": _mean(head.get("tstr_macro_f1")),
        "tstr_trtr_ratio": _mean(head.get("tstr_trtr_ratio")),
        "augmentation_gain": _mean(head.get("augmentation_gain")),
        "copy_rate": privacy.get("copy_rate", _mean(head.get("copy_rate"))),
        "natural_copy_rate": privacy.get("natural_copy_rate"),
        "dcr_median_synthetic": details.get("dcr_median"),
        "dcr_median_holdout": details.get("dcr_test_median"),
        "parameters": cost.get("parameters"),
        "flops_per_flow": cost.get("flops_per_flow"),
        "sampling_flows_per_s": cost.get("sampling_flows_per_s"),
    }
    return {k: float(v) for k, v in values.items() if _finite(v)}


def _mean(value: Any) -> Any:
    return value.get("mean") if isinstance(value, dict) else value


def _finite(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def build_card(info: dict[str, Any], metrics: dict[str, float], body: str) -> ModelCard:
    """The card: YAML from ``ModelCardData`` (model-index from ``metrics``) and the markdown ``body``.

    ``info``: repo_id, family, dataset, sweep, trial_id, objectives, hardware, datasets (Hub dataset ids or
    names)."""
    results = [
        EvalResult(task_type=TASK_TYPE, task_name=TASK_NAME, dataset_type=info["dataset"],
                   dataset_name=info["dataset"], dataset_split="test", metric_type=name,
                   metric_name=METRIC_NAMES.get(name, name.replace("_", " ")), metric_value=value)
        for name, value in metrics.items()
    ]
    data = ModelCardData(
        model_name=info["repo_id"].split("/")[-1], library_name="ntg", license="apache-2.0",
        tags=["ntg", "network-traffic", "synthetic-data", slug(info["family"]), slug(info["dataset"])],
        datasets=[info["dataset"]], eval_results=results,
        ntg_family=info["family"], ntg_dataset=info["dataset"], ntg_sweep=info["sweep"],
        ntg_trial_id=info["trial_id"], ntg_objectives=info.get("objectives") or {},
        ntg_hardware=info.get("hardware") or "unknown",
    )
    return ModelCard(f"---\n{data.to_yaml()}\n---\n\n{body.strip()}\n")


def card_body(info: dict[str, Any], metrics: dict[str, float], report: dict[str, Any]) -> str:
    """The card's markdown: what it generates, how to use it, its place on the front, data, privacy, limits."""
    repo_id, family, dataset = info["repo_id"], info["family"], info["dataset"]
    data = report.get("data") or {}
    classes = data.get("classes") or []
    n = (report.get("settings") or {}).get("n_packets")
    label = classes[0] if classes else "CLASS"
    flows = data.get("flows") or {}
    objectives = ", ".join(f"{k} = {_num(v)}" for k, v in (info.get("objectives") or {}).items())
    rows = [f"| {METRIC_NAMES.get(k, k.replace('_', ' '))} | `{k}` | {_num(v)} |" for k, v in metrics.items()]
    return f"""
# {repo_id.split("/")[-1]}

A **{family}** generator of labelled network-traffic biflows, trained with ntg (`library_name: ntg`) on
**{dataset}** and selected from the Pareto front of the sweep `{info["sweep"]}` (trial `{info["trial_id"]}`).

## What it generates
Per biflow, the first **{n}** packets: payload length (bytes), direction (0 client→server, 1 server→client)
and inter-arrival time (seconds), plus the protocol and each packet's TCP flags and window (ntg's header model),
conditioned on one of **{len(classes)}** classes: {", ".join(f"`{c}`" for c in classes)}.

## Use it
```python
from ntg.models import load_generator
gen = load_generator("{repo_id}")              # downloads through huggingface_hub (HF_ENDPOINT is honoured)
flows = gen.sample(1000, label="{label}", seed=0)   # a FlowTable in ntg's flow schema
```
or `ntg sample {repo_id} --n 1000 --label {label} --out synth.parquet`.

## Evaluation (test split, never seen by the search)
| metric | model-index name | value |
|---|---|---|
{chr(10).join(rows)}

Sampling throughput measured on: {info.get("hardware") or "unknown"}. The full report is in `eval/report.md`
(figures in `eval/figures/`); evaluation settings: {info.get("eval_settings") or "see eval/report.json"}.

## Its place on the front
![front](front.png)

The sweep selected it on the **validation** split: {objectives or "—"}.

## Training data
`{dataset}`: {flows.get("train", "?")} training, {flows.get("val", "?")} validation and {flows.get("test", "?")}
test biflows, split by capture.

## Privacy
Copy rate (synthetic flows identical to a training flow): **{_num(metrics.get("copy_rate"))}**, beside the
natural level of real test flows against the training split: **{_num(metrics.get("natural_copy_rate"))}**.
Median distance to the closest training record: synthetic **{_num(metrics.get("dcr_median_synthetic"))}**,
real held-out **{_num(metrics.get("dcr_median_holdout"))}** (synthetic flows closer than real held-out ones
would indicate memorisation).

## Limitations
It models only the first {n} packets of a biflow (sizes, directions, timing and header fields), never payload
bytes or addresses; it knows only the classes above, as they appear in {dataset}'s captures; its scores hold
for that data and need not transfer to other networks. Throughput depends on the hardware.
"""


def _num(value: Any) -> str:
    if not _finite(value):
        return "—"
    value = float(value)
    if abs(value) >= 1000 or (value.is_integer() and abs(value) >= 1):
        return f"{value:,.0f}"
    return f"{value:.4g}"


def read_metrics(card: ModelCard, repo_id: str | None = None) -> dict[str, float]:
    """``{metric_type: value}`` from the card's model-index (NtgError naming the repo when it has none)."""
    results = getattr(card.data, "eval_results", None)
    if not results:
        where = repo_id or getattr(card.data, "model_name", None) or "this card"
        raise NtgError(f"{where}: the model card has no model-index (no evaluation results); it was not published "
                       "by `ntg zoo publish` — re-publish it with `ntg zoo publish SWEEP_DIR --to NAMESPACE`")
    return {r.metric_type: float(r.metric_value) for r in results if _finite(r.metric_value)}


def read_card_info(card: ModelCard, repo_id: str | None = None) -> dict[str, Any]:
    """family, dataset, sweep, trial_id, objectives, hardware (from the ``ntg_*`` keys) and metrics."""
    data = card.data.to_dict()
    info = {key.removeprefix("ntg_"): data.get(key) for key in CARD_KEYS}
    info["metrics"] = read_metrics(card, repo_id)
    return info


__all__ = ["HEADLINE_METRICS", "build_card", "card_body", "read_card_info", "read_metrics", "repo_name",
           "report_metrics", "slug"]
