"""Everything `mixbench plot` and `mixbench report` write for a run folder, from one read of it.

`render_run(run_dir)` reads `results.csv`, `quality.csv` and `env.json` once, then writes the analysis
tables (pareto.csv, scaling.csv, crossovers.csv, winners.csv and the quality tables), the plots of the
three families into `plots/` (cost, scopes, quality; each returns a manifest {(kind, group): path}), and
last `report.html`, which finds its plots through that manifest.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from bench.reporting import analysis, plots, quality, quality_plots, report, scope_plots


@dataclass
class Rendered:
    """What `render_run` wrote: the tables, the plots' manifest, and the page (None when not asked for)."""

    tables: list[Path]
    plots: dict[tuple[str, tuple], Path] = field(default_factory=dict)
    page: Path | None = None


def render_run(run_dir, page: bool = True) -> Rendered:
    """Write the run folder's tables, its plots (PNGs left in `plots/` by an earlier draw are removed first, so
    the folder matches the results) and, with `page`, its `report.html`."""
    run_dir = Path(run_dir)
    table = analysis.load_results(run_dir)
    quality_table = quality.load_quality(run_dir)
    env = analysis.load_env(run_dir)
    tables = analysis.write_tables(run_dir, table, quality_table)
    out = run_dir / "plots"
    out.mkdir(exist_ok=True)
    for old in out.glob("*.png"):
        old.unlink()
    manifest = {**plots.draw(table, env, out), **scope_plots.draw(table, out), **quality_plots.draw(quality_table, out)}
    rendered = Rendered(tables, manifest)
    if page:
        rendered.page = run_dir / "report.html"
        rendered.page.write_text(report.render(table, env, manifest, run_dir.name, quality_table), encoding="utf-8")
    return rendered
