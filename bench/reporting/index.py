"""The index of committed runs, `results/README.md`, written from the run folders themselves.

Every line comes from a folder's `env.json` and `results.csv` (through `bench.reporting.analysis`), so the
index never states a figure that no run measured, and a CPU run is labelled as one.
"""

from __future__ import annotations

from pathlib import Path

from bench.reporting import analysis, quality

HEADER = """# Committed runs

Written by `mixbench index {folder}` from each run folder's `env.json` and `results.csv`; do not edit by
hand. Each folder's `report.html` opens from disk and holds every plot, table and the full environment.
"""


def _is_run(folder: Path) -> bool:
    return folder.is_dir() and (folder / "env.json").is_file() and (
        (folder / "results.csv").is_file() or (folder / "quality.csv").is_file())


def run_folders(results_dir: Path) -> list[Path]:
    """Run folders (an env.json and a results.csv or a quality.csv) in `results_dir` and one level below it, as
    committed reference runs are kept (`results/reference/<run>/`)."""
    found = []
    for folder in results_dir.iterdir():
        if _is_run(folder):
            found.append(folder)
        elif folder.is_dir():
            found += [inner for inner in folder.iterdir() if _is_run(inner)]
    return sorted(found)


def _describe(run_dir: Path, results_dir: Path) -> str:
    """One run's section; its heading links to its report relative to `results_dir` (where the index is)."""
    name = run_dir.relative_to(results_dir).as_posix()
    env = analysis.load_env(run_dir)
    table = analysis.load_results(run_dir)
    device = env.get("device", "?")
    where = f"**{'GPU' if device == 'cuda' else 'CPU'}**: {env.get('device_name', '?')}"
    if device == "cuda" and env.get("gpu"):
        gpu = env["gpu"]
        where += f" (driver {gpu.get('driver')}, CUDA {env.get('cuda')})"
    trained = env.get("quality") or {}  # a quality run's own facts; the sweep's, where the folder has one, come first
    preset, started = env.get("preset") or trained.get("preset"), env.get("started_at") or trained.get("started_at")
    finished = trained.get("finished_at") or env.get("finished_at")
    counts = table["status"].value_counts()
    statuses = ", ".join(f"{counts[s]} {s}" for s in analysis.STATUSES if s in counts)
    lines = [f"## [{name}]({name}/report.html)", "",
             f"- {where}; torch {env.get('torch', '?')}; preset `{preset or 'custom'}`"]
    if len(table):
        scopes = ", ".join(sorted(table["scope"].unique()))
        lines += [
            f"- {len(table)} points ({statuses}); scopes: {scopes}; mixers: {', '.join(sorted(table['mixer'].unique()))}",
            f"- lengths {', '.join(analysis.format_seq_len(n) for n in sorted(table['seq_len'].unique()))}; "
            f"dtypes {', '.join(sorted(table['dtype'].unique()))}; modes {', '.join(sorted(table['mode'].unique()))}",
        ]
    runs = quality.load_quality(run_dir)
    if len(runs):
        lines.append(f"- {len(runs)} training runs ({int((runs['status'] == 'ok').sum())} ok) on tasks "
                     f"{', '.join(sorted(runs['task'].unique()))}")
    lines += [
        f"- measured {started or '?'} to {finished or '?'} at commit "
        f"`{(env.get('git_commit') or '?')[:10]}`{' (dirty)' if env.get('git_dirty') else ''}",
        f"- command: `{env.get('command', '?')}`",
        "",
    ]
    sentences = quality.summary(quality.best_runs(runs)) + analysis.summary(table)
    lines += [f"> {sentence}" + "\n>" for sentence in sentences]
    return "\n".join(lines).rstrip(">\n") + "\n"


def write_index(results_dir: str | Path) -> Path:
    """Write `results_dir/README.md` describing every run folder in it and one level below; returns its path."""
    results_dir = Path(results_dir)
    sections = [_describe(run_dir, results_dir) for run_dir in run_folders(results_dir)]
    path = results_dir / "README.md"
    body = "\n".join(sections) if sections else "No run is committed yet.\n"
    path.write_text(HEADER.format(folder=results_dir.as_posix()) + "\n" + body)
    return path
