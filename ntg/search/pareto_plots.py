"""Plots of a sweep's front: fidelity against compute (PNG and interactive HTML) and hypervolume growth.

One colour per family; trials the front dominates are grey (edged in their family's colour), infeasible ones
are grey crosses; the front of the two plotted objectives is a step line (the boundary of what it dominates).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from ntg.search.objectives import OBJECTIVES, Objective
from ntg.utils.io import atomic_path
from ntg.utils.plots import pyplot, save_png

if TYPE_CHECKING:
    from ntg.search.pareto import FrontResult

GREY = "#b0b0b0"
COMPUTE = ("flops_per_flow", "parameters", "train_seconds", "sample_flows_per_s")
PALETTE = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf")


def plot_axes(result: FrontResult) -> tuple[Objective, Objective]:
    """(x, y): the first objective on y against the first compute objective chosen (else the second) on x;
    with a single objective, compute on x when the records have it."""
    y = result.objectives[0]
    if len(result.objectives) >= 2:
        compute = [o for o in result.objectives[1:] if o.name in COMPUTE]
        return (compute or list(result.objectives[1:]))[0], y
    for name in ("flops_per_flow", "parameters"):
        if name != y.name and name in result.trials and result.trials[name].notna().any():
            return Objective(name, OBJECTIVES[name]), y
    return Objective("finished_order", "min"), y


def family_colours(result: FrontResult) -> dict[str, str]:
    return {f: PALETTE[i % len(PALETTE)] for i, f in enumerate(sorted(result.trials["family"].unique()))}


def step_front(result: FrontResult, x: Objective, y: Objective) -> pd.DataFrame:
    """The 2-D front of (x, y) over the competing trials, ordered best x first (for a post-step line)."""
    from ntg.search.pareto import pareto_mask

    rows = result.trials[result.trials["competing"]].dropna(subset=[x.name, y.name])
    if rows.empty:
        return rows
    mask = pareto_mask(rows[[x.name, y.name]].to_numpy(dtype=float), [x.direction, y.direction])
    return rows[mask].sort_values(x.name, ascending=x.direction == "min")


def _log_axis(trials: pd.DataFrame, objective: Objective) -> bool:
    from ntg.search.pareto import LOG_SCALED

    values = trials[objective.name].dropna() if objective.name in trials else pd.Series(dtype=float)
    return objective.name in LOG_SCALED and len(values) > 0 and bool((values > 0).all())


def _zero_and_large(trials: pd.DataFrame, objective: Objective) -> bool:
    """Some trials cost 0 (baselines) beside large values: a plain log axis would drop them."""
    from ntg.search.pareto import LOG_SCALED

    values = trials[objective.name].dropna() if objective.name in trials else pd.Series(dtype=float)
    return objective.name in LOG_SCALED and len(values) > 0 and bool((values >= 0).all()) and values.max() > 100


def _set_scale(ax: object, axis: str, trials: pd.DataFrame, objective: Objective) -> None:
    """Log axis for compute objectives; symmetric-log when some trials cost 0 beside large ones."""
    setter = getattr(ax, f"set_{axis}scale")
    if _log_axis(trials, objective):
        setter("log")
    elif _zero_and_large(trials, objective):
        setter("symlog", linthresh=1.0)


def _html_axis(trials: pd.DataFrame, objective: Objective) -> tuple[Callable[[pd.Series], pd.Series], str, str]:
    """(value transform, axis title, axis type) for plotly, which has no symmetric-log axis."""
    if _log_axis(trials, objective):
        return (lambda v: v), objective.label, "log"
    if _zero_and_large(trials, objective):
        return (lambda v: np.log10(1.0 + v)), f"log10(1 + {objective.label})", "linear"
    return (lambda v: v), objective.label, "linear"


def plot_front_png(result: FrontResult, path: Path) -> Path:
    plt = pyplot()

    x, y = plot_axes(result)
    trials, colours = result.trials, family_colours(result)
    fig, ax = plt.subplots(figsize=(8, 5.5), dpi=120)
    infeasible = trials[~trials["feasible"]].dropna(subset=[x.name, y.name])
    if not infeasible.empty:
        ax.scatter(infeasible[x.name], infeasible[y.name], marker="x", color=GREY, label="infeasible (budget/privacy)")
    for family, colour in colours.items():  # dominated: grey, ringed in the family's colour, named in the legend
        mine = trials["family"] == family
        dominated = trials[trials["feasible"] & ~trials["on_front"] & mine].dropna(subset=[x.name, y.name])
        if not dominated.empty:
            ax.scatter(dominated[x.name], dominated[y.name], color=GREY, alpha=0.6, edgecolors=colour,
                       linewidths=1.2, label=f"{family} (dominated)")
        on = trials[trials["on_front"] & mine].dropna(subset=[x.name, y.name])
        if not on.empty:
            ax.scatter(on[x.name], on[y.name], color=colour, s=45, zorder=3, label=f"{family} (front)")
    line = step_front(result, x, y)
    if len(line):
        ax.step(line[x.name], line[y.name], where="post", color="black", linewidth=1.2, zorder=2,
                label=f"Pareto front of {y.name} vs {x.name}")
    _set_scale(ax, "x", trials, x)
    _set_scale(ax, "y", trials, y)
    ax.set_xlabel(x.label if x.name != "finished_order" else "trial (finishing order)")
    ax.set_ylabel(y.label)
    over = "" if len(result.objectives) <= 2 else f" (front over {', '.join(result.names)})"
    ax.set_title(f"Sweep front: {len(result.front)} of {int(trials['competing'].sum())} feasible trials; "
                 f"hypervolume {result.hypervolume:.3f}{over}", fontsize=10)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(loc="best", fontsize=8)
    fig.tight_layout()
    return save_png(fig, path)


def plot_hypervolume_png(result: FrontResult, path: Path) -> Path:
    plt = pyplot()

    hist = result.history
    fig, ax = plt.subplots(figsize=(8, 4.5), dpi=120)
    ax.step(hist["finished_order"], hist["hypervolume"], where="post", color="black", label="all families")
    for family, colour in family_colours(result).items():
        rows = hist[hist["family"] == family]
        ax.scatter(rows["finished_order"], rows["hypervolume"], color=colour, s=18, zorder=3,
                   label=f"{family} trial finished")
    bound = result.reference[0] ** len(result.reference) if result.reference else 1.0
    ax.axhline(bound, color=GREY, linestyle="--", label=f"upper bound {bound:.3g} (1.1^{len(result.reference)})")
    ax.set_xlabel("trials finished (count, in finishing order)")
    ax.set_ylabel("hypervolume (normalised objectives, unitless)")
    ax.set_title("Hypervolume growth: " + ", ".join(o.name for o in result.objectives))
    ax.grid(True, alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    return save_png(fig, path)


def plot_front_html(result: FrontResult, path: Path) -> Path:
    """The same plot in plotly: hover shows each trial's id, settings, objectives and generator folder."""
    import plotly.graph_objects as go

    x, y = plot_axes(result)
    trials, colours = result.trials, family_colours(result)
    (fx, x_title, x_type), (fy, y_title, y_type) = _html_axis(trials, x), _html_axis(trials, y)
    hover_cols = ["trial_id", "family", *[c for c in trials.columns if c.startswith(("model.", "train."))],
                  *result.names, "generator_dir"]

    def text(rows: pd.DataFrame) -> list[str]:
        return ["<br>".join(f"{c}={row[c]}" for c in hover_cols if c in row and pd.notna(row[c]))
                for _, row in rows.iterrows()]

    fig = go.Figure()
    groups = [("infeasible (budget/privacy)", ~trials["feasible"], dict(color=GREY, symbol="x"))]
    for f, c in colours.items():
        mine = trials["family"] == f
        groups += [(f"{f} (dominated)", trials["feasible"] & ~trials["on_front"] & mine,
                    dict(color=GREY, opacity=0.6, line=dict(color=c, width=1.5))),
                   (f"{f} (front)", trials["on_front"] & mine, dict(color=c, size=10))]
    for name, mask, marker in groups:
        rows = trials[np.asarray(mask)].dropna(subset=[x.name, y.name])
        if not rows.empty:
            fig.add_trace(go.Scatter(x=fx(rows[x.name]), y=fy(rows[y.name]), mode="markers", name=name, marker=marker,
                                     text=text(rows), hoverinfo="text"))
    line = step_front(result, x, y)
    if len(line):
        fig.add_trace(go.Scatter(x=fx(line[x.name]), y=fy(line[y.name]), mode="lines", line_shape="hv",
                                 name=f"Pareto front of {y.name} vs {x.name}", line=dict(color="black")))
    fig.update_layout(title=f"Sweep front (hypervolume {result.hypervolume:.3f})", xaxis_title=x_title,
                      yaxis_title=y_title, legend_title="trials", template="plotly_white")
    fig.update_xaxes(type=x_type)
    fig.update_yaxes(type=y_type)
    with atomic_path(path) as tmp:
        fig.write_html(tmp, include_plotlyjs=True, full_html=True)
    return path
