"""The one way to turn user input into a sweep, shared by the command line and notebooks."""

from __future__ import annotations

import re
import tempfile
from dataclasses import dataclass
from pathlib import Path

import mixers
from bench.measuring import env as environment
from bench.measuring import plan
from bench.measuring import runner
from bench.measuring.plan import DTYPE_ALIASES, DTYPES, MODES, PRESETS, Axes, PlanError, Point

REPO_RESULTS = environment.REPO_ROOT / "results"


@dataclass(frozen=True)
class SweepPlan:
    preset: str | None
    device: str
    axes: Axes
    points: list[Point]
    out: Path


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:40] or "device"


def default_out(preset: str | None, device: str) -> Path:
    """results/<preset>-<device name>: rerunning the same sweep resumes the same folder."""
    name = environment.device_facts(device)["device_name"]
    return REPO_RESULTS / f"{preset or 'custom'}-{_slug(name)}"


def plan_sweep(preset: str | None = None, *, mixers_=None, seq_lens=None, dims=None, batches=None, tokens=None,
               dtypes=None, modes=None, device: str = "auto", out: str | Path | None = None,
               timeout_s: float | None = None, budget_s: float | None = None, min_reps: int | None = None
               ) -> SweepPlan:
    """Validate every input and expand it into points; raises PlanError (one line) on bad input."""
    device = plan.resolve_device(device)
    if preset is None and not any(v is not None for v in (mixers_, seq_lens, dims, batches, tokens, dtypes, modes)):
        preset = plan.default_preset(device)
    if preset is not None and preset not in PRESETS:
        raise PlanError(f"unknown preset {preset!r} (allowed: {', '.join(PRESETS)})")
    base = PRESETS[preset][1] if preset else Axes()
    if batches is not None or tokens is not None:  # either one replaces both of the preset's series
        base = plan.with_overrides(base, batches=(), tokens=())
    for name, value in (("timeout", timeout_s), ("budget", budget_s), ("min-reps", min_reps)):
        if value is not None and not value > 0:
            raise PlanError(f"--{name} must be a positive number, got {value!r}")
    axes = plan.with_overrides(
        base,
        mixers=plan.parse_names(mixers_, "mixers", mixers.available()) if mixers_ is not None else None,
        seq_lens=plan.parse_ints(seq_lens, "seq-lens") if seq_lens is not None else None,
        dims=plan.parse_ints(dims, "dims") if dims is not None else None,
        batches=plan.parse_ints(batches, "batch") if batches is not None else None,
        tokens=plan.parse_ints(tokens, "tokens") if tokens is not None else None,
        dtypes=plan.parse_names(dtypes, "dtypes", list(DTYPES), DTYPE_ALIASES) if dtypes is not None else None,
        modes=plan.parse_names(modes, "modes", MODES) if modes is not None else None,
        timeout_s=timeout_s, budget_s=budget_s, min_reps=min_reps,
    )
    allowed = mixers.CPU_DTYPES if device == "cpu" else mixers.CUDA_DTYPES
    allowed_names = [name for name, dtype in DTYPES.items() if dtype in allowed]
    for name in axes.dtypes:
        if name not in allowed_names:
            raise PlanError(f"dtype {name} cannot run on {device} (allowed there: {', '.join(allowed_names)})")
    points = plan.expand(axes, device)
    if not points:
        raise PlanError("nothing to measure: the chosen mixers, lengths and settings give no points")
    out_path = Path(out) if out is not None else default_out(preset, device)
    if out_path.exists() and not out_path.is_dir():
        raise PlanError(f"--out {out_path} is a file, not a folder")
    return SweepPlan(preset, device, axes, points, out_path)


def run_plan(sweep_plan: SweepPlan, *, flush_l2: bool = False, progress=None) -> runner.SweepReport:
    """Measure a planned sweep into its folder (resuming it)."""
    return runner.run(sweep_plan.points, sweep_plan.axes, sweep_plan.device, sweep_plan.out,
                      preset=sweep_plan.preset, flush_l2=flush_l2, progress=progress)


def sweep(mixers=None, seq_lens=None, dims=None, batch=None, tokens=None, dtypes=None, modes=None, *,
          preset: str | None = None, device: str = "auto", out: str | Path | None = None,
          timeout_s: float | None = None, budget_s: float | None = None, min_reps: int | None = None,
          plots: bool = False):
    """Run a sweep from Python and return its rows as a pandas DataFrame (attrs['run_dir'] names the folder).

    Arguments take lists or comma-separated strings, as on the command line; `out=None` measures
    into a new temporary folder. `plots=True` also draws the plots and the report.
    """
    import pandas as pd

    sweep_plan = plan_sweep(preset, mixers_=mixers, seq_lens=seq_lens, dims=dims, batches=batch, tokens=tokens,
                            dtypes=dtypes, modes=modes, device=device,
                            out=out if out is not None else tempfile.mkdtemp(prefix="mixbench-"),
                            timeout_s=timeout_s, budget_s=budget_s, min_reps=min_reps)
    run_plan(sweep_plan)
    if plots:
        from bench.reporting import report

        report.write(sweep_plan.out)
    table = pd.read_csv(sweep_plan.out / "results.csv")
    wanted = {point.key for point in sweep_plan.points}
    keys = zip(*(table[column] for column in Point.__dataclass_fields__))
    table = table[[key in wanted for key in keys]]
    # a point re-measured after its mixer's source changed has an older row too: the newest wins
    table = table.drop_duplicates(subset=list(Point.__dataclass_fields__), keep="last").reset_index(drop=True)
    table.attrs["run_dir"] = str(sweep_plan.out)
    return table
