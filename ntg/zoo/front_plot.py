"""The sweep's front with one generator highlighted: the ``front.png`` of its card (where it sits among the
trade-offs the sweep found)."""

from __future__ import annotations

from pathlib import Path

from ntg.search.pareto import FrontResult
from ntg.search.pareto_plots import GREY, _set_scale, family_colours, plot_axes, step_front
from ntg.utils.plots import pyplot, save_png


def plot_front_highlight(result: FrontResult, trial_id: str, path: Path) -> Path:
    """Feasible trials (front in family colours, dominated grey), the front's step line and ``trial_id`` as a
    large star, with the objectives' names and units on the axes."""
    plt = pyplot()

    x, y = plot_axes(result)
    trials = result.trials[result.trials["competing"]].dropna(subset=[x.name, y.name])
    colours = family_colours(result)
    fig, ax = plt.subplots(figsize=(7, 4.8), dpi=110)
    dominated = trials[~trials["on_front"]]
    if not dominated.empty:
        ax.scatter(dominated[x.name], dominated[y.name], color=GREY, alpha=0.6, label="dominated trials")
    for family, colour in colours.items():
        on = trials[trials["on_front"] & (trials["family"] == family)]
        if not on.empty:
            ax.scatter(on[x.name], on[y.name], color=colour, s=40, zorder=3, label=f"{family} (front)")
    line = step_front(result, x, y)
    if len(line):
        ax.step(line[x.name], line[y.name], where="post", color="black", linewidth=1.0, zorder=2,
                label="Pareto front")
    me = trials[trials["trial_id"] == trial_id]
    if not me.empty:
        ax.scatter(me[x.name], me[y.name], marker="*", s=320, color="gold", edgecolors="black", zorder=4,
                   label=f"this generator ({trial_id})")
    _set_scale(ax, "x", trials, x)
    _set_scale(ax, "y", trials, y)
    ax.set_xlabel(x.label)
    ax.set_ylabel(y.label)
    ax.set_title(f"Sweep front (validation objectives): {len(result.front)} of {len(trials)} feasible trials",
                 fontsize=10)
    ax.legend(fontsize=8, loc="best")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return save_png(fig, path)
