"""Analysis of a finished run folder: Pareto fronts, scaling exponents, crossovers, winners, roofline.

Everything here reads only `results.csv` and `env.json` (see docs/run-folder.md), with pandas
and numpy, so a folder copied from a GPU machine can be analysed anywhere, without torch.

Vocabulary. A *series* is one mixer measured over sequence lengths with everything else fixed:
(mixer, dim, batching, dtype, mode, device). A *group* is the same without the mixer: the mixers
that compete with one another. A *point group* adds `seq_len`: the mixers competing at one length.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd

from bench.measuring import store
from bench.reporting import quality

SHAPE_KEYS = ["layers", "ffn", "vocab", "norm"]  # a block's or encoder's shape (empty at mixer scope)
GROUP_KEYS = ["scope", "dim", *SHAPE_KEYS, "batching", "dtype", "mode", "device"]
SERIES_KEYS = ["mixer", *GROUP_KEYS]
POINT_GROUP_KEYS = ["seq_len", *GROUP_KEYS]
POINT_KEYS = ["mixer", "scope", "seq_len", "dim", *SHAPE_KEYS, "batch", "batching", "dtype", "mode", "device"]

STATUSES = store.STATUSES
CAUSAL_SUFFIX = " (causal)"  # how a causal point's mixer is named in plots and tables
# How each of store.COLUMNS is read: text, or a number (every other column but the timestamp).
TEXT_COLUMNS = ["mixer", "scope", "norm", "causal", "batching", "dtype", "compute_dtype", "kernel", "tf32", "mode",
                "device", "device_index", "device_name", "status", "bound", "source_hash", "error"]
NUMERIC_COLUMNS = [column for column in store.COLUMNS if column not in TEXT_COLUMNS and column != "measured_at"]
INTEGER_COLUMNS = ["seq_len", "dim", "layers", "ffn", "vocab", "batch", "rounds", "reps"]

# Below this a peak-memory reading is allocator noise, not the mixer's working set.
MIN_MEM_MB = 0.01
# A point is called noisy when its rounds' medians differ by more than this share (hi / lo - 1), or, measured
# in one round, when the p80 / p20 of its repeats exceeds NOISY_SPREAD.
NOISY_ROUNDS = 0.25
NOISY_SPREAD = 2.0
# A scaling fit uses the upper half of a series' measured lengths, and never fewer than this.
MIN_FIT_POINTS = 3


def load_results(run_dir) -> pd.DataFrame:
    """The run's results table, typed, with a later row replacing an earlier one for the same point."""
    path = Path(run_dir) / store.RESULTS
    try:
        table = pd.read_csv(path, dtype={column: str for column in TEXT_COLUMNS}, keep_default_na=False,
                            na_values=[""])
    except (FileNotFoundError, pd.errors.EmptyDataError):  # a folder with only quality.csv, or an empty file
        table = pd.DataFrame()
    table = prepare(table)
    return table.drop_duplicates(POINT_KEYS, keep="last").reset_index(drop=True)


def load_env(run_dir) -> dict:
    """The run's env.json as a dict; {} when it is missing or unreadable."""
    try:
        env = json.loads((Path(run_dir) / "env.json").read_text())
    except (OSError, ValueError):
        return {}
    return env if isinstance(env, dict) else {}


def prepare(table: pd.DataFrame) -> pd.DataFrame:
    """A copy with every contract column present and typed (numbers numeric, text filled with ''), indexed 0..n-1."""
    table = table.reset_index(drop=True)
    for column in NUMERIC_COLUMNS:
        table[column] = pd.to_numeric(table[column], errors="coerce") if column in table else np.nan
        table[column] = table[column].astype(float)
    for column in TEXT_COLUMNS:
        values = table[column] if column in table else pd.Series("", index=table.index)
        table[column] = values.fillna("").astype(str).str.strip()
    table["status"] = table["status"].str.lower()
    table.loc[table["scope"] == "", "scope"] = "mixer"  # rows written before scopes existed
    # a causal form is another mixer to every plot and table: its own series, "attention (causal)"
    causal = (table["causal"].str.lower() == "true") & ~table["mixer"].str.endswith(CAUSAL_SUFFIX)
    table.loc[causal, "mixer"] = table.loc[causal, "mixer"] + CAUSAL_SUFFIX
    # An older or hand-made table without a batching label: a fixed batch is the only sensible reading.
    missing = table["batching"] == ""
    table.loc[missing, "batching"] = [f"batch={b:g}" if pd.notna(b) else "" for b in table.loc[missing, "batch"]]
    for column in INTEGER_COLUMNS:
        values = table[column]
        if (values.dropna() % 1 == 0).all():
            table[column] = values.astype("Int64")
    return table


def ok_rows(table: pd.DataFrame) -> pd.DataFrame:
    """The rows that ran, with a positive measured time."""
    table = prepare(table)
    return table[(table["status"] == "ok") & (table["time_ms"] > 0)]


def _groups(table: pd.DataFrame, keys):
    return table.groupby(list(keys), dropna=False, sort=True)


# What the memory of the cost frontier (pareto.csv's total_mem_mb, the Pareto plots) counts, in words.
MEMORY_TOTAL_TEXT = ("memory held between calls (resident_mem_mb: parameters, buffers and any cached tables, the "
                     "inputs, and in train the gradients and optimizer state) plus the call's peak working memory "
                     "above it (peak_mem_mb)")


def total_mem_mb(table: pd.DataFrame) -> pd.Series:
    """Per row, the memory a point costs: resident_mem_mb + peak_mem_mb; the peak alone where no held memory was
    recorded (run folders written before resident_mem_mb existed), and NaN without a peak reading."""
    resident = table["resident_mem_mb"] if "resident_mem_mb" in table else pd.Series(np.nan, index=table.index)
    return table["peak_mem_mb"] + resident.fillna(0.0)


def pareto_front(table: pd.DataFrame) -> pd.DataFrame:
    """Per point group, exactly the non-dominated ok points in (time_ms, total_mem_mb), fastest first.

    `total_mem_mb` is `total_mem_mb(table)`: what the mixer holds plus its peak working memory, so a mixer
    that trades held tables for speed is placed by all it holds. A point is dominated when another is no worse
    in both and better in one. Two points equal in both dominate neither, so both are kept (ordered by mixer
    name): dropping one would hide a mixer that is just as good. Rows without a peak memory reading are left out.
    """
    columns = [*POINT_GROUP_KEYS, "mixer", "batch", "time_ms", "time_ms_p20", "time_ms_p80",
               "peak_mem_mb", "tokens_per_s"]
    ok = ok_rows(table)
    ok = ok.assign(total_mem_mb=total_mem_mb(ok))
    ok = ok[ok["total_mem_mb"].notna()]
    if ok.empty:
        return pd.DataFrame(columns=[*columns, "rank", "total_mem_mb"])
    ok = ok.sort_values([*POINT_GROUP_KEYS, "time_ms", "total_mem_mb", "mixer"])
    keep = []
    for _, group in _groups(ok, POINT_GROUP_KEYS):
        best_mem = math.inf
        last_kept = None
        for index, time_ms, mem in zip(group.index, group["time_ms"], group["total_mem_mb"]):
            if mem < best_mem or last_kept == (time_ms, mem):
                keep.append(index)
                best_mem, last_kept = mem, (time_ms, mem)
    front = ok.loc[keep, columns].reset_index(drop=True)
    front["rank"] = front.groupby(POINT_GROUP_KEYS, dropna=False).cumcount() + 1
    front["total_mem_mb"] = ok.loc[keep, "total_mem_mb"].to_numpy(float)  # after the columns it had before
    return front


def _loglog_fit(seq_lens, values):
    """Least-squares slope and r² of log(values) against log(seq_lens)."""
    x, y = np.log(np.asarray(seq_lens, float)), np.log(np.asarray(values, float))
    slope, intercept = np.polyfit(x, y, 1)
    residual = y - (slope * x + intercept)
    spread = ((y - y.mean()) ** 2).sum()
    r2 = 1.0 - (residual ** 2).sum() / spread if spread > 0 else np.nan
    return float(slope), float(r2)


def fit_range(seq_lens) -> list:
    """The lengths a scaling fit uses: the upper half of the measured ones, at least 3 (all if fewer)."""
    lengths = sorted(set(seq_lens))
    count = max(MIN_FIT_POINTS, math.ceil(len(lengths) / 2))
    return lengths[-count:]


def scaling_exponents(table: pd.DataFrame) -> pd.DataFrame:
    """Per series, the log–log slope of time_ms and of peak_mem_mb against seq_len at long lengths.

    Rule: fit on the upper half of the series' ok lengths (at least 3 points; where fewer than 3 ran,
    the exponents are NaN) — at short lengths launch overhead, not the algorithm, sets the time.
    `mem_exponent` is NaN where a memory reading in the range is missing or below MIN_MEM_MB, or is
    the same at every length (the measurement saw a fixed workspace, not the mixer's scaling).
    The slope is of the plotted quantity: with `tokens=N` batching the batch shrinks as seq_len grows,
    so the exponent there is one less than the per-sequence one.
    """
    columns = [*SERIES_KEYS, "fit_seq_len_min", "fit_seq_len_max", "n_points",
               "time_exponent", "time_r2", "mem_exponent", "mem_r2"]
    rows = []
    for key, series in _groups(ok_rows(table), SERIES_KEYS):
        series = series.sort_values("seq_len", kind="stable")  # a point measured again: its later row is kept
        lengths = fit_range(series["seq_len"])
        fitted = series[series["seq_len"].isin(lengths)].drop_duplicates("seq_len", keep="last")
        row = dict(zip(SERIES_KEYS, key), fit_seq_len_min=min(lengths), fit_seq_len_max=max(lengths),
                   n_points=len(fitted), time_exponent=np.nan, time_r2=np.nan,
                   mem_exponent=np.nan, mem_r2=np.nan)
        if len(fitted) >= MIN_FIT_POINTS:
            row["time_exponent"], row["time_r2"] = _loglog_fit(fitted["seq_len"], fitted["time_ms"])
            mem = fitted["peak_mem_mb"]
            if mem.notna().all() and (mem >= MIN_MEM_MB).all() and mem.max() > mem.min():
                row["mem_exponent"], row["mem_r2"] = _loglog_fit(fitted["seq_len"], mem)
        rows.append(row)
    result = pd.DataFrame(rows, columns=columns)
    for column in ("fit_seq_len_min", "fit_seq_len_max", "n_points"):
        result[column] = result[column].astype(int)
    return result


def crossovers(table: pd.DataFrame) -> pd.DataFrame:
    """For every pair of mixers in a group, the lengths where the faster of the two changes.

    Between two consecutive lengths both ran (`seq_len_low`, `seq_len_high`) where the sign of
    log(time_a / time_b) flips, `crossover_seq_len` is where that log ratio, interpolated linearly in
    log(seq_len), is zero. Lengths at which the two are exactly equal are skipped (a tie is no change).
    """
    columns = [*GROUP_KEYS, "mixer_a", "mixer_b", "seq_len_low", "seq_len_high", "crossover_seq_len",
               "faster_below", "faster_above"]
    rows = []
    for key, group in _groups(ok_rows(table), GROUP_KEYS):
        times = group.pivot_table(index="seq_len", columns="mixer", values="time_ms", aggfunc="last")
        names = sorted(times.columns)
        for i, mixer_a in enumerate(names):
            for mixer_b in names[i + 1:]:
                pair = times[[mixer_a, mixer_b]].dropna().sort_index()
                log_ratio = np.log(pair[mixer_a] / pair[mixer_b])
                log_ratio = log_ratio[log_ratio != 0]
                lengths, ratios = log_ratio.index.to_numpy(float), log_ratio.to_numpy()
                for j in range(len(ratios) - 1):
                    if ratios[j] * ratios[j + 1] >= 0:
                        continue
                    low, high = math.log(lengths[j]), math.log(lengths[j + 1])
                    at = low + ratios[j] / (ratios[j] - ratios[j + 1]) * (high - low)
                    a_first = ratios[j] < 0
                    rows.append(dict(zip(GROUP_KEYS, key), mixer_a=mixer_a, mixer_b=mixer_b,
                                     seq_len_low=int(lengths[j]), seq_len_high=int(lengths[j + 1]),
                                     crossover_seq_len=math.exp(at),
                                     faster_below=mixer_a if a_first else mixer_b,
                                     faster_above=mixer_b if a_first else mixer_a))
    return pd.DataFrame(rows, columns=columns)


def winners(table: pd.DataFrame, baseline: str = "attention") -> pd.DataFrame:
    """The fastest mixer per point group, its time, and how much faster it is than the runner-up and `baseline`.

    `margin` = runner-up time / winner time; `speedup_vs_<baseline>` = baseline time / winner time
    (1.0 when the baseline wins, NaN when it did not run at that length).
    """
    columns = [*POINT_GROUP_KEYS, "mixer", "time_ms", "runner_up", "runner_up_time_ms", "margin",
               f"{baseline}_time_ms", f"speedup_vs_{baseline}", "n_mixers"]
    rows = []
    ok = ok_rows(table).sort_values(["time_ms", "mixer"])
    for key, group in _groups(ok, POINT_GROUP_KEYS):
        group = group.drop_duplicates("mixer")
        best = group.iloc[0]
        second = group.iloc[1] if len(group) > 1 else None
        base = group[group["mixer"] == baseline]
        base_time = float(base["time_ms"].iloc[0]) if len(base) else np.nan
        rows.append(dict(zip(POINT_GROUP_KEYS, key), mixer=best["mixer"], time_ms=best["time_ms"],
                         runner_up=second["mixer"] if second is not None else "",
                         runner_up_time_ms=second["time_ms"] if second is not None else np.nan,
                         margin=second["time_ms"] / best["time_ms"] if second is not None else np.nan,
                         **{f"{baseline}_time_ms": base_time,
                            f"speedup_vs_{baseline}": base_time / best["time_ms"]},
                         n_mixers=len(group)))
    result = pd.DataFrame(rows, columns=columns)
    result["seq_len"] = result["seq_len"].astype(int)
    return result.sort_values([*GROUP_KEYS, "seq_len"]).reset_index(drop=True)


def roofline_summary(table: pd.DataFrame) -> pd.DataFrame:
    """Per series, median and max `roofline_frac`, and which roofline term (flops or bytes) bounds it most often."""
    columns = [*SERIES_KEYS, "n_points", "roofline_frac_median", "roofline_frac_max", "bound",
               "bound_share", "tflops_median", "gbps_median"]
    rows = []
    for key, series in _groups(ok_rows(table), SERIES_KEYS):
        bounds = series["bound"][series["bound"] != ""].value_counts()
        bounds = bounds.sort_index().sort_values(ascending=False, kind="stable")
        rows.append(dict(zip(SERIES_KEYS, key), n_points=len(series),
                         roofline_frac_median=series["roofline_frac"].median(),
                         roofline_frac_max=series["roofline_frac"].max(),
                         bound=bounds.index[0] if len(bounds) else "",
                         bound_share=bounds.iloc[0] / bounds.sum() if len(bounds) else np.nan,
                         tflops_median=series["tflops"].median(), gbps_median=series["gbps"].median()))
    return pd.DataFrame(rows, columns=columns)


def failures(table: pd.DataFrame) -> pd.DataFrame:
    """The points that did not run: one row per series, status and reason, with the lengths it hit.

    Reasons that differ only in their numbers ("got 384", "got 1536") count as one; `error` shows the
    first line of the reason at the shortest length.
    """
    columns = [*SERIES_KEYS, "status", "seq_lens", "first_seq_len", "error"]
    failed = prepare(table)
    failed = failed[failed["status"] != "ok"].sort_values("seq_len").copy()
    failed["error"] = pd.Series([reason.strip().splitlines()[0][:300] if reason.strip() else ""
                                 for reason in failed["error"]], index=failed.index, dtype=str)
    failed["reason_kind"] = failed["error"].str.replace(r"\d+(?:\.\d+)?", "#", regex=True)
    rows = []
    for key, group in _groups(failed, [*SERIES_KEYS, "status", "reason_kind"]):
        lengths = sorted(int(n) for n in group["seq_len"].dropna().unique())
        row = dict(zip([*SERIES_KEYS, "status"], key))
        row.update(seq_lens=", ".join(format_seq_len(n) for n in lengths),
                   first_seq_len=lengths[0] if lengths else np.nan, error=group["error"].iloc[0])
        rows.append(row)
    return pd.DataFrame(rows, columns=columns)


def format_seq_len(seq_len) -> str:
    """A length as people write it: 512, 1k, 1.5k, 32k, 1M."""
    seq_len = int(seq_len)
    for size, suffix in ((1 << 20, "M"), (1 << 10, "k")):
        if seq_len >= size and seq_len % (size // 4) == 0:
            return f"{seq_len / size:g}{suffix}"
    return str(seq_len)


def describe_group(key: dict) -> str:
    """One group as words: 'bfloat16, forward, d=768, batch 8'."""
    batching = str(key.get("batching", ""))
    if batching.startswith("batch="):
        batching = "batch " + batching.removeprefix("batch=")
    elif batching.startswith("tokens="):
        count = batching.removeprefix("tokens=")
        batching = f"{int(count):,} tokens per batch" if count.isdigit() else f"{count} tokens per batch"
    dim = key.get("dim")
    parts = [describe_scope(key), str(key.get("dtype", "")), str(key.get("mode", "")),
             f"d={dim:g}" if isinstance(dim, (int, float, np.number)) and pd.notna(dim) else "", batching]
    return ", ".join(part for part in parts if part)


def group_id(key: dict) -> tuple:
    """A group key as a hashable tuple of (column, value), a missing value as None: how a plot manifest names it."""
    return tuple((column, value if is_known(value) else None) for column, value in key.items())


def is_known(value) -> bool:
    return value is not None and not (isinstance(value, float) and math.isnan(value)) and value is not pd.NA \
        and value != ""


def describe_scope(key: dict) -> str:
    """'' at mixer scope; 'block (ffn 3072, post-norm)' or 'encoder (12 layers, ffn 3072, vocab 32,000, post-norm)'."""
    scope = str(key.get("scope") or "mixer")
    if scope == "mixer":
        return ""
    bits = []
    if scope == "encoder" and is_known(key.get("layers")):
        bits.append(f"{int(key['layers'])} layers")
    if is_known(key.get("ffn")):
        bits.append(f"ffn {int(key['ffn'])}")
    if scope == "encoder" and is_known(key.get("vocab")):
        bits.append(f"vocab {int(key['vocab']):,}" if int(key["vocab"]) else "no embedding or head")
    if is_known(key.get("norm")):
        bits.append(f"{key['norm']}-norm")
    return f"{scope} ({', '.join(bits)})" if bits else scope


def _key_text(key) -> tuple:
    return tuple("" if pd.isna(value) else str(value) for value in key)


def _segments(win: pd.DataFrame) -> list[tuple[str, int, int]]:
    """Runs of consecutive lengths with the same winner: (mixer, first length, last length)."""
    runs = []
    for mixer, seq_len in zip(win["mixer"], win["seq_len"]):
        if runs and runs[-1][0] == mixer:
            runs[-1][2] = seq_len
        else:
            runs.append([mixer, seq_len, seq_len])
    return [tuple(run) for run in runs]


def _times_faster(ratio: float) -> str:
    """'3.1× faster' or, for a close call, '4% faster'."""
    return f"{ratio:.1f}× faster" if ratio >= 1.1 else f"{100 * (ratio - 1):.0f}% faster"


def _span(low: int, high: int) -> str:
    return format_seq_len(low) if low == high else f"{format_seq_len(low)}–{format_seq_len(high)}"


def summary(table: pd.DataFrame, focus_seq_len: int = 512, baseline: str = "attention") -> list[str]:
    """Per group, a short written answer: who is fastest near `focus_seq_len`, by how much, and where that changes."""
    return [text for _, text in group_summaries(table, focus_seq_len, baseline)]


def group_summaries(table: pd.DataFrame, focus_seq_len: int = 512,
                    baseline: str = "attention") -> list[tuple[dict, str]]:
    """(group key, sentence) for every group with an ok point; see `summary`."""
    table = prepare(table)
    best = winners(table, baseline)
    failed = failures(table)
    lost = {_key_text(key): group for key, group in _groups(failed, GROUP_KEYS)}
    ok = ok_rows(table)
    noisy_points = {_key_text(key): noisy(group) for key, group in _groups(ok, GROUP_KEYS)}
    lines = []
    for key, win in _groups(best, GROUP_KEYS):
        key = dict(zip(GROUP_KEYS, key))
        win = win.sort_values("seq_len")
        distance = (np.log2(win["seq_len"]) - math.log2(focus_seq_len)).abs()
        at = win.loc[distance.idxmin()]
        text = (f"At {format_seq_len(at['seq_len'])} tokens ({describe_group(key)}): "
                f"{at['mixer']} is fastest ({at['time_ms']:.3g} ms)")
        vs_base = at[f"speedup_vs_{baseline}"]
        clauses = []
        if at["runner_up"]:
            clauses.append(f"{_times_faster(at['margin'])} than {at['runner_up']} (runner-up)")
        if at["mixer"] != baseline and at["runner_up"] != baseline and pd.notna(vs_base):
            clauses.append(f"{_times_faster(vs_base)} than {baseline}")
        text += ", " + " and ".join(clauses) + "." if clauses else "."
        runs = _segments(win)
        if len(runs) == 1:
            text += f" It is fastest at every measured length ({_span(runs[0][1], runs[0][2])})."
        else:
            text += " Fastest by length: " + ", ".join(f"{m} at {_span(lo, hi)}" for m, lo, hi in runs) + "."
        words = {"oom": "runs out of memory", "timeout": "times out", "error": "fails"}
        notes = []
        for (mixer, status), hit in lost.get(_key_text(key.values()), failed.iloc[:0]).groupby(["mixer", "status"]):
            if status in words:
                notes.append(f"{mixer} {words[status]} from {format_seq_len(hit['first_seq_len'].min())}")
        if notes:
            text += " " + "; ".join(notes) + "."
        ran = noisy_points.get(_key_text(key.values()))
        if ran is not None and ran.any():
            text += f" Noisy: {int(ran.sum())} of {len(ran)} points (see the table of noisy points)."
        lines.append((key, text))
    return lines


def noisy(table: pd.DataFrame) -> pd.Series:
    """True per ok row whose rounds disagree by more than NOISY_ROUNDS (one round: p80/p20 above NOISY_SPREAD)."""
    several = table["rounds"].fillna(1) > 1
    between = table["time_ms_hi"] / table["time_ms_lo"] - 1 > NOISY_ROUNDS
    within = table["time_ms_p80"] / table["time_ms_p20"] > NOISY_SPREAD
    return (between.where(several, within)).fillna(False).astype(bool)


def loaded(table: pd.DataFrame, cpu_count: int | None) -> pd.Series:
    """True per row measured while the host's 1-minute load average exceeded its cores (plus the half a core
    that rounding and the harness's own bookkeeping take): other work was competing for the CPU."""
    if not cpu_count:
        return pd.Series(False, index=table.index)
    return (table["load_avg"] > cpu_count + 0.5).fillna(False).astype(bool)


def write_tables(run_dir, table: pd.DataFrame | None = None, quality_table: pd.DataFrame | None = None) -> list[Path]:
    """Write pareto.csv, scaling.csv, crossovers.csv and winners.csv into the run folder; returns their paths.

    `table` and `quality_table` are the folder's tables as `load_results` and `quality.load_quality` read
    them; each is read from the folder when not given.
    """
    run_dir = Path(run_dir)
    tables = {}
    if (run_dir / store.RESULTS).exists():
        table = load_results(run_dir) if table is None else table
        tables.update({"pareto.csv": pareto_front(table), "scaling.csv": scaling_exponents(table),
                       "crossovers.csv": crossovers(table), "winners.csv": winners(table)})
    best = quality.best_runs(quality.load_quality(run_dir) if quality_table is None else quality_table)
    if len(best):
        tables.update({"quality_best.csv": best, "quality_front.csv": quality.front(best)})
    paths = []
    for name, frame in tables.items():
        path = run_dir / name
        frame.to_csv(path, index=False, float_format="%.6g")
        paths.append(path)
    return paths
