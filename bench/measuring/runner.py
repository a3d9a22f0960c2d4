"""The parent side of a sweep: hand work to worker processes, survive whatever happens there.

- Work comes in *units*: a series of timing points (one mixer over its lengths, shortest first) in one
  round, or one training run. Each worker takes a unit and runs its items one at a time; the parent is
  the only writer of the run folder.
- A point that runs past its timeout is killed and recorded as `timeout`; a worker that dies
  (segfault, illegal memory access, abort) is recorded as `error` for the point it was on; in both
  cases a fresh worker carries on with the next point.
- After an `oom` (or a `timeout`) the longer lengths of that series are recorded as the same status
  without running: they would only fail more slowly. Other series are not touched.
- Rounds: each point is measured in `rounds` different worker processes. The plan runs once, then
  again (a worker serves one round only), so that drifts and neighbours spread over every point. Each
  round is logged to rounds.jsonl; the point's row is written to results.csv when its last round is in.
- Points already in `results.csv` (measured with the same source) are skipped, and rounds already in
  rounds.jsonl are not measured again, so running the same sweep into the same folder resumes it.
- SIGINT and SIGTERM (see `interrupts`) stop the sweep at once: workers are killed, the point in flight
  is not written, env.json records the interruption. A second signal ends the process immediately.
- Workers are local processes (`workers.LocalBackend`, one per slot) or Ray actors
  (`bench.measuring.ray_backend`); the scheduler sees only their common interface (`Worker`) and the
  backend's `wait`. A worker whose
  machine disappears (a Ray node lost) hands its item back: it is measured again by another worker,
  and its slot is retired for the rest of the run.
"""

from __future__ import annotations

import os
import signal
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from bench.measuring import fingerprint, measure, timing, train
from bench.measuring.points import Point, TrainingRun
from bench.measuring.rounds import RoundLog
from bench.measuring.rows import Reply, now, training_hash
from bench.measuring.scheduler import Scheduler, Unit
from bench.measuring.store import EnvRecord, RunFolder
from bench.measuring.workers import DIED, LOST, STARTUP_TIMEOUT_S, LocalBackend, Slot, StartError, local_slots

Progress = Callable[[int, int, object, float | None], None]  # done, total, current item, eta_s


# --- interruption -------------------------------------------------------------------------------------

class Interrupted(Exception):
    """SIGINT or SIGTERM arrived; the sweep stops and says how to resume."""

    def __init__(self, signum: int):
        self.signum = signum
        super().__init__(signal.Signals(signum).name)

    @property
    def exit_status(self) -> int:
        return 128 + self.signum


@contextmanager
def interrupts():
    """Turn the first SIGINT or SIGTERM into `Interrupted`; a second one ends the process at once."""
    received: list[int] = []

    def handle(signum, frame):
        if received:
            os._exit(128 + signum)
        received.append(signum)
        raise Interrupted(signum)

    previous = {signum: signal.signal(signum, handle) for signum in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


@dataclass
class SweepReport:
    """What a sweep did: rows it wrote this time, points it skipped as already measured."""

    run_dir: Path
    written: list[dict] = field(default_factory=list)
    skipped: int = 0
    total: int = 0
    took_over: str | None = None  # the stale lock taken over, if any

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for row in self.written:
            out[row["status"]] = out.get(row["status"], 0) + 1
        return out


def workers_of(backend, slots: list[Slot]) -> dict:
    """How the work is spread, env.json's "pool": the backend, how many workers, threads each."""
    return {**backend.describe(), "workers": len(slots), "threads_per_worker": slots[0].threads}


class _Job:
    """What both kinds of work share: starting a worker (recorded in env.json) and the written rows."""

    def __init__(self, folder: RunFolder, record: EnvRecord, backend, device: str, policy: measure.TimingPolicy,
                 report: SweepReport):
        self.folder, self.env, self.backend, self.device, self.policy = folder, record, backend, device, policy
        self.report = report

    def start(self, slot: Slot, round_: int):
        worker = self.backend.start(slot, self.device, self.env.device_name, self.policy, round_)
        self.env.worker_started(slot.index, worker.settings)
        return worker

    def skip(self, unit: Unit, item) -> bool:
        return False


class TimingJob(_Job):
    """Timing points, each measured in several rounds (`RoundLog`); a row is written when its last round is in."""

    def __init__(self, *args, log: RoundLog):
        super().__init__(*args)
        self.log = log

    def message(self, point: Point) -> tuple:
        return ("point", point.as_dict())

    def failed(self, point: Point, status: str, reason: str) -> dict:
        return {**timing.base_row(point, self.env.device_name), "status": status, "error": reason}

    def record(self, unit: Unit, point: Point, reply: Reply, slot: Slot) -> None:
        final = self.log.add(point, unit.round, reply, slot)
        if final is not None:
            self.folder.append(final)
            self.report.written.append(final)

    def skip(self, unit: Unit, point: Point) -> bool:
        return point.key in self.log.final


class TrainingJob(_Job):
    """Training runs, one row each in quality.csv."""

    def message(self, run: TrainingRun) -> tuple:
        return ("train", run.as_dict())

    def failed(self, run: TrainingRun, status: str, reason: str) -> dict:
        return {**train.base_row(run, self.env.device_name), "status": status, "error": reason}

    def record(self, unit: Unit, run: TrainingRun, reply: Reply, slot: Slot) -> None:
        row = {**reply.row, "device_index": slot.index, "git_commit": self.env.section.get("git_commit")}
        self.folder.quality.append(row)
        self.report.written.append(row)


# --- a sweep ------------------------------------------------------------------------------------------

def run(points: list[Point], axes, device: str, out: Path, *, preset: str | None = None, flush_l2: bool = False,
        progress: Progress | None = None, slots: list[Slot] | None = None, backend=None) -> SweepReport:
    """Measure `points` (of `axes`, a `plan.Axes`) into the run folder `out` (resuming it) with `backend`'s workers
    (by default local processes), and return what was done."""
    folder = RunFolder(out)
    folder.open()
    try:
        return _sweep(folder, points, axes, device, preset, flush_l2, progress, slots or local_slots(device),
                      backend or LocalBackend())
    finally:
        folder.close()


def _sweep(folder: RunFolder, points, axes, device, preset, flush_l2, progress, slots, backend) -> SweepReport:
    report = SweepReport(folder.path, total=len(points), took_over=folder.took_over)
    measured_on = backend.machine(device)
    record = EnvRecord.open(folder, fingerprint.collect(device, measured_on), "sweep", now())
    log = RoundLog(folder, points, axes.rounds, record.peaks)
    for row in log.recover_unwritten_rows(points):  # measured, but the row's write failed
        folder.append(row)
        report.written.append(row)
    todo = [point for point in points if log.missing(point)]
    report.skipped = len(points) - len(todo) - len(report.written)
    if report.skipped or folder.rows():
        record.resumed(now())
    policy = measure.TimingPolicy(min_reps=axes.min_reps, budget_s=axes.budget_s, flush_l2=flush_l2)
    record.started(preset=preset, memory_method=measure.memory_method(device),
                   timing=measure.describe(policy, device, axes.rounds, axes.timeout_s),
                   train_step=timing.describe(), gpu_before=record.data.get("gpu"), pool=workers_of(backend, slots))
    job = TimingJob(folder, record, backend, device, policy, report, log=log)
    units = _timing_units(todo, log)
    scheduler = Scheduler(slots, job.start, job, axes.timeout_s, progress=progress,
                          total=sum(len(log.missing(point)) for point in todo), wait=backend.wait)
    here = device == "cuda" and measured_on is None  # a remote node's GPU is not this machine's to ask
    with _session(record, scheduler, folder.results, progress,
                  lambda: dict(gpu_after=fingerprint.gpu_state()[0] if here else None)):
        if todo:
            # every slot's worker starts now, so the others' start-up overlaps the first one's calibration
            scheduler.start_together({position: units[0].round for position in range(min(len(slots), len(units)))})
            _calibrate(scheduler, record, todo, units[0].round)
            log.peaks = record.peaks
        record.write()
        scheduler.run(units)
    return report


@contextmanager
def _session(record: EnvRecord, scheduler: Scheduler, table, progress, finish_facts: Callable[[], dict]):
    """Run the body; on a signal record the interruption; always stop the workers and finish env.json."""
    try:
        yield
    except (Interrupted, KeyboardInterrupt) as exc:
        record.interrupted(str(exc) if isinstance(exc, Interrupted) else "SIGINT", now(), len(table.rows()))
        raise
    finally:
        scheduler.close()
        record.lost(scheduler.lost)
        record.finished(now(), **finish_facts())
        if progress:
            progress(scheduler.done, scheduler.total, None, 0.0)


def _timing_units(todo: list[Point], log: RoundLog) -> list[Unit]:
    """One unit per (round, series), rounds outermost: the plan once, then again."""
    units: dict[tuple, Unit] = {}
    for point in todo:
        for round_ in log.missing(point):
            units.setdefault((round_, point.series), Unit(round_, [])).items.append(point)
    return [units[key] for key in sorted(units, key=lambda key: key[0])]


def _calibrate(scheduler: Scheduler, record: EnvRecord, todo: list[Point], round_: int) -> None:
    """Measure the device's ceilings once per run folder, in the first worker."""
    needed = set()
    for point in todo:
        needed.add(point.dtype)
        try:
            needed.update(timing.compute_dtype_name(point).split("+"))
        except Exception:  # noqa: BLE001 - an unknown or refused point needs no ceiling
            pass
    needed = sorted((needed | {"float32"}) - {""})
    if set(needed) <= set(record.data.get("peak_tflops") or {}):
        return
    worker = scheduler.worker_for(0, round_)
    worker.send(("calibrate", needed))
    reply = worker.receive(STARTUP_TIMEOUT_S)
    if reply is None or reply is DIED or reply is LOST:
        raise StartError(f"device calibration failed: {worker.death_reason() or 'no answer'}")
    record.calibrated(reply[1])


# --- training runs --------------------------------------------------------------------------------------

def run_training(runs: list[TrainingRun], device: str, out: Path, *, timeout_s: float, preset: str | None = None,
                 progress: Progress | None = None, slots: list[Slot] | None = None, settings: dict | None = None,
                 backend=None) -> SweepReport:
    """Train `runs` into `out`/quality.csv, resuming it; returns what was done."""
    folder = RunFolder(out)
    folder.open()
    try:
        return _training(folder, runs, device, timeout_s, preset, progress, slots or local_slots(device),
                         settings or {}, backend or LocalBackend())
    finally:
        folder.close()


def _training(folder: RunFolder, runs, device, timeout_s, preset, progress, slots, settings, backend) -> SweepReport:
    report = SweepReport(folder.path, total=len(runs), took_over=folder.took_over)
    record = EnvRecord.open(folder, fingerprint.collect(device, backend.machine(device)), "quality", now())
    hashes = {run.key: training_hash(run) for run in runs}
    done = set()
    for row in folder.quality.rows():
        try:
            key = TrainingRun.from_row(row).key
        except (ValueError, TypeError):
            continue
        if hashes.get(key) and hashes[key] == row["source_hash"]:
            done.add(key)
    todo = [run for run in runs if run.key not in done]
    report.skipped = len(runs) - len(todo)
    record.started(**settings, preset=preset, timeout_s=timeout_s, **workers_of(backend, slots),
                   training=train.describe(), started_at=record.section.get("started_at") or now())
    job = TrainingJob(folder, record, backend, device, measure.TimingPolicy(), report)
    scheduler = Scheduler(slots, job.start, job, timeout_s, progress=progress, total=len(todo), wait=backend.wait)
    with _session(record, scheduler, folder.quality, progress, dict):
        scheduler.run([Unit(1, [run], cut=False) for run in todo])
    return report
