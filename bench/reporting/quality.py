"""Analysis of a run folder's quality.csv: the best learning rate per layout, the spread over seeds, and the
speed–accuracy frontier per task (FNet's figure: accuracy against training-step time).

Pure functions of the table (pandas only), like `bench.reporting.analysis`.

- **Best rate.** Per task, layout and model size, the learning rate with the best mean validation accuracy
  over seeds is chosen; its test accuracy (mean, and min–max over seeds) is what is reported.
- **Front.** Per task, a layout is on the front when no other is both faster (step_ms) and at least as
  accurate: the layouts a user with a given time budget per step should look at.
- **Learned.** A task counts as learned by a layout when its mean test accuracy beats the task's baseline
  (chance, or the shortcut a mixer needs no recall for) by `LEARNED_MARGIN`; where no layout learns a task,
  the report says so instead of drawing a frontier of noise.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd

from bench.measuring import store

LEARNED_MARGIN = 0.10  # absolute accuracy above the baseline
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
        table = table.drop_duplicates([*SIZE_KEYS, "lr", "seed"], keep="last").reset_index(drop=True)
    return table


def best_runs(table: pd.DataFrame) -> pd.DataFrame:
    """Per task, layout and size: the rate with the best mean validation accuracy, and its test accuracy over seeds."""
    columns = [*SIZE_KEYS, "lr", "seeds", "accuracy", "accuracy_min", "accuracy_max", "accuracy_std",
               "val_accuracy", "train_accuracy", "baseline", "params", "step_ms", "tokens_per_s", "train_s",
               "failed", "lrs_tried"]
    ok = table[table["status"] == "ok"]
    rows = []
    for key, group in ok.groupby(SIZE_KEYS, dropna=False, sort=True):
        by_rate = group.groupby("lr")["val_accuracy"].mean()
        lr = float(by_rate.idxmax())
        best = group[group["lr"] == lr]
        failed = table
        for column, value in zip(SIZE_KEYS, key):
            failed = failed[failed[column] == value]
        rows.append(dict(zip(SIZE_KEYS, key), lr=lr, seeds=len(best), accuracy=best["accuracy"].mean(),
                         accuracy_min=best["accuracy"].min(), accuracy_max=best["accuracy"].max(),
                         accuracy_std=best["accuracy"].std(ddof=0), val_accuracy=best["val_accuracy"].mean(),
                         train_accuracy=best["train_accuracy"].mean(), baseline=best["baseline"].iloc[0],
                         params=best["params"].iloc[0], step_ms=best["step_ms"].median(),
                         tokens_per_s=best["tokens_per_s"].median(), train_s=best["train_s"].sum(),
                         failed=int((failed["status"] != "ok").sum()), lrs_tried=len(by_rate)))
    return pd.DataFrame(rows, columns=columns)


def front(best: pd.DataFrame) -> pd.DataFrame:
    """Per task (and length), the runs no other run beats in both step time and accuracy, fastest first."""
    keep = []
    for _, group in best.groupby(["task", "seq_len"], sort=True):
        top = -math.inf
        for index, accuracy in zip(*_by_speed(group)):
            if accuracy > top:
                keep.append(index)
                top = accuracy
    result = best.loc[keep].sort_values(["task", "seq_len", "step_ms"]).reset_index(drop=True)
    result["rank"] = result.groupby(["task", "seq_len"]).cumcount() + 1
    return result


def _by_speed(group: pd.DataFrame):
    ordered = group.sort_values(["step_ms", "accuracy"], ascending=[True, False])
    return ordered.index, ordered["accuracy"]


def learned(best: pd.DataFrame) -> pd.Series:
    """True per row where the mean test accuracy beats the baseline by LEARNED_MARGIN."""
    return best["accuracy"] >= best["baseline"] + LEARNED_MARGIN


def budgets(best: pd.DataFrame) -> pd.DataFrame:
    """Per task: from each front point's step time up, the layout to choose and the accuracy it buys."""
    columns = ["task", "seq_len", "from_step_ms", "layout", "dim", "accuracy", "accuracy_min", "accuracy_max"]
    table = front(best)
    return table.rename(columns={"step_ms": "from_step_ms"})[columns] if len(table) else pd.DataFrame(columns=columns)


def _percent(value: float) -> str:
    return f"{100 * value:.0f}%"


def summary(best: pd.DataFrame) -> list[str]:
    """Per task, one sentence: who is most accurate, who is fastest on the front and what it keeps of the best."""
    lines = []
    for (task, seq_len), group in best.groupby(["task", "seq_len"], sort=True):
        baseline = group["baseline"].iloc[0]
        ok = group[learned(group)]
        lead = f"{task} at {int(seq_len)} tokens (baseline {_percent(baseline)})"
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
        points = front(group)
        fastest = points.iloc[0]
        if fastest["layout"] != top["layout"] and fastest["step_ms"] > 0:
            text += (f". The fastest on the front, {fastest['layout']}, reaches "
                     f"{_percent(fastest['accuracy'] / top['accuracy'])} of that at "
                     f"{top['step_ms'] / fastest['step_ms']:.1f}× the speed")
        lines.append(text + ".")
    return lines
