"""What a mixer's speed is worth inside a model: its share of a block's and an encoder's step, its speed-up
over attention at each scope, and the FNet paper's speed claims judged on the run's rows.

Everything here is a pure function of a results table (see `analysis.load_results`) and env.json.

- **Share.** A block (or encoder) row's mixing time is the time its mixer took alone at the same length,
  width, batch, dtype and mode (the mixer-scope row), times the layers that use it; the share is that
  over the block's (encoder's) measured time. In train mode the mixer alone runs forward and backward
  while the block and encoder also take an AdamW step, so the share is of a whole training step.
- **Speed-up.** baseline time / layout time at the same scope, shape and point (baseline: attention).
- **Claims.** Each claim of Lee-Thorp et al. (arXiv 2105.03824) names the comparison that tests it; our
  figure is computed from the run's encoder-scope rows at 512 tokens, against both `attention` (the fastest
  kernel PyTorch has) and `attention-naive` (the materialised n×n softmax of the paper's day). A claim
  holds when our figure reaches the paper's within `TOLERANCE`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from bench.reporting import analysis

TOLERANCE = 0.9  # a speed-up claim of R× holds when we measure at least 0.9·R×
SHARE_KEYS = ["dim", "batch", "batching", "dtype", "mode", "device", "seq_len"]
BASELINES = ("attention", "attention-naive")


def _layout(text: str) -> tuple[str, str | None, int]:
    """(base, top, K) of a layout's text, without importing torch: 'fft+attention:2' -> ('fft', 'attention', 2)."""
    if "+" not in text:
        return text, None, 0
    base, rest = text.split("+", 1)
    top, _, count = rest.rpartition(":")
    return base, top, int(count) if count.isdigit() else 0


def mixer_share(table: pd.DataFrame) -> pd.DataFrame:
    """Per block and encoder row that ran: the time its mixers take alone, and that as a share of its step."""
    columns = ["mixer", "scope", *analysis.SHAPE_KEYS, *SHARE_KEYS, "time_ms", "mixing_ms", "share"]
    ok = analysis.ok_rows(table)
    alone = ok[ok["scope"] == "mixer"].drop_duplicates(["mixer", *SHARE_KEYS], keep="last")
    alone = alone.set_index(["mixer", *SHARE_KEYS])["time_ms"]
    rows = []
    for row in ok[ok["scope"].isin(["block", "encoder"])].itertuples(index=False):
        row = row._asdict()
        base, top, top_layers = _layout(row["mixer"])
        layers = 1 if row["scope"] == "block" else int(row["layers"]) if pd.notna(row["layers"]) else 0
        point = tuple(row[key] for key in SHARE_KEYS)
        counts = {base: layers - top_layers, **({top: top_layers} if top else {})}
        times = [alone.get((name, *point)) for name in counts]
        if layers < 1 or any(t is None or not np.isfinite(t) for t in times):
            continue
        mixing = sum(count * t for count, t in zip(counts.values(), times))
        rows.append({**{key: row[key] for key in columns if key in row}, "mixing_ms": mixing,
                     "share": mixing / row["time_ms"]})
    return pd.DataFrame(rows, columns=columns)


def speedups(table: pd.DataFrame, baseline: str = "attention") -> pd.DataFrame:
    """Per scope, shape and point: baseline time / layout time, for every layout that ran beside the baseline."""
    keys = ["scope", *analysis.SHAPE_KEYS, *SHARE_KEYS]
    ok = analysis.ok_rows(table).drop_duplicates(["mixer", *keys], keep="last")
    base = ok[ok["mixer"] == baseline].set_index(keys)["time_ms"].rename("baseline_ms")
    joined = ok.join(base, on=keys, how="inner")
    joined = joined[joined["mixer"] != baseline]
    joined = joined.assign(baseline=baseline, speedup=joined["baseline_ms"] / joined["time_ms"])
    return joined[["mixer", *keys, "time_ms", "baseline", "baseline_ms", "speedup"]].reset_index(drop=True)


# --- the paper's claims -----------------------------------------------------------------------------------

@dataclass(frozen=True)
class Claim:
    """One claim of the FNet paper and the comparison of our rows that tests it."""

    name: str
    text: str
    paper: str  # the paper's figure, as the paper gives it
    ratio: float | None  # the paper's speed-up (baseline time / layout time); None: not a ratio
    layout: str
    mode: str
    scope: str = "encoder"
    paper_device: str = "GPU"  # GPU, TPU


CLAIMS = (
    Claim("train", "FNet-Base pre-trains faster than BERT-Base at 512 tokens (GPU)",
          "305 vs 169 ms/step: 1.80×", 305 / 169, "fft", "train"),
    Claim("train-tpu", "FNet-Base pre-trains faster than BERT-Base at 512 tokens (TPU)",
          "213 vs 128 ms/step: 1.66×", 213 / 128, "fft", "train", paper_device="TPU"),
    Claim("inference", "FNet-Base inference is faster than BERT-Base at 512 tokens (GPU)",
          "82 vs 46 ms: 1.78×", 82 / 46, "fft", "forward"),
    Claim("hybrid", "FNet-Hybrid-Base (attention in the top 2 layers) pre-trains faster than BERT-Base (GPU)",
          "305 vs 198 ms/step: 1.54×", 305 / 198, "fft+attention:2", "train"),
    Claim("linear", "Linear-Base pre-trains faster than BERT-Base (GPU)",
          "305 vs ≈199 ms/step: 1.53×", 305 / 199, "linear", "train"),
    Claim("sublayer", "The mixing sublayer alone: attention against FNet's Fourier transform (GPU)",
          "136 vs 11 ms: 12.4×", 136 / 11, "fft", "train", scope="mixer"),
)
MEMORY_CLAIM = ("FNet has a light memory footprint at the Long Range Arena's lengths (512–8k)",
                "qualitative (GPU)")
FASTEST_CLAIM = ("FNet is the fastest at every Long Range Arena length on GPUs", "qualitative, against "
                 "'efficient' Transformers (GPU)")
GFLOPS_CLAIM = ("FLOPs per example at 512 tokens, BERT-Base against FNet-Base", "98 vs 62 GFLOPs")
CLAIM_LENGTH = 512


def _device_kind(env: dict) -> str:
    return "GPU" if env.get("device") == "cuda" else "CPU"


def _setting(rows: pd.DataFrame) -> str:
    first = rows.iloc[0]
    return analysis.describe_group(dict(first[analysis.GROUP_KEYS])).replace(", cuda", "").replace(", cpu", "")


def _verdict(ours: float | None, paper: float, on_device: bool) -> str:
    if ours is None or not np.isfinite(ours):
        return "not measured in this run"
    if not on_device:
        return "not measured on this device"
    return "holds" if ours >= TOLERANCE * paper else "does not hold"


def claims(table: pd.DataFrame, env: dict) -> pd.DataFrame:
    """The paper's claims, the paper's figure, ours against each attention and the verdict, per dtype."""
    columns = ["claim", "paper", "device", "setting", "dtype", "ours_vs_attention", "verdict_vs_attention",
               "ours_vs_attention_naive", "verdict_vs_attention_naive", "note"]
    device = _device_kind(env)
    ok = analysis.ok_rows(table)
    rows = []
    dtypes = sorted(ok["dtype"].unique()) or [""]
    for dtype in dtypes:
        mine = ok[ok["dtype"] == dtype]
        for claim in CLAIMS:
            at = mine[(mine["scope"] == claim.scope) & (mine["mode"] == claim.mode) & (mine["seq_len"] == CLAIM_LENGTH)]
            row = dict(claim=claim.text, paper=claim.paper, device=device, dtype=dtype,
                       setting=_setting(at) if len(at) else "", note="")
            for baseline in BASELINES:
                suffix = baseline.replace("-", "_")
                ours = _ratio(at, baseline, claim.layout)
                row[f"ours_vs_{suffix}"] = ours
                # a GPU claim is judged on whatever this run measured (the note says where); a TPU claim never
                row[f"verdict_vs_{suffix}"] = _verdict(ours, claim.ratio, claim.paper_device != "TPU")
            if claim.paper_device == "TPU":
                row["note"] = f"a TPU claim; this run is on a {device}"
            elif device == "CPU":
                row["note"] = "the paper's figure is a GPU figure; this is a CPU run"
            rows.append(row)
        rows.append(_memory_claim(mine, device, dtype))
        rows.append(_fastest_claim(mine, device, dtype))
        rows.append(_gflops_claim(mine, device, dtype))
    return pd.DataFrame(rows, columns=columns)


def _ratio(rows: pd.DataFrame, baseline: str, layout: str) -> float | None:
    """baseline time / layout time where both ran in `rows` (one group); None where either is missing."""
    times = rows.drop_duplicates(["mixer", *analysis.GROUP_KEYS], keep="last")
    merged = times[times["mixer"] == baseline].merge(times[times["mixer"] == layout], on=analysis.GROUP_KEYS,
                                                      suffixes=("_base", "_layout"))
    if merged.empty:
        return None
    return float(np.exp(np.log(merged["time_ms_base"] / merged["time_ms_layout"]).mean()))


def _memory_claim(rows: pd.DataFrame, device: str, dtype: str) -> dict:
    """fft's peak training memory (held + working) against each attention's, encoder scope, at every length."""
    text, paper = MEMORY_CLAIM
    train = rows[(rows["scope"] == "encoder") & (rows["mode"] == "train")]
    train = train.assign(total_mb=analysis.total_mem_mb(train))
    row = dict(claim=text, paper=paper, device=device, dtype=dtype, setting=_setting(train) if len(train) else "",
               note="ours: attention's peak training memory (parameters, optimizer state and activations) "
                    "÷ fft's, lowest over the lengths measured")
    for baseline in BASELINES:
        suffix = baseline.replace("-", "_")
        pairs = train[train["mixer"] == baseline].merge(train[train["mixer"] == "fft"],
                                                        on=analysis.POINT_GROUP_KEYS, suffixes=("_base", "_fft"))
        ratio = float((pairs["total_mb_base"] / pairs["total_mb_fft"]).min()) if len(pairs) else None
        row[f"ours_vs_{suffix}"] = ratio
        lengths = ", ".join(analysis.format_seq_len(n) for n in sorted(pairs["seq_len"].unique()))
        row[f"verdict_vs_{suffix}"] = ("not measured in this run" if ratio is None else
                                       "holds" if ratio > 1 else "does not hold")
        if lengths and suffix == "attention":
            row["note"] += f" ({lengths})"
    if device != "GPU":
        row["note"] += "; the paper's is a GPU claim, this is a CPU run"
    return row


def _fastest_claim(rows: pd.DataFrame, device: str, dtype: str) -> dict:
    """Whether fft's encoder training step is the fastest of the run's layouts at every length."""
    text, paper = FASTEST_CLAIM
    train = rows[(rows["scope"] == "encoder") & (rows["mode"] == "train")]
    best = analysis.winners(train, "attention") if len(train) else pd.DataFrame()
    row = dict(claim=text, paper=paper, device=device, dtype=dtype, setting=_setting(train) if len(train) else "",
               ours_vs_attention=None, ours_vs_attention_naive=None)
    if best.empty or "fft" not in set(train["mixer"]):
        verdict, note = "not measured in this run", ""
    else:
        lost = best[best["mixer"] != "fft"]
        verdict = "holds" if lost.empty else "does not hold"
        note = ("fft is fastest at every length" if lost.empty else
                "fastest instead: " + ", ".join(f"{m} at {analysis.format_seq_len(n)}"
                                                for m, n in zip(lost["mixer"], lost["seq_len"])))
        if device != "GPU":
            note += "; the paper's is a GPU claim, this is a CPU run"
    row.update(verdict_vs_attention=verdict, verdict_vs_attention_naive=verdict,
               note=f"among this run's layouts; {note}" if note else "")
    return row


def _gflops_claim(rows: pd.DataFrame, device: str, dtype: str) -> dict:
    """Our analytic GFLOPs per example (forward, encoder scope, 512 tokens) for attention and fft."""
    text, paper = GFLOPS_CLAIM
    at = rows[(rows["scope"] == "encoder") & (rows["mode"] == "forward") & (rows["seq_len"] == CLAIM_LENGTH)]
    per_example = {m: float((g["flops"] / g["batch"]).iloc[-1]) / 1e9 for m, g in at.groupby("mixer")}
    bert, fnet = per_example.get("attention"), per_example.get("fft")
    row = dict(claim=text, paper=paper, device=device, dtype=dtype, setting=_setting(at) if len(at) else "",
               ours_vs_attention=None, ours_vs_attention_naive=None, verdict_vs_attention_naive="")
    if bert is None or fnet is None:
        row.update(verdict_vs_attention="not measured in this run", note="")
        return row
    base = at.iloc[0]
    is_base = int(base["layers"]) == 12 and int(base["dim"]) == 768 and int(base["ffn"]) == 3072
    close = abs(bert / 98 - 1) <= 0.05 and abs(fnet / 62 - 1) <= 0.05
    row.update(verdict_vs_attention=("holds" if close else "does not hold") if is_base else "not the base shape",
               note=f"ours (analytic, masked-LM head over 15% of positions): {bert:.1f} vs {fnet:.1f} GFLOPs")
    return row


def format_speedup(value) -> str:
    return "—" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.2f}×"
