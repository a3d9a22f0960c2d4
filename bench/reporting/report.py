"""One self-contained `report.html` per run folder, built from `results.csv`, `env.json` and the plots'
manifest (`bench.reporting.render.render_run` loads the folder once and writes tables, plots, then this page).

The page opens from disk anywhere: the PNGs are embedded as base64 data URIs and the CSS is inline,
with no script, font or link outside the file. It starts with a written answer computed from the data,
then one section per group (dtype, mode, dim, batching, device) with its plots and tables, the
forward-vs-train plots, the environment (env.json, flattened) and the command line.
"""

from __future__ import annotations

import base64
import html
import math
import shlex
from pathlib import Path

import pandas as pd

from bench.reporting import analysis, anchors, quality, scopes
from bench.reporting import plots, quality_plots, scope_plots, style

CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: #1d1d1f;
       max-width: 1180px; margin: 1.5em auto 4em; padding: 0 1.2em; line-height: 1.45; }
h1 { font-size: 1.6em; margin-bottom: .1em; }
h2 { font-size: 1.25em; border-bottom: 2px solid #e3e3e3; padding-bottom: .2em; margin-top: 2.2em; }
h3 { font-size: 1.02em; margin: 1.6em 0 .4em; }
.meta { color: #666; font-size: .9em; margin-top: 0; }
.cpu { background: #fff4d6; border: 1px solid #e2b93b; border-radius: 6px; padding: .6em 1em; font-weight: 600; }
.summary li { margin: .35em 0; }
nav { font-size: .9em; line-height: 1.8; }
nav a { margin-right: 1.1em; white-space: nowrap; }
a { color: #0b5cad; text-decoration: none; }
table { border-collapse: collapse; font-size: .84em; margin: .3em 0 1em; }
th, td { padding: .22em .65em; border-bottom: 1px solid #ececec; text-align: left; vertical-align: top; }
th { background: #f5f5f7; font-weight: 600; }
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
tr:hover td { background: #fafafa; }
figure { margin: 1em 0 1.6em; }
figure img { max-width: 100%; height: auto; border: 1px solid #eee; }
figcaption { font-size: .8em; color: #777; }
details { margin: .4em 0 1em; }
summary { cursor: pointer; color: #0b5cad; }
pre { background: #f5f5f7; padding: .7em 1em; border-radius: 4px; white-space: pre-wrap; word-break: break-all; }
.note { color: #666; font-size: .85em; }
.holds { color: #1a7f37; font-weight: 600; }
.fails { color: #c0392b; font-weight: 600; }
.warn { background: #fdecea; border: 1px solid #e0a29b; border-radius: 6px; padding: .5em 1em; }
"""

# Tables longer than this start folded (still in the page, one click away).
FOLD_ROWS = 16


def _e(text) -> str:
    return html.escape("" if text is None else str(text))


def _number(value, digits: int = 3) -> str:
    """A number for a table cell: 3 significant digits, thousands separated, '—' when missing."""
    if value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NA:
        return "—"
    value = float(value)
    if value != 0 and abs(value) >= 10 ** digits:
        return f"{value:,.0f}"
    return f"{value:.{digits}g}"


def _ratio(value: float) -> str:
    return f"{value:.2f}×" if value < 10 else f"{value:.1f}×" if value < 100 else f"{value:,.0f}×"


_FORMATS = {
    "len": analysis.format_seq_len,
    "num": _number,
    "ratio": _ratio,
    "exponent": lambda value: f"{value:.2f}",
    "r2": lambda value: f"{value:.3f}",
    "pct": lambda value: f"{100 * value:.3g}%",
}


def _cell(value, kind: str) -> str:
    if kind not in _FORMATS:
        return f"<td>{_e(value if pd.notna(value) else '')}</td>"
    text = _FORMATS[kind](value) if pd.notna(value) else "—"
    return f'<td class="num">{_e(text)}</td>'


def html_table(frame: pd.DataFrame, columns: list[tuple[str, str, str]], css_class: str = "") -> str:
    """An escaped HTML table of `frame`; columns are (column, header, kind), kind 'text' or one of _FORMATS."""
    head = "".join(f"<th>{_e(header)}</th>" for _, header, _ in columns)
    rows = "".join("<tr>" + "".join(_cell(row[column], kind) for column, _, kind in columns) + "</tr>"
                   for _, row in frame.iterrows())
    attribute = f' class="{_e(css_class)}"' if css_class else ""
    return f"<table{attribute}><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>"


def _folded(title: str, frame: pd.DataFrame, columns, note: str = "") -> str:
    """A titled table, folded into <details> when it is long; nothing when it is empty."""
    if frame.empty:
        return ""
    body = (f'<p class="note">{_e(note)}</p>' if note else "") + html_table(frame, columns)
    if len(frame) > FOLD_ROWS:
        return f"<details><summary>{_e(title)} ({len(frame)} rows)</summary>{body}</details>"
    return f"<h3>{_e(title)}</h3>{body}"


def flatten(env: dict, prefix: str = "") -> list[tuple[str, str]]:
    """env.json as (dotted key, text) pairs: nested dicts flattened, lists joined, null shown as '—'."""
    pairs = []
    for key, value in env.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            pairs += flatten(value, f"{name}.") if value else [(name, "—")]
        elif isinstance(value, (list, tuple)):
            pairs.append((name, ", ".join(str(item) for item in value)))
        else:
            pairs.append((name, "—" if value is None else str(value)))
    return pairs


def _lead_bold(sentence: str) -> str:
    """The escaped sentence with its lead ('At 512 tokens (...):') in bold."""
    lead, colon, rest = sentence.partition("): ")
    if not colon:
        return _e(sentence)
    return f"<strong>{_e(lead + ')')}:</strong> {_e(rest)}"


def _image(path: Path) -> str:
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return (f'<figure><img alt="{_e(path.stem)}" src="data:image/png;base64,{data}">'
            f"<figcaption>plots/{_e(path.name)}</figcaption></figure>")


def _on_cpu(table: pd.DataFrame, env: dict) -> bool:
    devices = set(table["device"]) - {""}
    if env.get("device"):
        devices.add(str(env["device"]))
    return any(device.startswith("cpu") for device in devices)


def _in_mixer_order(frame: pd.DataFrame) -> pd.DataFrame:
    order = {mixer: i for i, mixer in enumerate(style.mixer_order(frame["mixer"]))}
    return frame.sort_values("mixer", key=lambda names: names.map(order), kind="stable")


def _group_section(key: dict, anchor: str, table: pd.DataFrame, sentence: str, images: list[Path]) -> str:
    """One group: its answer, its plots, and its tables."""
    rows = table
    for column, value in key.items():
        rows = rows[(rows[column] == value) | (rows[column].isna() & pd.isna(value))]
    parts = [f'<h2 id="{_e(anchor)}">{_e(analysis.describe_group(key))} · {_e(key.get("device", ""))}</h2>']
    if sentence:
        parts.append(f"<p>{_lead_bold(sentence)}</p>")
    parts += [_image(path) for path in images]

    best = analysis.winners(rows)
    parts.append(_folded("Fastest mixer per length", best, [
        ("seq_len", "length", "len"), ("mixer", "fastest", "text"), ("time_ms", "time (ms)", "num"),
        ("runner_up", "runner-up", "text"), ("margin", "runner-up slower by", "ratio"),
        ("attention_time_ms", "attention (ms)", "num"), ("speedup_vs_attention", "faster than attention", "ratio")]))
    cross = analysis.crossovers(rows).sort_values(["crossover_seq_len", "mixer_a", "mixer_b"])
    parts.append(_folded("Crossovers (where the faster of two mixers changes)", cross, [
        ("crossover_seq_len", "at ≈ length", "num"), ("faster_below", "faster below", "text"),
        ("faster_above", "faster above", "text"), ("seq_len_low", "between", "len"), ("seq_len_high", "and", "len")],
        note="Interpolated in log space between the two measured lengths that bracket the change."))
    scaling = analysis.scaling_exponents(rows)
    scaling = _in_mixer_order(scaling)
    parts.append(_folded("Scaling exponents (time ∝ n^k)", scaling, [
        ("mixer", "mixer", "text"), ("time_exponent", "time exponent", "exponent"), ("time_r2", "r²", "r2"),
        ("mem_exponent", "memory exponent", "exponent"), ("mem_r2", "r²", "r2"),
        ("fit_seq_len_min", "fitted from", "len"),
        ("fit_seq_len_max", "to", "len"), ("n_points", "points", "num")],
        note="Least-squares slope in log–log over the upper half of the measured lengths (at least 3), "
             "where launch overhead no longer dominates."))
    roof = analysis.roofline_summary(rows)
    roof = _in_mixer_order(roof)
    parts.append(_folded("Roofline: measured time vs the hardware floor", roof, [
        ("mixer", "mixer", "text"), ("roofline_frac_median", "median % of roof", "pct"),
        ("roofline_frac_max", "best", "pct"), ("bound", "bound by", "text"), ("bound_share", "of its points", "pct"),
        ("tflops_median", "median TFLOP/s", "num"), ("gbps_median", "median GB/s", "num")],
        note="100% = the floor max(FLOPs / peak FLOP/s, minimal bytes / peak bandwidth) with the peaks "
             "measured at the start of the run."))
    ran = analysis.ok_rows(rows)
    shaky = _in_mixer_order(ran[analysis.noisy(ran)].sort_values("seq_len"))
    parts.append(_folded("Noisy points", shaky, [
        ("mixer", "mixer", "text"), ("seq_len", "length", "len"), ("time_ms", "time (ms)", "num"),
        ("time_ms_lo", "lowest round", "num"), ("time_ms_hi", "highest round", "num"), ("rounds", "rounds", "num"),
        ("time_ms_p20", "p20", "num"), ("time_ms_p80", "p80", "num"), ("load_avg", "load average", "num")],
        note=f"Rounds whose medians differ by more than {analysis.NOISY_ROUNDS:.0%} (one round: p80/p20 above "
             f"{analysis.NOISY_SPREAD:g}×). Compare such points only with care, or measure them again."))
    lost = analysis.failures(rows).sort_values(["status", "mixer", "first_seq_len"])
    parts.append(_folded("Points that did not run", lost, [
        ("mixer", "mixer", "text"), ("status", "status", "text"), ("seq_lens", "lengths", "text"),
        ("error", "reason", "text")]))
    return "\n".join(part for part in parts if part)


VERDICT_CLASS = {"holds": "holds", "does not hold": "fails"}


def _claims_table(frame: pd.DataFrame) -> str:
    """The claims as a table, verdicts coloured; empty cells where a claim has no figure of ours."""
    head = ("<tr><th>claim</th><th>paper</th><th>dtype</th><th>ours vs attention</th><th>verdict</th>"
            "<th>ours vs attention-naive</th><th>verdict</th><th>setting and note</th></tr>")
    body = []
    for row in frame.itertuples(index=False):
        cells = [_e(row.claim), _e(row.paper), _e(row.dtype)]
        for ours, verdict in ((row.ours_vs_attention, row.verdict_vs_attention),
                              (row.ours_vs_attention_naive, row.verdict_vs_attention_naive)):
            cells.append(_e(scopes.format_speedup(ours)) if ours is not None and pd.notna(ours) else "—")
            css = VERDICT_CLASS.get(str(verdict), "")
            cells.append(f'<span class="{css}">{_e(verdict)}</span>' if css else _e(verdict or ""))
        cells.append(_e(" · ".join(text for text in (row.setting, row.note) if text)))
        body.append("<tr>" + "".join(f"<td>{cell}</td>" for cell in cells) + "</tr>")
    return f'<table class="claims"><thead>{head}</thead><tbody>{"".join(body)}</tbody></table>'


def _by_length(title: str, frame: pd.DataFrame, index: list[str], value: str, kind: str) -> str:
    """`frame`'s `value` as a folded table: a row per `index` key, a column per length; nothing when empty."""
    if frame.empty:
        return ""
    pivot = frame.pivot_table(index=index, columns="seq_len", values=value, aggfunc="last").reset_index()
    lengths = [c for c in pivot.columns if isinstance(c, (int, float))]
    columns = [(name, "layout" if name == "mixer" else name, "text") for name in index]
    return _folded(title, pivot, columns + [(n, analysis.format_seq_len(n), kind) for n in lengths])


def _scopes_section(table: pd.DataFrame, env: dict, images: list[Path]) -> str:
    """The mixer inside a model: speed-up per scope, share of the step, and the paper's claims."""
    if table["scope"].nunique() < 2 and not (table["scope"] == "encoder").any():
        return ""
    parts = ['<h2 id="scopes">The mixer inside a model: mixer, block and encoder scope</h2>',
             '<p class="note">A block is one encoder layer (mixer + feed-forward sublayer, residuals, LayerNorms); an '
             "encoder adds embeddings, the layers and a masked-LM head. Train at block and encoder scope is a whole "
             "step: forward, backward and an AdamW update. The share is the mixer's time alone (its mixer-scope "
             "row) times the layers that use it, over the measured step.</p>"]
    parts += [_image(path) for path in images]
    parts.append(_by_length("Share of the step spent in the mixer", scopes.mixer_share(table),
                            ["scope", "mode", "dtype", "mixer"], "share", "pct"))
    parts.append(_by_length("Speed-up over attention (attention's time ÷ the layout's)", scopes.speedups(table),
                            ["mode", "dtype", "mixer", "scope"], "speedup", "ratio"))
    claims = scopes.claims(table, env)
    if (table["scope"] == "encoder").any():
        cpu = "" if env.get("device") == "cuda" else (
            '<p class="cpu">This run is on a CPU: the paper\'s figures are GPU and TPU figures, so a CPU verdict '
            "says whether the ratio carries over to this CPU, not whether the paper is right.</p>")
        parts.append('<h3 id="claims">The FNet paper\'s claims, judged on this run</h3>' + cpu +
                     f'<p class="note">Lee-Thorp et al., arXiv 2105.03824. A speed-up claim holds when ours reaches '
                     f"{scopes.TOLERANCE:.0%} of the paper's; ours is attention's time ÷ the layout's at "
                     f"{scopes.CLAIM_LENGTH} tokens, encoder scope unless the claim is about the sublayer.</p>"
                     + _claims_table(claims))
    return "\n".join(part for part in parts if part)


def _quality_section(best: pd.DataFrame, env: dict, images: dict, table: pd.DataFrame | None = None) -> str:
    """What each layout learns: the speed–accuracy frontier per task, the tables behind it (`images`: the
    quality plots' manifest), MAD's score where MAD's tasks ran, and our figures beside published ones (`table`:
    the quality table, for MAD's score over its grid)."""
    if best.empty:
        return ""
    settings = env.get("quality") or {}
    parts = ['<h2 id="quality">What each mixer learns: the speed–accuracy frontier</h2>',
             f'<p class="note">Each layout is trained as a small encoder ({_e(settings.get("layers", "?"))} layers, '
             f'{_e(settings.get("norm", "?"))}-norm, previous-token shift '
             f'{"on" if settings.get("shift") else "off"} for every layout) for the steps and batch each '
             f"task's table gives; the learning rate with the best validation accuracy "
             "(and weight decay, where a grid of them was trained) "
             "is kept and its test accuracy reported, as the mean over seeds with their lowest and highest. "
             "Step time is the median training step, measured with "
             f"{_e(settings.get('workers', '?'))} worker(s) of {_e(settings.get('threads_per_worker') or 'all')} "
             "thread(s) training at once, so it compares layouts within this run only. "
             f"{_e(settings.get('training', ''))}.</p>"]
    for task, group in best.groupby("task", sort=True):
        mine = [path for (kind, group_key), path in images.items()
                if kind == quality_plots.KIND and dict(group_key).get("task") == task]
        parts.append(f"<h3>{_e(task)}</h3>")
        if not quality.learned(group).any():
            parts.append(f'<p class="warn">No layout learned {_e(task)} within this budget: every mean test accuracy '
                         f"is within {quality.LEARNED_MARGIN:.0%} of the baseline ({group['baseline'].iloc[0]:.0%}). "
                         "No frontier is drawn; a larger step budget or a GPU preset is needed.</p>")
        parts += [_image(path) for path in mine]
        shown = group.sort_values(["task_options", "seq_len", "accuracy"], ascending=[True, True, False])
        several = group["task_options"].nunique() > 1  # a task trained at several settings: each row says which
        setting = [("task_options", "task options", "text")] if several else []
        parts.append(_folded(f"{task}: best rate per layout and width", shown, setting + [
            ("layout", "layout", "text"), ("seq_len", "length", "len"), ("dim", "width", "num"),
            ("params", "parameters", "num"), ("accuracy", "test accuracy", "pct"), ("accuracy_min", "min", "pct"),
            ("accuracy_max", "max", "pct"), ("seeds", "seeds", "num"), ("baseline", "baseline", "pct"),
            ("lr", "best rate", "num"), ("weight_decay", "weight decay", "num"), ("steps", "steps", "num"),
            ("batch", "batch", "num"),
            ("step_ms", "step (ms)", "num"),
            ("val_accuracy", "validation", "pct"), ("failed", "failed runs", "num")],
            note="" if several else f"Task options: {group['task_options'].iloc[0] or 'the generator defaults'}."))
        front = quality.front(group)
        parts.append(_folded(f"{task}: which layout at which time budget (the front)", front, setting + [
            ("step_ms", "from step time (ms)", "num"), ("layout", "choose", "text"), ("dim", "width", "num"),
            ("accuracy", "test accuracy", "pct"), ("seq_len", "length", "len")],
            note="Read down: with at least this much time per training step, this layout is the most accurate "
                 "you can have; below the first row, nothing in this run fits. Only runs that beat the baseline by "
                 f"{quality.LEARNED_MARGIN:.0%} are on the front: a fast run that learned nothing is no buy."))
    parts.append(_mad_section(table))
    parts.append(_anchors_section(best, table))
    return "\n".join(part for part in parts if part)


def _mad_section(table: pd.DataFrame | None) -> str:
    """MAD's score per layout and task, ranked, beside the published averages; nothing where no MAD task ran."""
    scores = quality.mad_scores(table) if table is not None and len(table) else pd.DataFrame()
    if scores.empty:
        return ""
    known = anchors.published_mad()
    scores = scores.assign(
        published_model=[known.get(layout, ("", None, None))[0] for layout in scores["layout"]],
        published=[known.get(layout, ("", None, None))[1] for layout in scores["layout"]],
        published_rank=[known.get(layout, ("", None, None))[2] for layout in scores["layout"]])
    tasks = [task for task in quality.MAD_TASKS if task in scores.columns]
    ranks = ", ".join(f"{rank}. {model} {100 * value:.1f}" for model, rank, value in sorted(
        ((a.model, anchors.published_ranks()[a.model], a.value) for a in anchors.ANCHORS if a.task == anchors.MAD),
        key=lambda item: item[1]))
    order = anchors.mad_order(scores)
    return ('<h3 id="mad">MAD score per layout</h3>'
            f'<p class="note">MAD\'s score (Poli et al. 2024): per setting of a task (its options, length and width), '
            "the best test accuracy over the learning-rate × weight-decay grid trained here; a task's score is the "
            "mean over its settings; the mean column averages the tasks a layout has. Published averages (MAD's "
            f"grid and sizes, {_e(anchors.MAD_SOURCE)}): {_e(ranks)}. Our runs are smaller (see each setting in "
            "the anchors table), so compare the order more than the level.</p>"
            + (f"<p>{_e(order)}</p>" if order else "")
            + html_table(scores, [("rank", "rank", "num"), ("layout", "layout", "text")]
                         + [(task, task, "pct") for task in tasks]
                         + [(quality.MAD_MEAN, "mean", "pct"), ("settings", "settings", "num"),
                            ("published_model", "published model", "text"), ("published", "published average", "pct"),
                            ("published_rank", "published rank (of 5)", "num")]))


def _anchors_section(best: pd.DataFrame, table: pd.DataFrame | None) -> str:
    """Our accuracy beside each published figure for a task this run trained, and in words where they are far."""
    compared = anchors.compare(best, table)
    if compared.empty:
        return ""
    far = anchors.sentences(compared)
    warning = "".join(f'<p class="warn">{_e(text)}</p>' for text in far)
    compared = compared.assign(far=["far" if value else "" for value in compared["far"]])
    return ('<h3 id="anchors">Our figures beside published ones</h3>'
            f'<p class="note">Each published figure with the setting it came from, and ours with our setting: ours '
            f"are smaller runs (a CPU budget, fewer steps, often narrower and shorter). Far means more than "
            f"{anchors.FAR:g} apart in accuracy; such rows are also said in words below the table.</p>"
            + html_table(compared, [("task", "task", "text"), ("model", "published model", "text"),
                                    ("layout", "our layout", "text"), ("published", "published", "pct"),
                                    ("published_setting", "published setting", "text"), ("ours", "ours", "pct"),
                                    ("our_setting", "our setting", "text"), ("difference", "ours − published", "num"),
                                    ("far", "far", "text"), ("note", "note", "text"), ("source", "source", "text")])
            + warning)


def memory_note(table: pd.DataFrame) -> str:
    """What the memory axis of the cost frontier includes, in words, for this run."""
    text = (f"Memory on the cost frontier (the Pareto plots, and total_mem_mb in pareto.csv) is "
            f"{analysis.MEMORY_TOTAL_TEXT}: all a mixer needs to run a call. The peak-memory plots show the peak "
            "working memory alone.")
    if not table["resident_mem_mb"].notna().any():
        text += " This run recorded no held memory (it predates resident_mem_mb), so its frontier counts the peak alone."
    return text


def render(table: pd.DataFrame, env: dict, manifest: dict, title: str = "",
           quality_table: pd.DataFrame | None = None) -> str:
    """The report page as a string; `manifest` {(kind, group): PNG path} is the plots drawn for this table."""
    table = analysis.prepare(table)
    device_name = env.get("device_name") or next((n for n in table["device_name"] if n), "") or "unknown device"
    summaries = analysis.group_summaries(table)
    best = quality.best_runs(quality_table if quality_table is not None else quality.prepare(pd.DataFrame()))
    sentences = quality.summary(best) + [text for _, text in summaries]
    groups = []
    for values, _ in table.groupby(analysis.GROUP_KEYS, dropna=False, sort=True):
        key = dict(zip(analysis.GROUP_KEYS, values))
        group = analysis.group_id(key)
        images = [manifest[(kind, group)] for kind in plots.KINDS if (kind, group) in manifest]
        groups.append((key, style.group_slug(key), images))
    sentence_for = {analysis.group_id(key): text for key, text in summaries}

    out = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
           '<meta name="viewport" content="width=device-width, initial-scale=1">',
           f"<title>mixbench report · {_e(device_name)}{' · ' + _e(title) if title else ''}</title>",
           f"<style>{CSS}</style></head><body>",
           f"<h1>mixbench report · {_e(device_name)}</h1>"]
    meta = [title, env.get("preset") and f"preset {env['preset']}",
            env.get("started_at") and f"{env['started_at']} → {env.get('finished_at') or 'unfinished'}",
            env.get("git_commit") and f"commit {env['git_commit']}{' (dirty)' if env.get('git_dirty') else ''}",
            f"{len(table)} points, {int((table['status'] == 'ok').sum())} ran"]
    out.append(f'<p class="meta">{_e(" · ".join(str(m) for m in meta if m))}</p>')
    if _on_cpu(table, env):
        out.append('<p class="cpu">Measured on CPU — not GPU numbers. Relative results on a GPU can differ '
                   "completely (tensor cores, FlashAttention, cuFFT).</p>")
    busy = analysis.loaded(table, env.get("cpu_count"))
    if busy.any():
        out.append(f'<p class="warn">{int(busy.sum())} of {len(table)} points were measured on a loaded machine '
                   f"(1-minute load average above its {env.get('cpu_count')} cores, up to "
                   f"{table.loc[busy, 'load_avg'].max():.1f}): other work competed for the CPU, and their times may "
                   "be slow. The load_avg column says which.</p>")
    out.append('<h2 id="answer">The answer</h2>')
    if sentences:
        out.append('<ul class="summary">' + "".join(f"<li>{_lead_bold(s)}</li>" for s in sentences) + "</ul>")
    else:
        out.append("<p>No point ran successfully; the reasons are listed below.</p>")
    if analysis.ok_rows(table)["peak_mem_mb"].notna().any():
        out.append(f'<p class="note">{_e(memory_note(table))}</p>')
    links = [(slug, f"{analysis.describe_group(key)}") for key, slug, _ in groups]
    modes = [path for (kind, _), path in manifest.items() if kind == "modes"]
    scope_images = [path for scope_kind in scope_plots.KINDS for (kind, _), path in manifest.items()
                    if kind == scope_kind]
    scope_section = _scopes_section(table, env, scope_images) if len(table) else ""
    quality_section = _quality_section(best, env, {k: path for k, path in manifest.items()
                                                   if k[0] == quality_plots.KIND},
                                       quality_table)
    nav = ['<a href="#quality">speed–accuracy</a>'] if quality_section else []
    nav += ['<a href="#scopes">mixer, block, encoder</a>'] if scope_section else []
    nav += [f'<a href="#{_e(slug)}">{_e(text)}</a>' for slug, text in links]
    nav += ['<a href="#modes">forward vs train</a>'] if modes else []
    nav += ['<a href="#environment">environment</a>', '<a href="#command">command line</a>']
    out.append("<nav>Sections: " + " ".join(nav) + "</nav>")
    if quality_section:
        out.append(quality_section)
    if scope_section:
        out.append(scope_section)
    for key, slug, images in groups:
        out.append(_group_section(key, slug, table, sentence_for.get(analysis.group_id(key), ""), images))
    if modes:
        out.append('<h2 id="modes">Forward vs train</h2>' + "".join(_image(path) for path in modes))
    out.append('<h2 id="environment">Environment</h2>')
    pairs = flatten(env)
    if pairs:
        out.append('<table class="env"><thead><tr><th>key</th><th>value</th></tr></thead><tbody>'
                   + "".join(f"<tr><td>{_e(k)}</td><td>{_e(v)}</td></tr>" for k, v in pairs)
                   + "</tbody></table>")
    else:
        out.append("<p>No env.json in this run folder.</p>")
    out.append('<h2 id="command">Command line</h2>')
    command = env.get("command")
    command = shlex.join(map(str, command)) if isinstance(command, list) else command
    out.append(f"<pre>{_e(command or 'not recorded')}</pre>")
    out.append('<p class="note">Written by mixbench from results.csv and env.json; '
               "the plots are embedded, so this file can be moved or sent on its own.</p>")
    out.append("</body></html>")
    return "\n".join(out)
