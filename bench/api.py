"""The one way to turn user input into a sweep or a quality run, shared by the command line and notebooks."""

from __future__ import annotations

import os
import re
import tempfile
from dataclasses import dataclass, field, replace
from pathlib import Path

import torch

import mixers
from bench import models
from bench import tasks as task_registry
from bench.measuring import fingerprint, plan, runner
from bench.measuring.plan import PRESETS, QUALITY_PRESETS, Axes, QualityAxes
from bench.measuring.points import (DTYPE_ALIASES, DTYPE_NAMES, MODES, NORMS, SCOPES, PlanError, Point, parse_floats,
                                    parse_int, parse_ints, parse_names, parse_options)
from bench.measuring.timing import TORCH_DTYPES
from bench.measuring.workers import LocalBackend, Slot, inherited_mask, local_slots
from bench.reporting import analysis
from bench.reporting.render import render_run

REPO_RESULTS = fingerprint.REPO_ROOT / "results"


@dataclass(frozen=True)
class SweepPlan:
    preset: str | None
    device: str
    axes: Axes
    points: list[Point]
    out: Path
    slots: list[Slot]
    warnings: tuple[str, ...] = ()
    backend: object = field(default_factory=LocalBackend)  # whose workers measure; close() it when done


@dataclass(frozen=True)
class QualityPlan:
    preset: str | None
    device: str
    axes: QualityAxes
    runs: list
    out: Path
    slots: list[Slot]
    warnings: tuple[str, ...] = ()
    backend: object = field(default_factory=LocalBackend)


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:40] or "device"


def default_out(preset: str | None, device: str, device_name: str | None = None) -> Path:
    """results/<preset>-<device name>: rerunning the same sweep resumes the same folder (`device_name`: the
    name a remote worker found, when the points are measured elsewhere)."""
    name = device_name or fingerprint.device_facts(device)["device_name"]
    return REPO_RESULTS / f"{preset or 'custom'}-{_slug(name)}"


def _check_out(out: Path) -> Path:
    """Refuse an --out that cannot become a run folder, before anything runs."""
    if out.exists() and not out.is_dir():
        raise PlanError(f"--out {out} is a file, not a folder")
    existing = next((parent for parent in (out, *out.parents) if parent.exists()), None)
    if existing is None or not existing.is_dir():
        raise PlanError(f"--out {out}: {existing} is not a folder")
    try:  # the one honest test of "can a folder be made here" (permissions say nothing to root, or in /proc)
        os.rmdir(tempfile.mkdtemp(prefix=".mixbench-", dir=existing))
    except OSError as exc:
        raise PlanError(f"--out {out}: cannot create a folder in {existing} ({exc.strerror or exc}); "
                        f"choose another --out") from None
    return out


def _positive(**values) -> None:
    for name, value in values.items():
        if value is not None and not value > 0:
            raise PlanError(f"--{name.replace('_', '-')} must be a positive number, got {value!r}")


BACKENDS = ("local", "ray")


def _backend(backend: str, ray_address: str | None, gpu_type: str | None, devices):
    """The backend named by --backend (connected to its cluster for ray); raises PlanError."""
    if backend not in BACKENDS:
        raise PlanError(f"unknown backend {backend!r} (allowed: {', '.join(BACKENDS)})")
    if backend == "local":
        for name, value in (("ray-address", ray_address), ("gpu-type", gpu_type)):
            if value is not None:
                raise PlanError(f"--{name} is for --backend ray")
        return LocalBackend()
    if devices is not None:
        raise PlanError("--devices picks this machine's GPUs; with --backend ray use --workers N and --gpu-type TYPE")
    try:
        from bench.measuring import ray_backend
    except ImportError as exc:
        raise PlanError(f"--backend ray needs the ray package, which is not importable here ({exc}); install it "
                        f"with `make install` or `pip install 'mixbench[ray]'`") from None
    return ray_backend.RayBackend(ray_address, gpu_type)


def _ray_slots(chosen, device: str, workers, threads: int | None, fill: bool = False) -> tuple[list[Slot], tuple]:
    """Slots of Ray actors, and the warnings they deserve."""
    count = parse_int(workers, "workers") if workers is not None else None
    slots = chosen.slots(count, threads, fill=fill)
    warnings = ()
    if device == "cpu" and len(slots) > 1 and not fill:
        warnings = (f"{len(slots)} Ray workers measure on CPUs: those on one node share its cores and memory "
                    f"bandwidth, so their timings interfere; compare timings only from one-worker runs",)
    return slots, warnings


def _visible_gpus() -> int:
    """The GPUs --devices and --workers may name: torch's count, which honours an inherited CUDA_VISIBLE_DEVICES
    (each worker then gets its entry of that mask: `workers.visible_device`), and never more than the mask lists."""
    mask = inherited_mask()
    count = torch.cuda.device_count()
    return count if mask is None else min(count, len(mask))


def _mask_note() -> str:
    mask = os.environ.get("CUDA_VISIBLE_DEVICES")
    return f" visible (CUDA_VISIBLE_DEVICES={mask})" if mask is not None else ""


def _workers(device: str, workers, devices, threads: int | None, default: int = 1) -> tuple[list[Slot], tuple]:
    """Worker slots from --workers / --devices, and the warnings they deserve."""
    if workers is not None and devices is not None:
        raise PlanError("give --workers or --devices, not both")
    warnings = []
    if devices is not None:
        if device != "cuda":
            raise PlanError(f"--devices names GPUs; this sweep runs on {device} (use --workers N there)")
        indices = parse_ints(devices, "devices", allow_zero=True)
        visible = _visible_gpus()
        if any(index >= visible for index in indices):
            raise PlanError(f"--devices {devices}: this machine has {visible} GPU(s){_mask_note()}, numbered "
                            f"0-{visible - 1}")
        return local_slots(device, devices=indices, threads=threads), ()
    count = parse_int(workers, "workers") if workers is not None else default
    if device == "cpu" and count > 1 and workers is not None:
        warnings.append(f"{count} workers share this CPU's cores and memory bandwidth, so their timings interfere; "
                        f"compare timings only from one-worker runs")
    if device == "cuda" and count > 1:
        visible = _visible_gpus()
        if count > visible:
            raise PlanError(f"--workers {count}: this machine has {visible} GPU(s){_mask_note()}; use at most "
                            f"{visible}")
        return local_slots(device, devices=tuple(range(count)), threads=threads), tuple(warnings)
    return local_slots(device, workers=count, threads=threads), tuple(warnings)


def plan_sweep(preset: str | None = None, *, layouts=None, seq_lens=None, dims=None, batches=None, tokens=None,
               dtypes=None, modes=None, scopes=None, model=None, layers=None, ffn=None, vocab=None, norm=None,
               rounds=None, device: str = "auto", out: str | Path | None = None, timeout_s: float | None = None,
               budget_s: float | None = None, min_reps: int | None = None, workers=None, devices=None, threads=None,
               backend: str = "local", ray_address: str | None = None, gpu_type: str | None = None,
               dry_run: bool = False, causal: bool | None = None) -> SweepPlan:
    """Validate every input and expand it into points; raises PlanError (one line) on bad input.

    With backend="ray" this connects to the Ray cluster (its GPUs decide device="auto"); the plan's
    backend is to be closed when the run is done. `dry_run=True` plans for `device` as named, whether or not
    this machine has it (a GPU preset sized on a CPU), and touches nothing: no backend, no worker slots, no
    check of the run folder (`out` is None unless given); `bench.measuring.estimate` prices such a plan.
    """
    threads = parse_int(threads, "threads") if threads is not None else None
    chosen = LocalBackend() if dry_run else _backend(backend, ray_address, gpu_type, devices)
    try:
        return _plan_sweep(chosen, preset, layouts, seq_lens, dims, batches, tokens, dtypes, modes, scopes, model,
                           layers, ffn, vocab, norm, rounds, device, out, timeout_s, budget_s, min_reps, workers,
                           devices, threads, dry_run, causal)
    except BaseException:
        chosen.close()
        raise


def _dry_device(device: str) -> str:
    """The device a dry run plans for: as named (cuda need not be visible here); auto is this machine's."""
    return device if device in ("cpu", "cuda") else plan.resolve_device(device)  # auto, or the one-line refusal


def _plan_sweep(chosen, preset, layouts, seq_lens, dims, batches, tokens, dtypes, modes, scopes, model, layers,
                ffn, vocab, norm, rounds, device, out, timeout_s, budget_s, min_reps, workers, devices,
                threads, dry_run=False, causal=None) -> SweepPlan:
    remote = chosen.name != "local"
    device = chosen.device(device) if remote else _dry_device(device) if dry_run else plan.resolve_device(device)
    axes_given = (layouts, seq_lens, dims, batches, tokens, dtypes, modes, scopes, model)
    if preset is None and not any(v is not None for v in axes_given):
        preset = plan.default_preset(device)
    if preset is not None and preset not in PRESETS:
        raise PlanError(f"unknown preset {preset!r} (allowed: {', '.join(PRESETS)})")
    base = PRESETS[preset][1] if preset else Axes()
    if batches is not None or tokens is not None:  # either one replaces both of the preset's series
        base = plan.with_overrides(base, batches=(), tokens=())
    _positive(timeout=timeout_s, budget=budget_s, min_reps=min_reps)
    if model is not None and dims is not None:
        raise PlanError(f"--model {model} sets the width; leave out --dims (or give --layers/--ffn with --dims instead)")
    axes = plan.with_overrides(
        base,
        mixers=plan.parse_layouts(layouts) if layouts is not None else None,
        seq_lens=parse_ints(seq_lens, "seq-lens") if seq_lens is not None else None,
        dims=parse_ints(dims, "dims") if dims is not None else None,
        batches=parse_ints(batches, "batch") if batches is not None else None,
        tokens=parse_ints(tokens, "tokens") if tokens is not None else None,
        dtypes=parse_names(dtypes, "dtypes", DTYPE_NAMES, DTYPE_ALIASES) if dtypes is not None else None,
        modes=parse_names(modes, "modes", MODES) if modes is not None else None,
        scopes=parse_names(scopes, "scope", SCOPES) if scopes is not None else None,
        timeout_s=timeout_s, budget_s=budget_s, min_reps=min_reps,
        rounds=parse_int(rounds, "rounds") if rounds is not None else None,
    )
    # a named shape sets the width; explicit widths replace the preset's named shape
    axes = plan.apply_model(replace(axes, model=model if model is not None else None if dims is not None
                                    else base.model))
    axes = plan.with_overrides(
        axes,
        layers=parse_int(layers, "layers") if layers is not None else None,
        ffn=parse_int(ffn, "ffn") if ffn is not None else None,
        vocab=parse_int(vocab, "vocab", allow_zero=True) if vocab is not None else None,
        norm=parse_names(norm, "norm", NORMS)[0] if norm is not None else None,
        causal=bool(causal) if causal is not None else None,
    )
    plan.check_layouts(axes)
    allowed = mixers.CPU_DTYPES if device == "cpu" else mixers.CUDA_DTYPES
    allowed_names = [name for name, dtype in TORCH_DTYPES.items() if dtype in allowed]
    for name in axes.dtypes:
        if name not in allowed_names:
            raise PlanError(f"dtype {name} cannot run on {device} (allowed there: {', '.join(allowed_names)})")
    points = plan.expand(axes, device)
    if not points:
        raise PlanError("nothing to measure: the chosen mixers, lengths and settings give no points")
    if tokens is not None:  # asked for on the command line: refuse; from a preset the rows say `unsupported`
        short = sorted({(int(p.batching.split("=")[1]), p.seq_len) for p in points if p.batch < 1})
        if short:
            count, seq_len = short[0]
            raise PlanError(f"--tokens {count} is fewer than one sequence of {seq_len} tokens (allowed: --tokens at "
                            f"least the longest of --seq-lens, {max(axes.seq_lens)})")
    if dry_run:
        return SweepPlan(preset, device, axes, points, Path(out) if out is not None else None, [], (), chosen)
    if remote:
        slots, warnings = _ray_slots(chosen, device, workers, threads)
        out_path = _check_out(Path(out) if out is not None
                              else default_out(preset, device, (chosen.machine(device) or {}).get("device_name")))
    else:
        slots, warnings = _workers(device, workers, devices, threads)
        out_path = _check_out(Path(out) if out is not None else default_out(preset, device))
    return SweepPlan(preset, device, axes, points, out_path, slots, warnings, chosen)


def run_plan(sweep_plan: SweepPlan, *, flush_l2: bool = False, progress=None) -> runner.SweepReport:
    """Measure a planned sweep into its folder (resuming it)."""
    return runner.run(sweep_plan.points, sweep_plan.axes, sweep_plan.device, sweep_plan.out,
                      preset=sweep_plan.preset, flush_l2=flush_l2, progress=progress, slots=sweep_plan.slots,
                      backend=sweep_plan.backend)


def plan_quality(preset: str | None = None, *, tasks=None, layouts=None, seq_lens=None, dims=None, layers=None,
                 steps=None, lrs=None, seeds=None, batch=None, norm=None, shift=None, device: str = "auto",
                 out: str | Path | None = None, timeout_s: float | None = None, workers=None,
                 devices=None, threads=None, backend: str = "local", ray_address: str | None = None,
                 gpu_type: str | None = None, dry_run: bool = False, weight_decays=None) -> QualityPlan:
    """Validate the input of a quality run and expand it into training runs; raises PlanError (one line).
    `dry_run=True` plans for `device` as named and touches nothing, as `plan_sweep`'s."""
    threads = parse_int(threads, "threads") if threads is not None else None
    chosen = LocalBackend() if dry_run else _backend(backend, ray_address, gpu_type, devices)
    try:
        return _plan_quality(chosen, preset, tasks, layouts, seq_lens, dims, layers, steps, lrs, seeds, batch, norm,
                             shift, device, out, timeout_s, workers, devices, threads, dry_run, weight_decays)
    except BaseException:
        chosen.close()
        raise


def _plan_quality(chosen, preset, tasks, layouts, seq_lens, dims, layers, steps, lrs, seeds, batch, norm, shift, device,
                  out, timeout_s, workers, devices, threads, dry_run=False, weight_decays=None) -> QualityPlan:
    remote = chosen.name != "local"
    device = chosen.device(device) if remote else _dry_device(device) if dry_run else plan.resolve_device(device)
    if preset is None:
        preset = plan.default_preset(device)
    if preset not in QUALITY_PRESETS:
        raise PlanError(f"unknown preset {preset!r} for quality (allowed: {', '.join(QUALITY_PRESETS)})")
    _positive(timeout=timeout_s)
    base = QUALITY_PRESETS[preset][1]
    axes = plan.with_overrides(
        base,
        tasks=parse_names(tasks, "tasks", task_registry.available()) if tasks is not None else None,
        mixers=plan.parse_layouts(layouts) if layouts is not None else None,
        seq_lens=parse_ints(seq_lens, "seq-lens") if seq_lens is not None else None,
        dims=parse_ints(dims, "dims") if dims is not None else None,
        layers=parse_int(layers, "layers") if layers is not None else None,
        steps=parse_int(steps, "steps") if steps is not None else None,
        lrs=parse_floats(lrs, "lrs") if lrs is not None else None,
        weight_decays=plan.parse_weight_decays(weight_decays) if weight_decays is not None else None,
        seeds=parse_ints(seeds, "seeds", allow_zero=True) if seeds is not None else None,
        batch=parse_int(batch, "batch") if batch is not None else None,
        norm=parse_names(norm, "norm", NORMS)[0] if norm is not None else None,
        shift=shift, timeout_s=timeout_s,
    )
    if device == "cpu" and axes.dtype != "float32":
        axes = plan.with_overrides(axes, dtype="float32")
    for text in axes.mixers or plan.default_layouts():
        layout = models.parse_layout(text)
        if layout.top_layers > axes.layers:
            raise PlanError(f"layout {text} puts {layout.top} in the last {layout.top_layers} layers, but the "
                            f"model has {axes.layers} (--layers); K must be at most the layer count")
    for task in axes.tasks:
        for setting in axes.task_settings(task):
            for seq_len in setting.seq_lens:
                support = task_registry.get(task).supports(seq_len, **parse_options(setting.options))
                if not support:
                    raise PlanError(f"task {task} cannot run at --seq-lens {seq_len}: {support.reason}")
    runs = plan.expand_quality(axes, device)
    if dry_run:
        return QualityPlan(preset, device, axes, runs, Path(out) if out is not None else None, [], (), chosen)
    # by default beside this device's default sweep, so `make bench` draws both frontiers in one report
    if remote:  # training runs do not time each other: fill the cluster (a GPU, or `threads` CPUs, each)
        slots, _ = _ray_slots(chosen, device, workers, threads, fill=True)
        out_path = _check_out(Path(out) if out is not None else default_out(
            plan.default_preset(device), device, (chosen.machine(device) or {}).get("device_name")))
        return QualityPlan(preset, device, axes, runs, out_path, slots, (), chosen)
    cores = os.cpu_count() or 1
    default_workers = min(2, cores) if device == "cpu" else 1
    count = parse_int(workers, "workers") if workers is not None else (axes.workers or default_workers)
    if threads is None:
        threads = max(1, cores // count) if device == "cpu" else None
    slots, _ = _workers(device, count if devices is None else None, devices, threads, default_workers)
    out_path = _check_out(Path(out) if out is not None else default_out(plan.default_preset(device), device))
    return QualityPlan(preset, device, axes, runs, out_path, slots, (), chosen)


def run_quality(quality_plan: QualityPlan, *, progress=None) -> runner.SweepReport:
    """Train a planned quality run into its folder's quality.csv (resuming it)."""
    axes = quality_plan.axes
    settings = {"tasks": list(axes.tasks), "layers": axes.layers, "norm": axes.norm, "shift": axes.shift,
                "lrs": list(axes.lrs), "weight_decays": list(axes.weight_decays), "seeds": list(axes.seeds),
                "per_task": {task: {"seq_lens": list(s.seq_lens), "dims": list(s.dims), "steps": s.steps,
                                    "batch": s.batch, "options": s.options}
                             for task, s in ((task, axes.setting(task)) for task in axes.tasks)}}
    return runner.run_training(quality_plan.runs, quality_plan.device, quality_plan.out, timeout_s=axes.timeout_s,
                               preset=quality_plan.preset, progress=progress, slots=quality_plan.slots,
                               settings=settings, backend=quality_plan.backend)


def sweep(mixers=None, seq_lens=None, dims=None, batch=None, tokens=None, dtypes=None, modes=None, *,
          preset: str | None = None, device: str = "auto", out: str | Path | None = None,
          timeout_s: float | None = None, budget_s: float | None = None, min_reps: int | None = None,
          rounds=None, scopes=None, model=None, causal: bool = False, plots: bool = False):
    """Run a sweep from Python and return its rows as a pandas DataFrame (attrs['run_dir'] names the folder).

    Arguments take lists or comma-separated strings, as on the command line; `out=None` measures
    into a new temporary folder. `plots=True` also draws the plots and the report.
    """
    sweep_plan = plan_sweep(preset, layouts=mixers, seq_lens=seq_lens, dims=dims, batches=batch, tokens=tokens,
                            dtypes=dtypes, modes=modes, scopes=scopes, model=model, rounds=rounds, device=device,
                            out=out if out is not None else tempfile.mkdtemp(prefix="mixbench-"),
                            timeout_s=timeout_s, budget_s=budget_s, min_reps=min_reps, causal=causal)
    run_plan(sweep_plan)
    if plots:
        render_run(sweep_plan.out)
    table = analysis.load_results(sweep_plan.out)
    wanted = {point.key for point in sweep_plan.points}
    keys = [Point.from_row({k: "" if v is None or v != v else v for k, v in row.items()}).key
            for row in table.to_dict("records")]
    table = table[[key in wanted for key in keys]].reset_index(drop=True)
    table.attrs["run_dir"] = str(sweep_plan.out)
    return table
