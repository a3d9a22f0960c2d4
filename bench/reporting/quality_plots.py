"""The speed–accuracy frontier per task (FNet's Figure: accuracy against training speed), drawn from quality.csv.

Left: test accuracy against the median training-step time, each layout a line across model widths (FNet's
figure: small models of one mixer against larger ones of another), the bars spanning the seeds' lowest and
highest accuracy, the front over every layout and width as a staircase (runs that did not beat the baseline by
`quality.LEARNED_MARGIN` are never on it) and the task's baseline as a dashed line. Right: the same accuracy
against parameters.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.lines import Line2D

from bench.reporting import quality, style

KIND = "quality"


def slug(task: str, seq_len, options: str = "") -> str:
    """The plot's file name; `options` (a task trained at several settings) is added, as letters, digits, dots and underscores."""
    tail = "_" + re.sub(r"[^A-Za-z0-9._]+", "-", options).strip("-") if options else ""
    return f"{KIND}__{task}_n{int(seq_len)}{tail}"


def frontier_plot(best: pd.DataFrame, task: str, seq_len, device_name: str, path: Path,
                  options: str | None = None) -> Path | None:
    """Draw `frontier_figure` into `path`; None where there is nothing to draw."""
    return style.save(frontier_figure(best, task, seq_len, device_name, options), path)


def frontier_figure(best: pd.DataFrame, task: str, seq_len, device_name: str, options: str | None = None):
    """Accuracy against step time and against parameters for one task setting (`options`: the task's options, or
    None for whichever it has); None where no layout learned it."""
    rows = best[(best["task"] == task) & (best["seq_len"] == seq_len)]
    if options is not None:
        rows = rows[rows["task_options"] == options]
    if rows.empty or not quality.learned(rows).any():
        return None
    fig, axes = style.figure(13, 5.4, ncols=2, gap=0.8, top=style.TOP + 0.1)
    points = quality.front(rows)
    handles = {}
    for ax, column, label in ((axes[0], "step_ms", "training step (ms, median)"), (axes[1], "params", "parameters")):
        for layout in style.mixer_order(rows["layout"].unique()):
            line = rows[rows["layout"] == layout].sort_values("dim")
            x = line[column].to_numpy(float)
            y = line["accuracy"].to_numpy(float)
            low = y - line["accuracy_min"].to_numpy(float)
            high = line["accuracy_max"].to_numpy(float) - y
            mine = style.mixer_style(layout)
            if column == "params" and rows["dim"].nunique() > 1:
                for x_at, y_at, dim in zip(x, y, line["dim"]):
                    ax.annotate(f"d={int(dim)}", (x_at, y_at), xytext=(3, -9), textcoords="offset points",
                                fontsize=6, color="0.4")
            handles[layout] = ax.errorbar(x, y, yerr=[low, high], linewidth=1.4, markersize=6, capsize=2,
                                          label=layout, color=mine["color"], marker=mine["marker"])
        baseline = float(rows["baseline"].iloc[0])
        ax.axhline(baseline, color="0.35", linestyle="--", linewidth=1)
        ax.set_xscale("log")
        style.log_ticks(ax.xaxis)
        ax.set_xlabel(label)
        ax.set_ylim(0, 1.02)
        ax.grid(True, which="major", alpha=0.3)
    times, accuracies = points["step_ms"].to_numpy(float), points["accuracy"].to_numpy(float)
    x1 = axes[0].get_xlim()[1]
    axes[0].step(np.r_[times, x1], np.r_[accuracies, accuracies[-1]], where="post", color="0.15", linewidth=1.1,
                 linestyle=":", zorder=1)
    widths = rows["dim"].nunique() > 1
    for layout, dim, time_ms, accuracy in zip(points["layout"], points["dim"], times, accuracies):
        name = f"{layout} d={int(dim)}" if widths else layout
        axes[0].annotate(name, (time_ms, accuracy), xytext=(4, 4), textcoords="offset points", fontsize=7,
                         fontweight="bold")
    axes[0].set_ylabel("test accuracy (best rate on validation; bars: seeds' min–max)")
    extra = [Line2D([], [], color="0.35", linestyle="--", label=f"baseline ({baseline:.0%})"),
             Line2D([], [], color="0.15", linestyle=":",
                    label=f"speed–accuracy front, all widths\n(bold names are on it;\nonly runs {quality.LEARNED_MARGIN:.0%}"
                          "\nabove the baseline)")]
    style.legend(fig, [handles[m] for m in style.mixer_order(handles)] + extra, top=style.TOP + 0.1,
                 title="a line joins a layout's widths")
    setting = f" [{options}]" if options else ""
    style.title(fig, f"Speed–accuracy frontier: {task}{setting}, {int(seq_len)} tokens\n{device_name}")
    return fig


def draw(table: pd.DataFrame, out: Path) -> dict[tuple[str, tuple], Path]:
    """One frontier plot per task and length that some layout learned, from the quality table
    (`quality.load_quality`); returns the manifest {(KIND, (("task", task), ("seq_len", length))): PNG path}."""
    best = quality.best_runs(table)
    if best.empty:
        return {}
    names = [n for n in table["device_name"] if n]
    manifest = {}
    for (task, options, seq_len), _ in best.groupby(quality.PANEL_KEYS, sort=True):
        several = best[best["task"] == task]["task_options"].nunique() > 1  # only then is the setting named
        name = slug(task, seq_len, options if several else "")
        path = frontier_plot(best, task, seq_len, names[0] if names else "", out / f"{name}.png",
                             options if several else None)
        if path is not None:
            key = (("task", task), ("seq_len", seq_len)) + ((("task_options", options),) if several else ())
            manifest[(KIND, key)] = path
    return manifest
