"""`--dry-run`: a sweep's or a quality run's plan, priced on a target device, with nothing measured or written.

A timing point costs its calls plus the harness's own work around them:
- one call takes the point's analytic floor on the target — each cost part (`timing.cost_parts`, the parts the
  roofline columns use) bounded by its FLOPs at the peak of the dtype it computes in or by its minimal bytes at
  the peak bandwidth, the larger of the two — divided by `EFFICIENCY` (real kernels reach a fraction of peak),
  and never less than `LAUNCH_S`;
- the calls are those `measure.time_call` makes under the sweep's policy when the spread never settles below its
  target (the budget-bound case, the upper end: warm-up, timed rounds until `budget_s` and `min_reps`), plus
  the memory pass and, in forward mode, the output check;
- the harness's work per point (building the module and inputs, the output check, the memory pass, freeing
  caches and collecting garbage) is measured now, in this process, on a few trivial CPU points, plus `ROW_S`;
- a sweep adds a worker start per round and the device calibration.
A training run costs steps × (the larger of its train step's floor and its host work — the aten operators of one
step, counted now on a narrow model of the same layout and length, × `OP_S` — + generating its batch, measured now
at its real size), its evaluation, and its share of the harness; the quality run adds a worker start and the report.

The peaks of the GPUs are in `GPU_PEAKS` with their source; a CPU target's are measured now. Library code: the
command line prints what `sweep_lines` and `quality_lines` return.
"""

from __future__ import annotations

import math
import statistics
import time
from collections import Counter
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch.utils._python_dispatch import TorchDispatchMode

import mixers
from bench import models
from bench.measuring import measure, timing, train
from bench.measuring.plan import PRESETS, QUALITY_PRESETS
from bench.measuring.points import (DTYPE_ALIASES, DTYPE_NAMES, MODES, PlanError, Point, TrainingRun, mixer_point,
                                    parse_names)
from bench.measuring.timing import TORCH_DTYPES

# Peak rates of the GPU targets, dense (no 2:4 sparsity), TFLOP/s per dtype and GB/s of memory bandwidth, from
# NVIDIA's H100 Tensor Core GPU datasheet (H100 SXM5: 989 TFLOP/s bfloat16 and float16 on tensor cores, 495 TF32,
# 67 float32 without tensor cores, 67 float64 on tensor cores; 3.35 TB/s HBM3) and NVIDIA's H200 product brief
# (H200 SXM: the same compute; 4.8 TB/s HBM3e). float32 matrix products count at 67, not at TF32's 495: torch
# leaves TF32 off for them by default (torch.backends.cuda.matmul.allow_tf32; env.json records it).
GPU_PEAKS = {
    "h100": ("NVIDIA H100 SXM", {"bfloat16": 989.0, "float16": 989.0, "float32": 67.0, "float64": 67.0}, 3350.0),
    "h200": ("NVIDIA H200 SXM", {"bfloat16": 989.0, "float16": 989.0, "float32": 67.0, "float64": 67.0}, 4800.0),
}
TARGETS = (*GPU_PEAKS, "cpu")
PEAK_SOURCE = "NVIDIA's H100 datasheet and H200 product brief, dense rates"

EFFICIENCY = 0.5  # the share of peak a call is assumed to reach: the floor is what no kernel beats, not what one gets
LAUNCH_S = 10e-6  # the least a call takes: a kernel launch (and, in the warm-up, a synchronize) from Python
OP_S = 8e-6  # host time per aten operator of eager PyTorch on a GPU (Python, dispatcher, launch): a small model's
# training step is bound by it, not by its FLOPs
ROW_S = 0.01  # a reply through the worker's pipe and an fsync'd row on a local disk, per point or run
WORKER_START_S = 10.0  # a worker process that imports torch (and initialises CUDA), per round of a sweep
CALIBRATION_S = 0.6  # one ceiling of the calibration (the copy, then a matrix product per dtype): warm-up + 0.5 s
REPORT_S = 60.0  # drawing the plots and report.html of a GPU-preset folder: 51 s measured on a 2-core CPU
OVERHEAD_MIXERS = ("fft", "linear")  # the trivial points the harness's own time is measured on


@dataclass(frozen=True)
class Target:
    """A device to estimate for: its peaks (env.json's shape: peak_tflops per dtype, peak_bandwidth_gbps)."""

    name: str
    device: str
    description: str
    peaks: dict
    source: str

    def peaks_text(self) -> str:
        rates = self.peaks["peak_tflops"]
        shown = ", ".join(f"{name} {rates[name]:.3g}" for name in ("bfloat16", "float32") if name in rates)
        return f"{shown} TFLOP/s, {self.peaks['peak_bandwidth_gbps']:.4g} GB/s"


def cpu_peaks(dtypes=("float32",)) -> dict:
    """This CPU's ceilings, measured now and quickly (a 32 MiB copy, a 1024³ product per dtype the CPU runs)."""
    policy = measure.TimingPolicy(warmup_calls=1, warmup_s=0.0, min_reps=3, budget_s=0.05)
    src = torch.rand(8 * 2**20)
    dst = torch.empty_like(src)
    copy = measure.time_call(lambda: dst.copy_(src), "cpu", policy)
    rates = {}
    for name in dtypes:
        if TORCH_DTYPES[name] in mixers.CPU_DTYPES:
            a = torch.randn(1024, 1024, dtype=TORCH_DTYPES[name])
            rates[name] = 2 * 1024**3 / (measure.time_call(lambda: a @ a, "cpu", policy).median_ms * 1e-3) / 1e12
    return {"peak_tflops": rates, "peak_bandwidth_gbps": 2 * src.numel() * 4 / (copy.median_ms * 1e-3) / 1e9}


def resolve_target(name: str | None, device: str, gpu_plan: bool) -> tuple[Target, str]:
    """The target a dry run estimates for, and a note saying how it was chosen where it was not named.

    Without `name`: `--device cpu` is the CPU; otherwise this machine's GPU (an H200 by name, else the H100 row,
    said in the note) or, with no GPU here, the CPU — unless the plan is for a GPU (`gpu_plan`: a dtype only a GPU
    runs, as the GPU presets have, or --device cuda), which is estimated for an H100 and says so.
    """
    note = ""
    if name is not None:
        if name not in TARGETS:
            raise PlanError(f"unknown target {name!r} in --target (allowed: {', '.join(TARGETS)})")
        wanted = "cpu" if name == "cpu" else "cuda"
        if device not in ("auto", wanted):
            raise PlanError(f"--target {name} runs on {wanted}, --device {device} on another; leave --device out")
    elif device == "cpu":
        name = "cpu"
    elif torch.cuda.is_available():
        gpu = torch.cuda.get_device_name(0)
        name = "h200" if "H200" in gpu else "h100"
        if name.upper() not in gpu:
            note = f"this GPU ({gpu}) has no row in the table of peaks: estimated with an H100's (--target to choose)"
    elif gpu_plan or device == "cuda":
        name = "h100"
        note = "no GPU here: a plan for a GPU is estimated for an H100 (--target h100, h200 or cpu to choose)"
    else:
        name = "cpu"
    if name == "cpu":
        return Target("cpu", "cpu", "this CPU", cpu_peaks(("float32", "float64")),
                      "measured now (a copy, a matrix product)"), note
    description, rates, bandwidth = GPU_PEAKS[name]
    return Target(name, "cuda", description, {"peak_tflops": dict(rates), "peak_bandwidth_gbps": bandwidth},
                  PEAK_SOURCE), note


def floor_s(parts, peaks: dict) -> float:
    """Seconds of one call at the hardware limit: the roofline floor of `timing.metrics`, part by part."""
    rates = peaks.get("peak_tflops") or {}
    bandwidth = (peaks.get("peak_bandwidth_gbps") or 0.0) * 1e9
    total = 0.0
    for part in parts:
        peak = rates.get(str(part.compute_dtype).removeprefix("torch."), 0.0) * 1e12
        total += max(part.flops / peak if peak and part.flops else 0.0,
                     part.bytes_min / bandwidth if bandwidth else 0.0)
    return total


def call_s(parts, peaks: dict) -> float:
    """The time one call is assumed to take: its floor at `EFFICIENCY` of peak, and at least `LAUNCH_S`."""
    return max(floor_s(parts, peaks) / EFFICIENCY, LAUNCH_S)


def calls_of(seconds: float, policy: measure.TimingPolicy) -> tuple[int, int]:
    """(warm-up calls, timed calls) that `measure.time_call` makes for calls of `seconds` each when the spread never
    settles below its target: its loop, replayed."""
    warm = max(policy.warmup_calls, min(math.ceil(policy.warmup_s / seconds), policy.warmup_max_calls))
    timed, size = 0, 1
    while timed < policy.max_reps:
        timed += size
        if timed >= policy.min_reps and timed * seconds >= policy.budget_s:
            break
        if timed * seconds >= 2 * policy.budget_s and timed >= 3:
            break
        size = min(2 * size, 64, policy.max_reps - timed)
    return warm, timed


def point_s(point: Point, policy: measure.TimingPolicy, peaks: dict) -> float:
    """Seconds of every call the harness makes at `point`: warm-up, timed, the memory pass, forward's check."""
    seconds = call_s(timing.cost_parts(point), peaks)
    warm, timed = calls_of(seconds, policy)
    return (warm + timed + 1 + (point.mode == "forward")) * seconds


def harness_overhead_s(repeats: int = 1) -> float:
    """The harness's own seconds per point beyond its calls, measured now in this process: `timing.measure_point` on
    trivial CPU points (build, output check, one warm-up and one timed call, memory pass, clean-up), the fastest of
    them (the least a busy machine's other work adds), plus ROW_S."""
    policy = measure.TimingPolicy(warmup_calls=1, warmup_s=0.0, min_reps=1, budget_s=0.0)
    points = [mixer_point(name, 64, 32, 1, "float32", mode, "cpu") for name in OVERHEAD_MIXERS for mode in MODES]
    took, threads = [], torch.get_num_threads()
    torch.set_num_threads(1)  # trivial points need no threads, and a busy machine's threads wait on each other
    try:
        timing.measure_point(points[0], policy, "dry-run")  # the first pays for imports and the dispatch mode
        for point in points * repeats:
            start = time.perf_counter()
            timing.measure_point(point, policy, "dry-run")
            took.append(time.perf_counter() - start)
    finally:
        torch.set_num_threads(threads)
    return min(took) + ROW_S


def _table(counts: dict, rows: list[str], columns: list[str], corner: str) -> list[str]:
    """A compact table: 'runnable' where every item runs, 'runnable/planned' otherwise, '-' where none is planned."""
    def cell(key):
        runnable, planned = counts.get(key, (0, 0))
        return "-" if not planned else str(planned) if runnable == planned else f"{runnable}/{planned}"
    width = max(len(corner), *(len(row) for row in rows))
    cells = [[cell((row, column)) for column in columns] for row in rows]
    widths = [max(len(column), *(len(line[i]) for line in cells)) for i, column in enumerate(columns)]
    lines = ["  " + corner.ljust(width) + "  " + "  ".join(c.rjust(w) for c, w in zip(columns, widths))]
    lines += ["  " + row.ljust(width) + "  " + "  ".join(c.rjust(w) for c, w in zip(line, widths))
              for row, line in zip(rows, cells)]
    return lines


def _minutes(seconds: float) -> str:
    return f"{seconds / 60:.1f}"


@dataclass
class Estimate:
    """What a dry run found: counts per (row, column), refusals by reason, and the estimate's parts in seconds."""

    target: Target
    note: str
    counts: dict = field(default_factory=dict)  # (mixer or task, scope or layout) -> [runnable, planned]
    reasons: Counter = field(default_factory=Counter)
    parts: dict = field(default_factory=dict)  # name -> seconds, in the order printed
    overhead_s: float = 0.0
    over_timeout: int = 0

    @property
    def total_s(self) -> float:
        return sum(self.parts.values())

    def count(self, key, runnable: bool) -> None:
        runnable_count, planned = self.counts.get(key, (0, 0))
        self.counts[key] = (runnable_count + runnable, planned + 1)

    def reason_lines(self, unit: str) -> list[str]:
        total = sum(self.reasons.values())
        head = f"unsupported: {total} {unit}{'s' if total != 1 else ''}" + (" (one line per reason):" if total else "")
        return [head] + [f"  {count:4d}  {reason}" for reason, count in self.reasons.most_common()]

    def total_line(self, what: str) -> str:
        shown = " + ".join(f"{name} {_minutes(seconds)}" for name, seconds in self.parts.items())
        return f"estimate for {self.target.name}: {_minutes(self.total_s)} min ({what}: {shown})"


def estimate_sweep(points: list[Point], axes, target: Target, overhead_s: float, note: str = "") -> Estimate:
    """The estimate of a sweep's points (planned for `target.device`) under its axes' policy and rounds."""
    policy = measure.TimingPolicy(min_reps=axes.min_reps, budget_s=axes.budget_s)
    found = Estimate(target, note, overhead_s=overhead_s)
    kernels = refused_count = 0
    for point in points:
        refused = timing.refusal(point)
        found.count((point.mixer, point.scope), refused is None)
        if refused:
            found.reasons[refused] += 1
            refused_count += 1
            continue
        seconds = point_s(point, policy, target.peaks)
        if seconds > axes.timeout_s:  # killed at its timeout in its first round, which makes its row final
            found.over_timeout += 1
            kernels += axes.timeout_s + WORKER_START_S  # and a fresh worker takes over
        else:
            kernels += seconds * axes.rounds
    dtypes = {point.dtype for point in points}
    runnable = len(points) - refused_count
    found.parts = {"calls": kernels, "harness": runnable * axes.rounds * overhead_s + refused_count * ROW_S,
                   "setup": axes.rounds * WORKER_START_S + (1 + len(dtypes)) * CALIBRATION_S}
    return found


def sweep_lines(found: Estimate, points: list[Point], axes, preset: str | None) -> list[str]:
    """What `mixbench sweep --dry-run` prints."""
    rounds = f"{axes.rounds} round{'s' if axes.rounds > 1 else ''}"
    lines = [f"mixbench: dry run, nothing measured or written: {len(points)} points ({preset or 'custom'} preset, "
             f"{rounds}) for {found.target.name} ({found.target.description})"]
    lines += [f"mixbench: {found.note}"] if found.note else []
    mixer_rows = list(dict.fromkeys(point.mixer for point in points))
    scopes = list(dict.fromkeys(point.scope for point in points))
    lines += ["points per mixer and scope (runnable/planned where some are not):"]
    lines += _table(found.counts, mixer_rows, scopes, "mixer")
    lines += found.reason_lines("point")
    target = found.target
    runnable = sum(count for count, _ in found.counts.values())
    lines += [f"ESTIMATE for {target.name}, not a measurement (peaks {target.peaks_text()} from "
              f"{target.source}, at {EFFICIENCY:g} of peak):",
              f"  calls    {_minutes(found.parts['calls']):>6} min  each point's analytic floor x the calls of the "
              f"timing policy (warm-up, reps until {axes.budget_s:g} s and at least {axes.min_reps}, memory pass), "
              f"x {rounds}",
              f"  harness  {_minutes(found.parts['harness']):>6} min  {runnable} runnable points x {rounds} x "
              f"{found.overhead_s:.2f} s (build, check, memory pass, clean-up, row: measured now on this machine)",
              f"  setup    {_minutes(found.parts['setup']):>6} min  worker start {WORKER_START_S:g} s per round, "
              f"device calibration"]
    if found.over_timeout:
        lines += [f"  {found.over_timeout} points would pass their {axes.timeout_s:g} s timeout (counted at it)"]
    return lines + [found.total_line("sweep")]


# --- quality: training runs -----------------------------------------------------------------------------

class _OpCounter(TorchDispatchMode):
    """Counts the aten operators run under it (each is a kernel launch, or more, on a GPU)."""

    def __init__(self):
        super().__init__()
        self.ops = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.ops += 1
        return func(*args, **(kwargs or {}))


_count = getattr(_OpCounter.__torch_dispatch__, "__wrapped__", None)
if _count is not None:  # as measure's memory pass does: no 2 s import of torch._dynamo for a dispatch mode
    _count.__dynamo_disable = measure._dynamo_guard_once_loaded(_count)


def step_ops(layout: str, run: TrainingRun) -> tuple[int, float]:
    """(aten operators in one train step, seconds to build) of `layout` at `run`'s length and a narrow width on this
    CPU, with the GPU's multi-tensor AdamW and clipping (foreach): a step's host work is about its operator count."""
    seq_len, dim = run.seq_len, min(run.dim, 16)
    options = {"head_dim": train.head_dim(dim)}
    if not all(mixers.get(name).supports(seq_len, dim, torch.float32, "cpu", **models.options_for(name, options))
               for name in models.parse_layout(layout).names):
        dim, options = run.dim, {"head_dim": train.head_dim(run.dim)}
    start = time.perf_counter()
    model = models.Encoder(layout, seq_len, dim, run.layers, 4 * dim, 16, norm=run.norm, head="tokens",
                           num_classes=16, shift=run.shift, mixer_options=options)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3, foreach=True)
    built = time.perf_counter() - start
    inputs = torch.randint(16, (1, seq_len))
    counter, threads = _OpCounter(), torch.get_num_threads()
    torch.set_num_threads(1)  # counting needs no speed, and a busy machine's threads wait on each other
    try:
        with counter:
            loss = F.cross_entropy(model(inputs).flatten(0, 1), inputs.flatten())
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), train.CLIP_NORM, foreach=True)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
    finally:
        torch.set_num_threads(threads)
    return counter.ops, built


def data_s(task, batch: int, repeats: int = 3) -> float:
    """Seconds to generate one training batch of `task` on this CPU, measured now at its real size (the fastest of
    a few: the least a busy machine's other work adds)."""
    task.batch(batch, 0)
    took = []
    for seed in range(1, repeats + 1):
        start = time.perf_counter()
        task.batch(batch, seed)
        took.append(time.perf_counter() - start)
    return min(took)


def step_parts(run: TrainingRun, task) -> list:
    """The cost parts of one training step of `run` (its encoder, head and loss, and the AdamW step)."""
    return models.parts("encoder", run.layout, run.seq_len, run.dim, run.batch, TORCH_DTYPES[run.dtype], "train",
                        run.device, layers=run.layers, ffn=run.ffn, vocab=len(task.vocab), norm=run.norm,
                        head="tokens" if task.per_position else "sequence", num_classes=task.num_classes,
                        shift=run.shift, mixer_options={"head_dim": train.head_dim(run.dim)})


def estimate_quality(runs: list[TrainingRun], axes, target: Target, report: bool, note: str = "") -> Estimate:
    """The estimate of a quality run's training runs (planned for `target.device`)."""
    found = Estimate(target, note)
    tasks_built, data, ops = {}, {}, {}
    steps_s = eval_s = 0.0
    trained = 0
    for run in runs:
        refused = train.refusal(run)
        found.count((run.task, run.layout), refused is None)
        if refused:
            found.reasons[refused] += 1
            continue
        key = (run.task, run.task_options, run.seq_len)
        if key not in tasks_built:
            tasks_built[key] = train.build_task(run)
        task = tasks_built[key]
        if key + (run.batch,) not in data:
            data[key + (run.batch,)] = data_s(task, run.batch)
        if (run.layout, run.seq_len) not in ops:
            ops[run.layout, run.seq_len] = step_ops(run.layout, run)
        compute = max(call_s(step_parts(run, task), target.peaks), ops[run.layout, run.seq_len][0] * OP_S)
        batch_s = data[key + (run.batch,)]
        run_steps = run.steps * (compute + batch_s)
        run_eval = (train.VAL_BATCHES + train.TEST_BATCHES) * (compute / 3 + batch_s * train.EVAL_BATCH / run.batch)
        if run_steps + run_eval > axes.timeout_s:
            found.over_timeout += 1
            run_steps, run_eval = axes.timeout_s, 0.0
        steps_s, eval_s, trained = steps_s + run_steps, eval_s + run_eval, trained + 1
    build_s = statistics.median(built for _, built in ops.values()) if ops else 0.0
    harness_s = trained * (build_s + ROW_S)
    found.parts = {"steps": steps_s, "evaluation": eval_s, "harness": harness_s, "setup": WORKER_START_S}
    if report:
        found.parts["report"] = REPORT_S
    return found


def quality_lines(found: Estimate, runs: list[TrainingRun], axes, preset: str | None) -> list[str]:
    """What `mixbench quality --dry-run` prints."""
    lines = [f"mixbench: dry run, nothing trained or written: {len(runs)} runs ({preset or 'custom'} preset) for "
             f"{found.target.name} ({found.target.description})"]
    lines += [f"mixbench: {found.note}"] if found.note else []
    layouts = list(dict.fromkeys(run.layout for run in runs))
    task_names = list(dict.fromkeys(run.task for run in runs))
    counts = {(layout, task): value for (task, layout), value in found.counts.items()}
    lines += ["runs per layout and task (runnable/planned where some are not):"]
    lines += _table(counts, layouts, task_names, "layout")
    lines += found.reason_lines("run")
    target = found.target
    steps = sorted({run.steps for run in runs})
    lines += [f"ESTIMATE for {target.name}, not a measurement (peaks {target.peaks_text()} from "
              f"{target.source}, at {EFFICIENCY:g} of peak):",
              f"  steps       {_minutes(found.parts['steps']):>6} min  {'/'.join(map(str, steps))} steps per run x "
              f"(the larger of the step's floor and its operators x {OP_S * 1e6:g} us, counted now on a narrow model "
              f"of the layout, + generating its batch, measured now)",
              f"  evaluation  {_minutes(found.parts['evaluation']):>6} min  "
              f"{train.VAL_BATCHES + train.TEST_BATCHES} batches of {train.EVAL_BATCH} per run",
              f"  harness     {_minutes(found.parts['harness']):>6} min  building each model, its row",
              f"  setup       {_minutes(found.parts['setup']):>6} min  a worker start"]
    if "report" in found.parts:
        lines += [f"  report      {_minutes(found.parts['report']):>6} min  the plots and report.html "
                  f"(--no-report leaves them out)"]
    if found.over_timeout:
        lines += [f"  {found.over_timeout} runs would pass their {axes.timeout_s:g} s timeout (counted at it)"]
    return lines + [found.total_line("quality")]


def gpu_plan(preset: str | None, dtypes=None, quality: bool = False) -> bool:
    """Whether a plan is for a GPU: it names a dtype only a GPU runs (bfloat16, float16), given or its preset's."""
    if quality:
        found = QUALITY_PRESETS.get(preset or "")
        names = (found[1].dtype,) if found else ()
    elif dtypes is not None:
        names = parse_names(dtypes, "dtypes", DTYPE_NAMES, DTYPE_ALIASES)
    else:
        found = PRESETS.get(preset or "")
        names = found[1].dtypes if found else ()
    return any(TORCH_DTYPES[name] not in mixers.CPU_DTYPES for name in names)
