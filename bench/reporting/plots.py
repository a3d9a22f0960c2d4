"""The cost plots of a run, drawn from its results table and env.json alone (no torch needed).

`draw(table, env, out)` writes one PNG per (plot kind × group) into `out`, named `<kind>__<group>.png`
(e.g. `time__bfloat16_forward_d768_batch8_cuda.png`), and returns a manifest {(kind, group): path} that
the report reads instead of rebuilding file names; the kinds are listed in `KINDS`. Every mixer keeps one
colour and one marker in every plot (`style.mixer_style`).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib import colormaps, ticker
from matplotlib.colors import LogNorm
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from bench.reporting import analysis, style
from bench.reporting.style import (BOTTOM, group_slug, LEFT, LEGEND, TOP, figure, legend, length_axis, log_ticks, memory_unit,
                                   mixer_order, mixer_style, plain)

# How a point that did not run is marked at the top edge of a plot, at the length where it happened.
_FAILURE_MARKS = {"oom": ("x", "out of memory"), "timeout": ("+", "timed out"), "error": ("$!$", "error")}
# Plot kinds in report order: file-name prefix -> what the plot shows.
KINDS = {
    "time": "Time per call vs sequence length",
    "memory": "Peak memory vs sequence length",
    "throughput": "Throughput vs sequence length",
    "pareto": "Pareto frontier: time vs memory held + peak",
    "winners": "Time relative to the fastest mixer at each length",
    "roofline": "Roofline: achieved FLOP/s vs arithmetic intensity",
    "modes": "Forward vs train",
}
# The forward-vs-train plot's group: a cost plot's group without the mode, which it splits into two panels.
MODES_GROUP_KEYS = [column for column in analysis.GROUP_KEYS if column != "mode"]
# The device's memory is drawn on the memory plot when it is at most this many times the largest reading.
MEMORY_LINE_REACH = 1000


def _device_name(rows: pd.DataFrame, env: dict) -> str:
    names = [name for name in rows.get("device_name", []) if name]
    return names[0] if names else str(env.get("device_name") or env.get("device") or "unknown device")


def _title(fig: Figure, kind: str, key: dict, rows: pd.DataFrame, env: dict) -> None:
    style.title(fig, f"{KINDS[kind]}\n{_device_name(rows, env)} · {analysis.describe_group(key)}")


def _series(rows: pd.DataFrame):
    """(mixer, its ok rows sorted by length) in the usual mixer order."""
    ok = rows[(rows["status"] == "ok") & (rows["time_ms"] > 0)]
    for mixer in mixer_order(ok["mixer"].unique()):
        yield mixer, ok[ok["mixer"] == mixer].sort_values("seq_len")


def _exponent_labels(scaling: pd.DataFrame, column: str) -> dict:
    """Legend labels with the fitted exponent: 'fft (n^1.13)'."""
    if column not in scaling:
        return {}
    return {mixer: f"{mixer} (n$^{{{0.0 if abs(value) < 0.005 else value:.2f}}}$)" if pd.notna(value) else mixer
            for mixer, value in zip(scaling["mixer"], scaling[column])}


def _mark_failures(ax, rows: pd.DataFrame) -> list:
    """Mark points that failed (✕ OOM, + timeout, ! error) in a band at the top, at the length where it happened.

    Returns grey legend entries for the kinds of failure shown.
    """
    failed = rows[rows["status"].isin(list(_FAILURE_MARKS))]
    if failed.empty:
        return []
    low, high = ax.get_ylim()
    if ax.get_yscale() == "log" and low > 0:
        ax.set_ylim(low, high * (high / low) ** 0.16)
    else:
        ax.set_ylim(low, high + 0.16 * (high - low))
    proxies, stacked = {}, {}
    for mixer in mixer_order(failed["mixer"].unique()):
        mine = failed[failed["mixer"] == mixer]
        for seq_len, status in zip(mine["seq_len"], mine["status"]):
            level = stacked.get(seq_len, 0)
            stacked[seq_len] = level + 1
            marker, words = _FAILURE_MARKS[status]
            ax.plot([float(seq_len)], [0.955 - 0.045 * level], marker=marker, markersize=8, markeredgewidth=2,
                    color=mixer_style(mixer)["color"], linestyle="none", transform=ax.get_xaxis_transform(),
                    clip_on=False)
            proxies[status] = Line2D([], [], marker=marker, markersize=7, markeredgewidth=2, color="0.3",
                                     linestyle="none", label=f"{words} (at top)")
    return [proxies[status] for status in _FAILURE_MARKS if status in proxies]


def _line_plot(kind: str, rows: pd.DataFrame, key: dict, env: dict, scaling: pd.DataFrame):
    """Time, memory or throughput against length: one line per mixer, log–log."""
    column, label = {"time": ("time_ms", "time per call (ms)"), "memory": ("peak_mem_mb", "peak memory (MB)"),
                     "throughput": ("tokens_per_s", "throughput (tokens/s)")}[kind]
    labels = _exponent_labels(scaling, {"time": "time_exponent", "memory": "mem_exponent"}.get(kind, ""))
    memory_mb = env.get("device_memory_mb")
    memory_mb = memory_mb if isinstance(memory_mb, (int, float)) and memory_mb > 0 else None
    size = "" if not memory_mb else f"{memory_mb / 1024:,.0f} GB" if memory_mb >= 1024 else f"{memory_mb:,.0f} MB"
    memory_name = f"{'host' if env.get('device') == 'cpu' else 'device'} memory ({size})"
    scale, memory_line = 1.0, False
    if kind == "memory":
        ok_mem = rows.loc[rows["status"] == "ok", "peak_mem_mb"]
        largest = float(ok_mem.max()) if (ok_mem > 0).any() else 0.0
        # the memory's line is drawn when it is within reach of the data; far above, it would flatten the curves
        memory_line = bool(memory_mb) and largest > 0 and memory_mb <= MEMORY_LINE_REACH * largest
        scale, unit = memory_unit(max(largest, memory_mb if memory_line else 0.0))
        label = f"peak memory ({unit})"
    fig, (ax,) = figure(9, 5.2)
    handles = []
    for mixer, series in _series(rows):
        values = series[column]
        if kind == "throughput":  # an older table without tokens_per_s: the same quantity from its parts
            values = values.where(values > 0, series["batch"] * series["seq_len"] / (series["time_ms"] / 1e3))
        keep = (values > 0).fillna(False).to_numpy(bool)
        if not keep.any():
            continue
        style = mixer_style(mixer)
        x = series["seq_len"].to_numpy(float)[keep]
        handles += ax.plot(x, values.to_numpy(float)[keep] / scale, label=labels.get(mixer, mixer), linewidth=1.6,
                           markersize=6, **style)
        if kind == "time":
            low, high = time_band(series)
            low, high = low[keep], high[keep]
            if np.isfinite(low).all() and np.isfinite(high).all():
                ax.fill_between(x, low, high, color=style["color"], alpha=0.2, linewidth=0)
    if not handles:
        return None
    ax.set_yscale("log")
    if memory_line:
        handles.append(ax.axhline(memory_mb / scale, color="0.2", linestyle="--", linewidth=1.2, label=memory_name))
    elif kind == "memory" and memory_mb:
        handles.append(Line2D([], [], linestyle="none", label=f"{memory_name}:\nfar above, not drawn"))
    length_axis(ax, rows["seq_len"].dropna())
    if kind != "throughput":
        handles += _mark_failures(ax, rows)
    log_ticks(ax.yaxis, ticker.EngFormatter(sep="") if kind == "throughput" else plain)
    ax.set_ylabel(label)
    ax.grid(True, which="major", alpha=0.3)
    if kind == "time":
        several = bool((rows["rounds"].fillna(1) > 1).any())
        text = ("band: lowest to highest round median (between processes)" if several
                else "band: p20–p80 of the repeats (one process)")
        ax.text(0.01, 0.99, text, transform=ax.transAxes, fontsize=7, color="0.4", va="top")
    legend(fig, handles, title="exponent fitted on the\nlongest lengths" if kind != "throughput" else None)
    _title(fig, kind, key, rows, env)
    return fig


def time_band(series: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """The band drawn around a time line: the spread between rounds where there were several, else p20–p80."""
    several = (series["rounds"].fillna(1) > 1).to_numpy(bool)
    low = np.where(several, series["time_ms_lo"].to_numpy(float), series["time_ms_p20"].to_numpy(float))
    high = np.where(several, series["time_ms_hi"].to_numpy(float), series["time_ms_p80"].to_numpy(float))
    return low, high


def representative_lengths(rows: pd.DataFrame, count: int = 4) -> list[int]:
    """Up to `count` lengths for the Pareto plot: the smallest, the one nearest 512, the largest at which
    the most mixers ran, and the largest."""
    ok = rows[(rows["status"] == "ok") & (rows["time_ms"] > 0) & (analysis.total_mem_mb(rows) > 0)]
    if ok.empty:
        return []
    per_length = ok.groupby("seq_len")["mixer"].nunique().sort_index()
    lengths = [int(n) for n in per_length.index]
    near_512 = min(lengths, key=lambda n: (abs(math.log2(n) - 9), n))
    common = int(per_length[per_length == per_length.max()].index.max())
    return sorted({lengths[0], near_512, common, lengths[-1]})[:count]


def _place_labels(ax, points, width_in: float, height_in: float) -> None:
    """Label each (x, y, text, bold) point where its label overlaps the fewest other labels and markers."""
    (x0, x1), (y0, y1) = ax.get_xlim(), ax.get_ylim()
    to_in = [((math.log(x) - math.log(x0)) / (math.log(x1) - math.log(x0)) * width_in,
              (math.log(y) - math.log(y0)) / (math.log(y1) - math.log(y0)) * height_in) for x, y, *_ in points]
    boxes = [(px - 0.06, py - 0.06, px + 0.06, py + 0.06) for px, py in to_in]

    def overlap(a, b):
        return max(0.0, min(a[2], b[2]) - max(a[0], b[0])) * max(0.0, min(a[3], b[3]) - max(a[1], b[1]))

    for (x, y, text, bold), (px, py) in zip(points, to_in):
        w, h = len(text) * (0.062 if bold else 0.056), 0.11
        options = [(0.07, 0.01), (0.07, -0.12), (-0.07 - w, 0.01), (-0.07 - w, -0.12), (-w / 2, 0.08),
                   (-w / 2, -0.19)]
        best, best_score = options[0], math.inf
        for dx, dy in options:
            box = (px + dx, py + dy, px + dx + w, py + dy + h)
            outside = (max(0.0, -box[0]) + max(0.0, box[2] - width_in) + max(0.0, -box[1])
                       + max(0.0, box[3] - height_in))
            score = sum(overlap(box, other) for other in boxes) + outside
            if score < best_score - 1e-9:
                best, best_score = (dx, dy), score
        dx, dy = best
        boxes.append((px + dx, py + dy, px + dx + w, py + dy + h))
        ax.annotate(text, (x, y), xytext=(dx * 72, dy * 72), textcoords="offset points", fontsize=7,
                    ha="left", va="bottom", color="black" if bold else "0.4",
                    fontweight="bold" if bold else "normal")


def _pareto_plot(rows: pd.DataFrame, key: dict, env: dict, scaling: pd.DataFrame):
    """Time vs memory (held + peak, `analysis.total_mem_mb`) at a few lengths, the frontier as a staircase,
    every point named."""
    lengths = representative_lengths(rows)
    if not lengths:
        return None
    front = analysis.pareto_front(rows)
    ncols, nrows = min(2, len(lengths)), math.ceil(len(lengths) / 2)
    panel_width, panel_height, gap, row_gap = 3.7, 2.9, 0.95, 0.8
    width = LEFT + LEGEND + ncols * panel_width + (ncols - 1) * gap
    height = TOP + BOTTOM + nrows * panel_height + (nrows - 1) * row_gap
    top = TOP + 0.2
    height += 0.2
    fig, axes = figure(width, height, ncols=ncols, nrows=nrows, top=top, gap=gap, row_gap=row_gap)
    for ax in axes[len(lengths):]:
        ax.set_visible(False)
    seen = {}
    for ax, seq_len in zip(axes, lengths):
        here = rows.assign(total_mem_mb=analysis.total_mem_mb(rows))
        here = here[(here["seq_len"] == seq_len) & (here["status"] == "ok") & (here["time_ms"] > 0)
                    & (here["total_mem_mb"] > 0)].drop_duplicates("mixer", keep="last")
        on_front = front[(front["seq_len"] == seq_len) & (front["total_mem_mb"] > 0)].sort_values("time_ms")
        best = set(on_front["mixer"])
        scale, unit = memory_unit(float(here["total_mem_mb"].max()) if len(here) else 0.0)
        points = []
        for mixer in mixer_order(here["mixer"].unique()):
            point = here[here["mixer"] == mixer].iloc[0]
            style = mixer_style(mixer)
            handle = ax.plot([point["time_ms"]], [point["total_mem_mb"] / scale], linestyle="none", markersize=8,
                             markeredgecolor="black" if mixer in best else style["color"], label=mixer,
                             zorder=3, **style)[0]
            seen.setdefault(mixer, handle)
            points.append((float(point["time_ms"]), float(point["total_mem_mb"]) / scale, mixer, mixer in best))
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.margins(0.18)
        ax.autoscale_view()
        if len(on_front):
            (x0, x1), (y0, y1) = ax.get_xlim(), ax.get_ylim()
            times, mems = on_front["time_ms"].to_numpy(float), on_front["total_mem_mb"].to_numpy(float) / scale
            ax.step(np.r_[times[0], times, x1], np.r_[y1, mems, mems[-1]], where="post", color="0.15",
                    linewidth=1.1, linestyle="--", zorder=1)
            ax.set_xlim(x0, x1)
            ax.set_ylim(y0, y1)
        log_ticks(ax.xaxis)
        log_ticks(ax.yaxis)
        _place_labels(ax, points, panel_width, panel_height)
        ax.set_title(f"{analysis.format_seq_len(seq_len)} tokens", fontsize=10, y=1.01)
        ax.set_xlabel("time per call (ms)")
        ax.set_ylabel(f"memory held + peak ({unit})")
        ax.grid(True, which="major", alpha=0.3)
    handles = [seen[mixer] for mixer in mixer_order(seen)]
    handles.append(Line2D([], [], color="0.15", linestyle="--", label="Pareto frontier\n(bold names are on it)"))
    legend(fig, handles, top=top)
    _title(fig, "pareto", key, rows, env)
    return fig


_STATUS_TEXT = {"oom": "OOM", "timeout": "T/O", "unsupported": "n/a", "error": "err"}


def _winners_plot(rows: pd.DataFrame, key: dict, env: dict, scaling: pd.DataFrame):
    """Mixers × lengths, coloured and annotated by time relative to the fastest at that length."""
    ok = rows[(rows["status"] == "ok") & (rows["time_ms"] > 0)]
    if ok.empty:
        return None
    mixers = mixer_order(rows["mixer"].unique())
    lengths = sorted(int(n) for n in rows["seq_len"].dropna().unique())
    times = ok.pivot_table(index="mixer", columns="seq_len", values="time_ms", aggfunc="last")
    ratio = times.reindex(index=mixers, columns=lengths)
    ratio = ratio / ratio.min(axis=0)
    left, right = 1.45, 1.25
    width = max(6.5, left + right + 0.62 * len(lengths))
    height = TOP + BOTTOM + 0.4 * len(mixers)
    fig, (ax,) = figure(width, height, left=left, right=right)
    cmap = colormaps["viridis_r"].with_extremes(bad="#eeeeee")
    norm = LogNorm(vmin=1.0, vmax=max(2.0, float(np.nanmax(ratio.to_numpy(float)))))
    image = ax.imshow(np.ma.masked_invalid(ratio.to_numpy(float)), cmap=cmap, norm=norm, aspect="auto")
    status = rows.drop_duplicates(["mixer", "seq_len"], keep="last").set_index(["mixer", "seq_len"])["status"]
    for i, mixer in enumerate(mixers):
        for j, seq_len in enumerate(lengths):
            value = ratio.iat[i, j]
            if pd.notna(value):
                red, green, blue, _ = cmap(norm(value))
                light = 0.299 * red + 0.587 * green + 0.114 * blue > 0.55
                text = "1" if value == 1 else f"{value:.1f}" if value < 9.95 else f"{value:,.0f}"
                ax.text(j, i, text, ha="center", va="center", fontsize=8, color="black" if light else "white",
                        fontweight="bold" if value == 1 else "normal")
            else:
                text = _STATUS_TEXT.get(status.get((mixer, seq_len), ""), "")
                ax.text(j, i, text, ha="center", va="center", fontsize=7, color="0.35")
    ax.set_xticks(range(len(lengths)), [analysis.format_seq_len(n) for n in lengths])
    ax.set_yticks(range(len(mixers)), mixers)
    for label, mixer in zip(ax.get_yticklabels(), mixers):
        label.set_color(mixer_style(mixer)["color"])
    ax.set_xlabel("sequence length (tokens)")
    ax.tick_params(length=0)
    box = ax.get_position()
    cax = fig.add_axes((box.x1 + 0.2 / width, box.y0, 0.16 / width, box.height))
    colorbar = fig.colorbar(image, cax=cax)
    colorbar.set_label("time ÷ fastest at that length (1 = fastest)", fontsize=8)
    log_ticks(colorbar.ax.yaxis)
    _title(fig, "winners", key, rows, env)
    return fig


def _roofline_plot(rows: pd.DataFrame, key: dict, env: dict, scaling: pd.DataFrame):
    """Achieved FLOP/s against FLOP per minimal byte, under the run's measured bandwidth and FLOP/s ceilings."""
    ok = rows[(rows["status"] == "ok") & (rows["time_ms"] > 0) & (rows["flops"] > 0) & (rows["bytes_min"] > 0)]
    if ok.empty:
        return None
    fig, (ax,) = figure(9, 5.2, right=2.6)
    intensity_all = ok["flops"] / ok["bytes_min"]
    low, high = float(intensity_all.min()) / 3, float(intensity_all.max()) * 3
    peaks = env.get("peak_tflops") if isinstance(env.get("peak_tflops"), dict) else {}
    peak_tflops, bandwidth_gbps = peaks.get(key.get("dtype")), env.get("peak_bandwidth_gbps")
    has_peak = isinstance(peak_tflops, (int, float)) and peak_tflops > 0
    has_bandwidth = isinstance(bandwidth_gbps, (int, float)) and bandwidth_gbps > 0
    roof = []
    if has_bandwidth:
        if has_peak:
            ridge = peak_tflops * 1e3 / bandwidth_gbps
            low, high = min(low, ridge / 3), max(high, ridge * 3)
        x = np.geomspace(low, high, 200)
        y = np.minimum(x * bandwidth_gbps / 1e3, peak_tflops) if has_peak else x * bandwidth_gbps / 1e3
        label = f"measured roof:\n{bandwidth_gbps:,.0f} GB/s" + (
            f", {peak_tflops:,.3g} TFLOP/s" if has_peak else f" (no {key.get('dtype')} peak)")
        roof = ax.plot(x, y, color="0.15", linewidth=2.2, label=label, zorder=1)
    elif has_peak:
        roof = [ax.axhline(peak_tflops, color="0.15", linewidth=2.2,
                           label=f"measured peak:\n{peak_tflops:,.3g} TFLOP/s (no bandwidth)")]
    handles = []
    for mixer, series in _series(ok):
        intensity = (series["flops"] / series["bytes_min"]).to_numpy(float)
        achieved = (series["flops"] / (series["time_ms"] / 1e3) / 1e12).to_numpy(float)
        style = mixer_style(mixer)
        handles += ax.plot(intensity, achieved, linewidth=0.9, alpha=0.9, markersize=5, label=mixer, zorder=3,
                           **style)
        ax.annotate(analysis.format_seq_len(series["seq_len"].iloc[-1]), (intensity[-1], achieved[-1]),
                    xytext=(4, -3), textcoords="offset points", fontsize=6.5, color=style["color"])
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlim(low, high)
    bottom, top = ax.get_ylim()
    ax.set_ylim(bottom, max(top, peak_tflops * 1.8 if has_peak else top))  # the flat roof below the top edge
    log_ticks(ax.xaxis)
    log_ticks(ax.yaxis)
    ax.set_xlabel("arithmetic intensity (FLOP per minimal byte moved)")
    ax.set_ylabel("achieved TFLOP/s")
    ax.grid(True, which="major", alpha=0.3)
    ax.text(0.01, 0.99, "one marker per length; the label gives the longest", transform=ax.transAxes,
            fontsize=7, color="0.4", va="top")
    legend(fig, handles + list(roof), right=2.6)
    _title(fig, "roofline", key, rows, env)
    return fig


def _modes_plot(rows: pd.DataFrame, key: dict, env: dict, scaling: pd.DataFrame):
    """Time vs length, forward and train side by side on one y scale."""
    ok = rows[(rows["status"] == "ok") & (rows["time_ms"] > 0)]
    if not {"forward", "train"} <= set(ok["mode"]):
        return None
    top = TOP + 0.2
    fig, axes = figure(12, 5.2, ncols=2, top=top, gap=0.35, sharey=True)
    seen, marks = {}, {}
    for ax, mode in zip(axes, ("forward", "train")):
        for mixer, series in _series(ok[ok["mode"] == mode]):
            seen[mixer] = ax.plot(series["seq_len"].to_numpy(float), series["time_ms"].to_numpy(float),
                                  label=mixer, linewidth=1.5, markersize=5, **mixer_style(mixer))[0]
        ax.set_yscale("log")
        length_axis(ax, ok["seq_len"])
        ax.set_title("forward" if mode == "forward" else "train (forward + backward)", fontsize=10, y=1.01)
        ax.grid(True, which="major", alpha=0.3)
    for ax, mode in zip(axes, ("forward", "train")):  # after both are drawn: the shared y range is final
        for proxy in _mark_failures(ax, rows[rows["mode"] == mode]):
            marks[proxy.get_label()] = proxy
    log_ticks(axes[0].yaxis)
    axes[0].set_ylabel("time per call (ms)")
    legend(fig, [seen[mixer] for mixer in mixer_order(seen)] + list(marks.values()), top=top)
    _title(fig, "modes", key, rows, env)
    return fig


_PLOTS = {"time": _line_plot, "memory": _line_plot, "throughput": _line_plot, "pareto": _pareto_plot,
          "winners": _winners_plot, "roofline": _roofline_plot, "modes": _modes_plot}


def figure_of(kind: str, rows: pd.DataFrame, key: dict, env: dict, scaling: pd.DataFrame):
    """The Figure of plot `kind` for one group's rows (scaling: its fitted exponents); None when it has no data."""
    plot = _PLOTS[kind]
    return plot(kind, rows, key, env, scaling) if plot is _line_plot else plot(rows, key, env, scaling)


def _render(job) -> Path | None:
    """Draw one plot and save it; None when it has no data."""
    kind, rows, key, env, scaling, path = job
    return style.save(figure_of(kind, rows, key, env, scaling), path)


def _jobs(table: pd.DataFrame, env: dict, out: Path) -> list[tuple]:
    """One (kind, rows, group key, env, scaling rows, path) per plot to try, in report order."""
    scaling = analysis.scaling_exponents(table)
    jobs = []
    for values, rows in table.groupby(analysis.GROUP_KEYS, dropna=False, sort=True):
        key = dict(zip(analysis.GROUP_KEYS, values))
        mine = pd.Series(True, index=scaling.index)
        for column, value in key.items():
            mine &= (scaling[column] == value).fillna(False) | (scaling[column].isna() & pd.isna(value))
        for kind in _PLOTS:
            if kind != "modes":
                jobs.append((kind, rows, key, env, scaling[mine], out / f"{kind}__{group_slug(key)}.png"))
    for values, rows in table.groupby(MODES_GROUP_KEYS, dropna=False, sort=True):
        key = dict(zip(MODES_GROUP_KEYS, values))
        jobs.append(("modes", rows, key, env, scaling, out / f"modes__{group_slug(key)}.png"))
    return jobs


def draw(table: pd.DataFrame, env: dict, out: Path) -> dict[tuple[str, tuple], Path]:
    """Draw every cost plot that has data into `out`; returns the manifest {(kind, group): PNG path}.

    `table` is a prepared results table (`analysis.load_results`); a group is `analysis.group_id` of the
    plot's group key: over GROUP_KEYS, or over MODES_GROUP_KEYS for the forward-vs-train plot.
    """
    manifest = {}
    for job in _jobs(table, env, out):
        path = _render(job)
        if path is not None:
            manifest[(job[0], analysis.group_id(job[2]))] = path
    return manifest
