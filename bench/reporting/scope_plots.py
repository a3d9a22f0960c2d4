"""Plots of a mixer inside a model: its speed-up over attention at mixer, block and encoder scope, and the
share of a block's and an encoder's step spent mixing (see `bench.reporting.scopes`)."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
from matplotlib.lines import Line2D

from bench.reporting import analysis, scopes, style

SCOPE_LINES = {"mixer": ":", "block": "--", "encoder": "-"}
GROUP = ["dim", "batching", "dtype", "mode", "device"]
# In report order.
KINDS = {"share": "Share of the step spent in the token mixer",
         "speedup": "Speed-up over attention at mixer, block and encoder scope"}


def slug(key: dict) -> str:
    return style.group_slug({**key, "scope": "mixer"})


def _title(fig, kind: str, key: dict, rows: pd.DataFrame) -> None:
    name = next((n for n in rows.get("device_name", []) if n), "")
    style.title(fig, f"{KINDS[kind]}\n{name} · {analysis.describe_group({**key, 'scope': 'mixer'})}")


def speedup_plot(rows: pd.DataFrame, key: dict, path: Path) -> Path | None:
    """One panel per layout: attention's time / the layout's, against length, a line per scope."""
    table = scopes.speedups(rows)
    if table.empty or table["scope"].nunique() < 2:
        return None
    layouts = style.mixer_order(table["mixer"].unique())
    ncols = min(3, len(layouts))
    nrows = math.ceil(len(layouts) / ncols)
    width = style.LEFT + 1.8 + ncols * 3.3 + (ncols - 1) * 0.55
    height = style.TOP + 0.2 + style.BOTTOM + nrows * 2.7 + (nrows - 1) * 0.75
    fig, axes = style.figure(width, height, ncols=ncols, nrows=nrows, right=1.8, top=style.TOP + 0.2, gap=0.55,
                             sharey=True)
    for ax in axes[len(layouts):]:
        ax.set_visible(False)
    for ax, layout in zip(axes, layouts):
        mine = table[table["mixer"] == layout]
        for scope in analysis_scopes(mine):
            line = mine[mine["scope"] == scope].sort_values("seq_len")
            ax.plot(line["seq_len"].to_numpy(float), line["speedup"].to_numpy(float), linestyle=SCOPE_LINES[scope],
                    linewidth=1.6, markersize=5, **style.mixer_style(layout))
        ax.axhline(1.0, color="0.3", linewidth=0.8)
        ax.set_yscale("log")
        style.length_axis(ax, table["seq_len"])
        ax.set_title(layout, fontsize=10, color=style.mixer_style(layout)["color"], y=1.01)
        ax.grid(True, which="major", alpha=0.3)
    style.log_ticks(axes[0].yaxis)
    for ax in axes[::ncols]:
        ax.set_ylabel("attention time ÷ layout time")
    handles = [Line2D([], [], color="0.2", linestyle=SCOPE_LINES[s], label=f"{s} scope") for s in SCOPE_LINES]
    handles.append(Line2D([], [], color="0.3", linewidth=0.8, label="as fast as attention"))
    style.legend(fig, handles, right=1.8, top=style.TOP + 0.2)
    _title(fig, "speedup", key, rows)
    return style.save(fig, path)


def analysis_scopes(rows: pd.DataFrame) -> list[str]:
    return [scope for scope in SCOPE_LINES if scope in set(rows["scope"])]


def share_plot(rows: pd.DataFrame, key: dict, path: Path) -> Path | None:
    """The mixing share of each layout's block and encoder step, against length."""
    table = scopes.mixer_share(rows)
    if table.empty:
        return None
    fig, (ax,) = style.figure(9, 5.2)
    handles = {}
    for layout in style.mixer_order(table["mixer"].unique()):
        for scope in ("block", "encoder"):
            line = table[(table["mixer"] == layout) & (table["scope"] == scope)].sort_values("seq_len")
            if line.empty:
                continue
            handles[layout] = ax.plot(line["seq_len"].to_numpy(float), 100 * line["share"].to_numpy(float),
                                      linestyle=SCOPE_LINES[scope], linewidth=1.6, markersize=5, label=layout,
                                      **style.mixer_style(layout))[0]
    style.length_axis(ax, table["seq_len"])
    ax.set_ylim(0, max(100.0, float(100 * table["share"].max()) * 1.05))
    ax.set_ylabel("mixer time alone × layers ÷ step time (%)")
    ax.grid(True, which="major", alpha=0.3)
    ax.text(0.01, 0.99, "above 100%: the mixer alone took longer than in the model (noise, or caching)",
            transform=ax.transAxes, fontsize=7, color="0.4", va="top")
    scope_handles = [Line2D([], [], color="0.2", linestyle=SCOPE_LINES[s], label=f"{s} step") for s in ("block", "encoder")]
    style.legend(fig, [handles[m] for m in style.mixer_order(handles)] + scope_handles)
    _title(fig, "share", key, rows)
    return style.save(fig, path)


def draw(table: pd.DataFrame, out: Path) -> dict[tuple[str, tuple], Path]:
    """Both plots for every group that has more than one scope; returns the manifest {(kind, group): PNG path},
    the group being `analysis.group_id` of its key over GROUP."""
    manifest = {}
    if table["scope"].nunique() < 2:
        return manifest
    for values, rows in table.groupby(GROUP, dropna=False, sort=True):
        key = dict(zip(GROUP, values))
        for kind, plot in (("speedup", speedup_plot), ("share", share_plot)):
            path = plot(rows, key, out / f"{kind}__{slug(key)}.png")
            if path is not None:
                manifest[(kind, analysis.group_id(key))] = path
    return manifest
