"""Compare two run folders point by point (e.g. two GPUs, or a baseline and a change), from their results alone.

`compare(run_a, run_b)` matches points on what was measured (mixer, scope, shape, seq_len, dim, batch,
dtype, mode) and gives the time and memory ratios B / A for points that ran in both (below 1: B is faster
or smaller), with a `verdict` per point (B against A):
- `slower` when B's time is more than `threshold` above A's AND B's lowest round is above A's highest
  round; `faster` the other way round; `within-noise` otherwise. This is asv's rule: a change is called
  only when it exceeds both runs' between-round spread. With one round per run there is no
  between-process spread to go on, so a single process's p20–p80 band stands in for it (a weaker test,
  since one process can sit in a slow mode for good: docs/methods.md, "Worker processes").
Points present in only one run are listed with `only_in` = "a" or "b". Each run's rows are read with
`analysis.load_results`: where a point has several rows (re-measured after its mixer changed), the later
row is the one compared. It writes `compare.csv` and `compare.png` into `out_dir`, by default
`<run_b>/compare-<name of run_a>/`, next to the newer run. `format_table` renders the result for a terminal.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.lines import Line2D

from bench.reporting import analysis
from bench.reporting import style
from bench.reporting.style import figure, legend, length_axis, log_ticks, mixer_order, mixer_style

KEYS = ["mixer", "scope", "seq_len", "dim", *analysis.SHAPE_KEYS, "batch", "dtype", "mode"]
_CARRIED = ["batching", "device_name", "status", "time_ms", "time_ms_lo", "time_ms_hi", "time_ms_p20", "time_ms_p80",
            "rounds", "peak_mem_mb", "tokens_per_s", "error"]
VERDICTS = ("faster", "slower", "within-noise")
# Smallest relative change called a difference. On the 2-core development CPU, two runs of the same code (2
# rounds each) differed by up to 1.28x per point on a quiet machine and up to 1.58x with other work running;
# with 0.5 every point of same-code runs read within-noise while fft doing its work twice (1.7-2.2x) read
# slower at all 10 of its points (results/reference/noise-check/). The GPU's is a placeholder until a GPU run
# measures its between-run spread.
DEFAULT_THRESHOLD = {"cpu": 0.5, "cuda": 0.05}


def _points(run_dir) -> pd.DataFrame:
    """One row per point and batching label: the later row where a point was measured again."""
    table = analysis.load_results(run_dir)
    return table.drop_duplicates([*KEYS, "batching"], keep="last")[KEYS + _CARRIED]


def _band(table: pd.DataFrame, side: str) -> tuple[pd.Series, pd.Series]:
    """(low, high) of a point's time: the rounds' lowest and highest medians, else its p20 and p80."""
    several = table[f"rounds_{side}"].fillna(1) > 1
    low = table[f"time_ms_lo_{side}"].where(several, table[f"time_ms_p20_{side}"])
    high = table[f"time_ms_hi_{side}"].where(several, table[f"time_ms_p80_{side}"])
    return low.fillna(table[f"time_ms_{side}"]), high.fillna(table[f"time_ms_{side}"])


def verdicts(table: pd.DataFrame, threshold: float) -> pd.Series:
    """faster / slower / within-noise per matched row (NaN where the point did not run in both)."""
    low_a, high_a = _band(table, "a")
    low_b, high_b = _band(table, "b")
    ratio = table["time_ratio"]
    slower = (ratio > 1 + threshold) & (low_b > high_a)
    faster = (ratio < 1 / (1 + threshold)) & (high_b < low_a)
    verdict = np.where(slower, "slower", np.where(faster, "faster", "within-noise"))
    return pd.Series(verdict, index=table.index).where(ratio.notna())


def match(table_a: pd.DataFrame, table_b: pd.DataFrame, threshold: float = DEFAULT_THRESHOLD["cpu"]) -> pd.DataFrame:
    """Points of two results tables matched on KEYS, with time and memory ratios B / A and a verdict where both ran.

    One series' point can equal another's (batch=8 and tokens=65536 meet at 8192 tokens); such a key
    is matched once, preferring the pair with the same batching label, then a pair that ran in both.
    """
    prepare = analysis.prepare
    table_a, table_b = prepare(table_a)[KEYS + _CARRIED], prepare(table_b)[KEYS + _CARRIED]
    merged = table_a.merge(table_b, on=KEYS, how="outer", suffixes=("_a", "_b"), indicator=True)
    merged["only_in"] = merged["_merge"].map({"left_only": "a", "right_only": "b", "both": ""}).astype(str)
    merged["batching"] = merged["batching_a"].fillna(merged["batching_b"])
    both_ran = ((merged["status_a"] == "ok") & (merged["status_b"] == "ok")).fillna(False).to_numpy(bool)
    same_label = (merged["batching_a"] == merged["batching_b"]).fillna(False).to_numpy(bool)
    merged = merged.assign(_same=same_label, _ran=both_ran).sort_values(["_same", "_ran"], ascending=False,
                                                                         kind="stable")
    merged = merged.drop_duplicates(KEYS, keep="first")
    both_ran = merged["_ran"].to_numpy(bool)
    merged["time_ratio"] = np.where(both_ran, merged["time_ms_b"] / merged["time_ms_a"], np.nan)
    has_mem = both_ran & (merged["peak_mem_mb_a"] > 0).fillna(False).to_numpy(bool) \
        & (merged["peak_mem_mb_b"] > 0).fillna(False).to_numpy(bool)
    merged["mem_ratio"] = np.where(has_mem, merged["peak_mem_mb_b"] / merged["peak_mem_mb_a"], np.nan)
    merged["verdict"] = verdicts(merged, threshold)
    columns = KEYS + ["batching", "only_in", "status_a", "status_b", "time_ms_a", "time_ms_b", "time_ratio",
                      "verdict", "time_ms_lo_a", "time_ms_hi_a", "time_ms_lo_b", "time_ms_hi_b", "rounds_a", "rounds_b",
                      "peak_mem_mb_a", "peak_mem_mb_b", "mem_ratio", "device_name_a", "device_name_b"]
    order = {mixer: i for i, mixer in enumerate(mixer_order(merged["mixer"]))}
    merged = merged[columns].sort_values(["scope", "dtype", "mode", "dim", "batching", "mixer", "seq_len", "batch"],
                                         key=lambda s: s.map(order) if s.name == "mixer" else s)
    return merged.reset_index(drop=True)


def summarize(compared: pd.DataFrame) -> pd.DataFrame:
    """Per (mixer, scope, dtype, mode): matched points, the time ratio's geometric mean, min and max, the memory
    ratio, how many points each verdict got, and the overall verdict (slower or faster only when every point says so)."""
    columns = ["mixer", "scope", "dtype", "mode", "points", "time_ratio_geomean", "time_ratio_min", "time_ratio_max",
               "mem_ratio_geomean", "slower", "faster", "within_noise", "verdict"]
    rows = []
    matched = compared[compared["time_ratio"] > 0]
    for (mixer, scope, dtype, mode), group in matched.groupby(["mixer", "scope", "dtype", "mode"], sort=False):
        mem = group["mem_ratio"][group["mem_ratio"] > 0]
        counts = group["verdict"].value_counts()
        overall = next((v for v in ("slower", "faster") if counts.get(v, 0) == len(group)), "within-noise")
        if overall == "within-noise" and (counts.get("slower", 0) or counts.get("faster", 0)):
            overall = "mixed"
        rows.append(dict(mixer=mixer, scope=scope, dtype=dtype, mode=mode, points=len(group),
                         time_ratio_geomean=float(np.exp(np.log(group["time_ratio"]).mean())),
                         time_ratio_min=group["time_ratio"].min(), time_ratio_max=group["time_ratio"].max(),
                         mem_ratio_geomean=float(np.exp(np.log(mem).mean())) if len(mem) else np.nan,
                         slower=int(counts.get("slower", 0)), faster=int(counts.get("faster", 0)),
                         within_noise=int(counts.get("within-noise", 0)), verdict=overall))
    result = pd.DataFrame(rows, columns=columns)
    order = {mixer: i for i, mixer in enumerate(mixer_order(result["mixer"]))}
    return result.sort_values(["dtype", "mode", "mixer"], key=lambda s: s.map(order) if s.name == "mixer" else s)


def _device(compared: pd.DataFrame, side: str) -> str:
    names = [name for name in compared[f"device_name_{side}"].dropna() if name]
    return names[0] if names else ""


def plot(compared: pd.DataFrame, path: Path, name_a: str = "A", name_b: str = "B") -> Path | None:
    """Draw `ratio_figure` into `path`; None where no point ran in both."""
    return style.save(ratio_figure(compared, name_a, name_b), path)


def ratio_figure(compared: pd.DataFrame, name_a: str = "A", name_b: str = "B"):
    """Time ratio B / A against length, one line per mixer, one panel per (dtype, mode); None without data."""
    matched = compared[compared["time_ratio"] > 0]
    if matched.empty:
        return None
    panels = list(matched.groupby(["dtype", "mode"], sort=True))
    ncols, nrows = min(2, len(panels)), math.ceil(len(panels) / 2)
    top = style.TOP + 0.2
    width = style.LEFT + style.LEGEND + ncols * 4.6 + (ncols - 1) * 0.7
    height = top + style.BOTTOM + nrows * 3.4 + (nrows - 1) * 0.8
    fig, axes = figure(width, height, ncols=ncols, nrows=nrows, top=top, row_gap=0.8)
    for ax in axes[len(panels):]:
        ax.set_visible(False)
    series_keys = ["dim", "batching"]
    several = matched[series_keys].drop_duplicates().shape[0] > 1
    styles = ["-", "--", ":", "-."]
    seen = {}
    for ax, ((dtype, mode), group) in zip(axes, panels):
        for i, ((dim, batching), series) in enumerate(group.groupby(series_keys, sort=True, dropna=False)):
            for mixer in mixer_order(series["mixer"].unique()):
                line = series[series["mixer"] == mixer].sort_values("seq_len")
                label = f"{mixer} (d={dim}, {batching})" if several else mixer
                seen[label] = ax.plot(line["seq_len"].to_numpy(float), line["time_ratio"].to_numpy(float),
                                      linestyle=styles[i % len(styles)], linewidth=1.5, markersize=5, label=label,
                                      **mixer_style(mixer))[0]
        ax.axhline(1.0, color="0.2", linewidth=1)
        ax.set_yscale("log")
        low, high = ax.get_ylim()
        ax.set_ylim(min(low, 0.8), max(high, 1.25))
        length_axis(ax, group["seq_len"])
        log_ticks(ax.yaxis)
        ax.set_ylabel("time B / A  (below 1: B faster)")
        ax.set_title(f"{dtype}, {mode}", fontsize=10, y=1.01)
        ax.grid(True, which="major", alpha=0.3)
    handles = list(seen.values()) + [Line2D([], [], color="0.2", linewidth=1, label="equal time")]
    legend(fig, handles, top=top)
    device_a, device_b = _device(compared, "a"), _device(compared, "b")
    style.title(fig, f"Time ratio B / A per point\nA = {name_a}{f' ({device_a})' if device_a else ''} · "
                     f"B = {name_b}{f' ({device_b})' if device_b else ''}")
    return fig


def default_threshold(run_a, run_b) -> float:
    """The CPU's threshold when either run was measured on a CPU, else the GPU's."""
    devices = {str(analysis.load_env(run).get("device", "cpu")) for run in (run_a, run_b)}
    return DEFAULT_THRESHOLD["cuda"] if devices == {"cuda"} else DEFAULT_THRESHOLD["cpu"]


def compare(run_a, run_b, out_dir=None, threshold: float | None = None) -> pd.DataFrame:
    """Match two runs' points, write compare.csv and compare.png into `out_dir`; returns the matched table.

    `out_dir` defaults to `<run_b>/compare-<name of run_a>`. The table's `attrs` hold the two run paths
    and the threshold used.
    """
    run_a, run_b = Path(run_a), Path(run_b)
    threshold = default_threshold(run_a, run_b) if threshold is None else threshold
    compared = match(_points(run_a), _points(run_b), threshold)
    out = Path(out_dir) if out_dir is not None else run_b / f"compare-{run_a.resolve().name}"
    out.mkdir(parents=True, exist_ok=True)
    compared.to_csv(out / "compare.csv", index=False, float_format="%.6g")
    plot(compared, out / "compare.png", str(run_a), str(run_b))
    compared.attrs.update(run_a=str(run_a), run_b=str(run_b), out_dir=str(out), threshold=threshold)
    return compared


def _text_table(rows: list[list[str]], header: list[str], numeric: set[int]) -> list[str]:
    widths = [max(len(str(cell)) for cell in column) for column in zip(header, *rows)]

    def line(cells):
        return "  ".join(str(cell).rjust(width) if i in numeric else str(cell).ljust(width)
                         for i, (cell, width) in enumerate(zip(cells, widths))).rstrip()

    return [line(header), line(["-" * width for width in widths])] + [line(row) for row in rows]


def _fmt(value) -> str:
    if pd.isna(value):
        return "—"
    return f"{value:,.0f}" if abs(value) >= 1000 else f"{value:.3g}"


def _ratio(value) -> str:
    return "—" if pd.isna(value) else f"{value:.2f}×" if value < 10 else f"{value:,.1f}×"


def format_table(compared: pd.DataFrame, max_rows: int | None = None) -> str:
    """The comparison for a terminal: per-mixer geometric means, then every matched point (up to `max_rows`)."""
    run_a, run_b = compared.attrs.get("run_a", "run A"), compared.attrs.get("run_b", "run B")
    device_a, device_b = _device(compared, "a"), _device(compared, "b")
    out = [f"A: {run_a}" + (f" ({device_a})" if device_a else ""),
           f"B: {run_b}" + (f" ({device_b})" if device_b else ""),
           "Ratios are B / A: below 1 means B is faster (time) or smaller (memory).",
           f"A point is slower or faster only where the time changed by more than "
           f"{compared.attrs.get('threshold', DEFAULT_THRESHOLD['cpu']):.0%} and beyond both runs' between-round "
           "spread; otherwise it is within noise.", ""]
    summary = summarize(compared)
    if summary.empty:
        out.append("No point ran in both runs.")
    else:
        out.append("Per mixer, geometric mean over the points that ran in both:")
        rows = [[r.mixer, r.scope, r.dtype, r.mode, str(r.points), _ratio(r.time_ratio_geomean),
                 _ratio(r.time_ratio_min), _ratio(r.time_ratio_max), _ratio(r.mem_ratio_geomean), r.verdict]
                for r in summary.itertuples()]
        out += _text_table(rows, ["mixer", "scope", "dtype", "mode", "points", "time B/A", "min", "max", "memory B/A",
                                  "verdict"], {4, 5, 6, 7, 8})
        counts = compared["verdict"].value_counts()
        out.append("Points: " + ", ".join(f"{int(counts.get(v, 0))} {v}" for v in VERDICTS) + ".")
    out.append("")
    shown = compared if max_rows is None else compared.head(max_rows)
    rows = []
    for r in shown.itertuples():
        note = {"a": "only in A", "b": "only in B"}.get(r.only_in, "")
        if not note and not (r.status_a == "ok" and r.status_b == "ok"):
            note = f"A {r.status_a}, B {r.status_b}"
        rows.append([r.mixer, r.scope, analysis.format_seq_len(r.seq_len), str(r.dim), str(r.batch), r.dtype,
                     r.mode, _fmt(r.time_ms_a), _fmt(r.time_ms_b), _ratio(r.time_ratio),
                     r.verdict if isinstance(r.verdict, str) else "", _fmt(r.peak_mem_mb_a), _fmt(r.peak_mem_mb_b),
                     _ratio(r.mem_ratio), note])
    out.append("Per point:")
    out += _text_table(rows, ["mixer", "scope", "length", "dim", "batch", "dtype", "mode", "A ms", "B ms", "B/A",
                              "verdict", "A MB", "B MB", "B/A", ""], {2, 3, 4, 7, 8, 9, 11, 12, 13})
    if max_rows is not None and len(compared) > max_rows:
        out.append(f"… {len(compared) - max_rows} more rows in compare.csv")
    only = compared["only_in"].value_counts()
    if only.get("a", 0) or only.get("b", 0):
        out.append(f"Only in A: {only.get('a', 0)} points; only in B: {only.get('b', 0)} points.")
    if "out_dir" in compared.attrs:
        out.append(f"Wrote {Path(compared.attrs['out_dir']) / 'compare.csv'} and compare.png")
    return "\n".join(out)
