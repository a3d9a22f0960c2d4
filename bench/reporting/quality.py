"""Analysis of a run folder's quality.csv: the best learning rate per layout, the spread over seeds, and the
speed–accuracy frontier per task (FNet's figure: accuracy against training-step time).

Pure functions of the table (pandas only), like `bench.reporting.analysis`.

- **Best rate.** Per task, layout and model size, the learning rate and weight decay with the best mean
  validation accuracy over seeds are chosen; their test accuracy (mean, and min–max over seeds) is what is
  reported.
- **Learned.** A task counts as learned by a layout when its mean test accuracy beats the task's baseline
  (chance, or the shortcut a mixer needs no recall for) by `LEARNED_MARGIN`; where no layout learns a task,
  the report says so instead of drawing a frontier of noise.
- **Front.** Per task setting (options and length), a learned run (layout and width) is on the front when no other learned run is both faster
  (step_ms) and at least as accurate: the layouts a user with a given time budget per step should look at. A run
  at (or within `LEARNED_MARGIN` of) the baseline is never on it, however fast: it bought nothing.
- **Near the best.** The written answer joins both frontiers: the fastest run within `NEAR_BEST` (absolute
  accuracy) of the task's most accurate one.
- **MAD score** (Poli et al. 2024, athms/mad-lab `mad/analysis.py`): per layout and setting of a MAD task (its
  options, length and width), the best test accuracy over the learning-rate × weight-decay grid (the mean over
  seeds at each grid point); a task's score is the mean over its settings.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd

from bench.measuring import store

LEARNED_MARGIN = 0.10  # absolute accuracy above the baseline
PANEL_KEYS = ["task", "task_options", "seq_len"]  # one front (and one plot) per task setting and length
NEAR_BEST = 0.05  # absolute accuracy: "the fastest layout within 5 points of the best"
MAD_TASKS = ("in-context-recall", "fuzzy-recall", "noisy-recall", "selective-copying", "compression", "memorization")
MAD_MEAN = "mean"  # the column of mad_scores() holding the mean over the six tasks
SIZE_KEYS = ["task", "task_options", "layout", "seq_len", "dim", "layers", "ffn", "norm", "shift", "batch", "steps", "dtype", "device"]
TEXT = ["task", "task_options", "layout", "norm", "shift", "dtype", "device", "device_name", "status", "source_hash", "error"]
# Every other column of store.QUALITY_COLUMNS but the ones only shown (device index, commit, timestamp) is a number.
NUMERIC = [column for column in store.QUALITY_COLUMNS
           if column not in TEXT and column not in ("device_index", "git_commit", "measured_at")]


def load_quality(run_dir) -> pd.DataFrame:
    """quality.csv typed, the later row kept where a run was trained again; empty when there is none."""
    path = Path(run_dir) / store.QUALITY
    try:
        table = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (FileNotFoundError, pd.errors.EmptyDataError):
        table = pd.DataFrame()
    return prepare(table)


def prepare(table: pd.DataFrame) -> pd.DataFrame:
    table = table.reset_index(drop=True).copy()
    for column in NUMERIC:
        table[column] = pd.to_numeric(table[column], errors="coerce") if column in table else np.nan
    for column in TEXT:
        table[column] = table[column].fillna("").astype(str) if column in table else ""
    if len(table):
        table = table.drop_duplicates([*SIZE_KEYS, "lr", "weight_decay", "seed"], keep="last").reset_index(drop=True)
    return table


GRID = ["lr", "weight_decay"]  # the optimiser's grid: the best point on validation is kept


def _grid(group: pd.DataFrame) -> pd.DataFrame:
    """The group with its weight decay made a groupable value (an older quality.csv has no such column)."""
    return group.assign(weight_decay=group["weight_decay"].fillna(-1.0))


def best_runs(table: pd.DataFrame) -> pd.DataFrame:
    """Per task, layout and size: the rate and weight decay with the best mean validation accuracy, and their test
    accuracy over seeds."""
    columns = [*SIZE_KEYS, "lr", "weight_decay", "seeds", "accuracy", "accuracy_min", "accuracy_max", "accuracy_std",
               "val_accuracy", "train_accuracy", "baseline", "params", "step_ms", "tokens_per_s", "train_s",
               "failed", "lrs_tried"]
    ok = table[table["status"] == "ok"]
    rows = []
    for key, group in ok.groupby(SIZE_KEYS, dropna=False, sort=True):
        group = _grid(group)
        by_rate = group.groupby(GRID)["val_accuracy"].mean()
        lr, weight_decay = by_rate.idxmax()
        tried = group["lr"].nunique()
        best = group[(group["lr"] == lr) & (group["weight_decay"] == weight_decay)]
        failed = table
        for column, value in zip(SIZE_KEYS, key):
            failed = failed[failed[column] == value]
        rows.append(dict(zip(SIZE_KEYS, key), lr=float(lr),
                         weight_decay=float(weight_decay) if weight_decay >= 0 else np.nan,
                         seeds=len(best), accuracy=best["accuracy"].mean(),
                         accuracy_min=best["accuracy"].min(), accuracy_max=best["accuracy"].max(),
                         accuracy_std=best["accuracy"].std(ddof=0), val_accuracy=best["val_accuracy"].mean(),
                         train_accuracy=best["train_accuracy"].mean(), baseline=best["baseline"].iloc[0],
                         params=best["params"].iloc[0], step_ms=best["step_ms"].median(),
                         tokens_per_s=best["tokens_per_s"].median(), train_s=best["train_s"].sum(),
                         failed=int((failed["status"] != "ok").sum()), lrs_tried=tried))
    return pd.DataFrame(rows, columns=columns)


def front(best: pd.DataFrame) -> pd.DataFrame:
    """Per task (and length), the learned runs no other learned run beats in both step time and accuracy, fastest
    first; a run that did not beat its baseline by LEARNED_MARGIN is never on it."""
    keep = []
    panel = [key for key in PANEL_KEYS if key in best]  # a hand-made table may lack task_options
    for _, group in best[learned(best)].groupby(panel, sort=True):
        top = -math.inf
        for index, accuracy in zip(*_by_speed(group)):
            if accuracy > top:
                keep.append(index)
                top = accuracy
    result = best.loc[keep].sort_values([*panel, "step_ms"]).reset_index(drop=True)
    result["rank"] = result.groupby(panel).cumcount() + 1
    return result


def _by_speed(group: pd.DataFrame):
    ordered = group.sort_values(["step_ms", "accuracy"], ascending=[True, False])
    return ordered.index, ordered["accuracy"]


def near_best(group: pd.DataFrame) -> pd.Series | None:
    """Of one task's best runs, the fastest whose accuracy is within NEAR_BEST of the most accurate learned one;
    None where nothing was learned."""
    ok = group[learned(group)]
    if ok.empty:
        return None
    close = ok[ok["accuracy"] >= ok["accuracy"].max() - NEAR_BEST]
    return close.sort_values(["step_ms", "accuracy"], ascending=[True, False]).iloc[0]


def learned(best: pd.DataFrame) -> pd.Series:
    """True per row where the mean test accuracy beats the baseline by LEARNED_MARGIN."""
    baseline = best["baseline"].fillna(0.0) if "baseline" in best else 0.0  # none recorded: taken as 0
    return best["accuracy"] >= baseline + LEARNED_MARGIN


def budgets(best: pd.DataFrame) -> pd.DataFrame:
    """Per task: from each front point's step time up, the layout to choose and the accuracy it buys."""
    columns = ["task", "task_options", "seq_len", "from_step_ms", "layout", "dim", "accuracy", "accuracy_min",
               "accuracy_max"]
    table = front(best)
    return table.rename(columns={"step_ms": "from_step_ms"})[columns] if len(table) else pd.DataFrame(columns=columns)


def _percent(value: float) -> str:
    return f"{100 * value:.0f}%"


def summary(best: pd.DataFrame) -> list[str]:
    """Per task, one sentence: who is most accurate, who is fastest on the front and what it keeps of the best."""
    lines = []
    for (task, options, seq_len), group in best.groupby(PANEL_KEYS, sort=True):
        baseline = group["baseline"].iloc[0]
        ok = group[learned(group)]
        setting = f" [{options}]" if best[best["task"] == task]["task_options"].nunique() > 1 else ""
        lead = f"{task}{setting} at {int(seq_len)} tokens (baseline {_percent(baseline)})"
        if ok.empty:
            top = group.sort_values("accuracy", ascending=False).iloc[0]
            lines.append(f"{lead}: no layout learned it within this budget (best: {top['layout']} at "
                         f"{_percent(top['accuracy'])}, within {_percent(LEARNED_MARGIN)} of the baseline), so no "
                         f"frontier is drawn.")
            continue
        top = group.sort_values(["accuracy", "step_ms"], ascending=[False, True]).iloc[0]
        text = f"{lead}: {top['layout']} is most accurate ({_percent(top['accuracy'])}"
        if top["seeds"] > 1:
            text += f", {_percent(top['accuracy_min'])}–{_percent(top['accuracy_max'])} over {int(top['seeds'])} seeds"
        text += ")"
        strong = group[group["accuracy"] >= 0.9 * top["accuracy"]]
        if len(strong) < len(group):
            names = ", ".join(sorted(set(strong["layout"])))
            text += f"; within 90% of it: {names}"
        close = near_best(group)
        if close is not None and _run_name(close, group) != _run_name(top, group) and close["step_ms"] > 0:
            text += (f". The fastest layout within {100 * NEAR_BEST:.0f} points of the best accuracy is "
                     f"{_run_name(close, group)} ({_percent(close['accuracy'])}, "
                     f"{top['step_ms'] / close['step_ms']:.1f}× the speed of {_run_name(top, group)})")
        elif close is not None and (ok["step_ms"] < top["step_ms"]).any():
            text += (f". No faster layout comes within {100 * NEAR_BEST:.0f} points of it")
        points = front(group)
        fastest = points.iloc[0]
        if _run_name(fastest, group) not in (_run_name(top, group), _run_name(close, group)) and fastest["step_ms"] > 0:
            text += (f"; the fastest that learned it at all, {_run_name(fastest, group)}, reaches "
                     f"{_percent(fastest['accuracy'])} at {top['step_ms'] / fastest['step_ms']:.1f}× the speed")
        lines.append(text + ".")
    return lines


def _run_name(row, group: pd.DataFrame) -> str:
    """A best run's layout, with its width where the task was trained at more than one."""
    return f"{row['layout']} (d={int(row['dim'])})" if group["dim"].nunique() > 1 else str(row["layout"])


# --- MAD's score ----------------------------------------------------------------------------------------

SETTING_KEYS = [key for key in SIZE_KEYS if key != "layout"]


def mad_settings(table: pd.DataFrame) -> pd.DataFrame:
    """Per MAD task setting (options, length, width, model and budget) and layout: the best test accuracy over the
    learning-rate × weight-decay grid, each grid point the mean over its seeds (MAD's best test accuracy)."""
    columns = [*SIZE_KEYS, "score", "lr", "weight_decay", "grid_points"]
    ok = table[(table["status"] == "ok") & table["task"].isin(MAD_TASKS)]
    rows = []
    for key, group in ok.groupby(SIZE_KEYS, dropna=False, sort=True):
        by_grid = _grid(group).groupby(GRID)["accuracy"].mean()
        lr, weight_decay = by_grid.idxmax()
        rows.append(dict(zip(SIZE_KEYS, key), score=float(by_grid.max()), lr=float(lr),
                         weight_decay=float(weight_decay) if weight_decay >= 0 else np.nan,
                         grid_points=len(by_grid)))
    return pd.DataFrame(rows, columns=columns)


def mad_scores(table: pd.DataFrame) -> pd.DataFrame:
    """A row per layout, a column per MAD task that was run (its score: the mean over the task's settings of the best
    test accuracy over the grid), `mean` over the tasks the layout has, `tasks` how many, and `settings` how many
    settings were averaged; ranked by the mean, best first (rank 1). Empty when no MAD task ran."""
    settings = mad_settings(table)
    if settings.empty:
        return pd.DataFrame(columns=["rank", "layout", MAD_MEAN, "tasks", "settings"])
    per_task = settings.groupby(["layout", "task"])["score"].mean().unstack("task")
    tasks = [task for task in MAD_TASKS if task in per_task.columns]
    result = per_task[tasks].copy()
    result[MAD_MEAN] = result[tasks].mean(axis=1, skipna=True)
    result["tasks"] = result[tasks].notna().sum(axis=1)
    result["settings"] = settings.groupby("layout").size()
    result = result.reset_index().sort_values([MAD_MEAN, "layout"], ascending=[False, True]).reset_index(drop=True)
    result.insert(0, "rank", range(1, len(result) + 1))
    return result
