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
- Workers are local processes (`LocalBackend`, one per slot) or Ray actors (`bench.measuring.ray_backend`);
  the scheduler sees only their common interface (`Worker`) and the backend's `wait`. A worker whose
  machine disappears (a Ray node lost) hands its item back: it is measured again by another worker,
  and its slot is retired for the rest of the run.
"""

from __future__ import annotations

import datetime as dt
import multiprocessing
import multiprocessing.connection
import os
import signal
import threading
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from bench.measuring import env as environment
from bench.measuring import forkserver, measure
from bench.measuring.plan import Axes, Point
from bench.measuring.store import RunFolder, RunFolderError
from bench.measuring.worker import base_row, compute_dtype_name, metrics, serve

STARTUP_TIMEOUT_S = 300.0  # importing torch and creating a CUDA context on a busy machine
DIED = ("died",)
LOST = ("lost",)  # the worker went away with its machine: its item is measured again elsewhere
CUT_OFF = ("oom", "timeout")


def now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


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


# --- workers ------------------------------------------------------------------------------------------

class StartError(RuntimeError):
    """A worker did not start (or started on another kind of device than the run folder's)."""


@dataclass(frozen=True)
class Slot:
    """Where one worker runs: its device index (or worker number on a CPU) and the environment it starts with."""

    index: int
    env: dict = field(default_factory=dict)
    threads: int | None = None


def local_slots(device: str, workers: int = 1, devices: tuple[int, ...] = (), threads: int | None = None
                ) -> list[Slot]:
    """One slot per GPU in `devices` (each worker sees only its own through CUDA_VISIBLE_DEVICES), or
    `workers` slots on the device (sharing it)."""
    if devices:
        return [Slot(index, {"CUDA_VISIBLE_DEVICES": str(index)} if device == "cuda" else {}, threads)
                for index in devices]
    return [Slot(index, {}, threads) for index in range(workers)]


_SPAWNING = threading.Lock()


def start_context(device: str, slot: Slot) -> multiprocessing.context.BaseContext:
    """How a worker process starts. A CPU worker with nothing of its own in its environment is forked from a
    forkserver that has imported torch once: still a process of its own, with its own allocator and threads
    (`worker.configure_process` sets them), started once per round and after every crash. A CUDA worker, or one
    whose environment differs (its CUDA_VISIBLE_DEVICES), is spawned: a fresh interpreter that starts with the
    environment in place and a CUDA state nobody else touched."""
    if device == "cpu" and not slot.env and forkserver.available():
        return forkserver.context()
    return multiprocessing.get_context("spawn")


class Worker:
    """One worker process on a slot (see `start_context`), serving one round, and its end of the pipe."""

    def __init__(self, slot: Slot, device: str, device_name: str, policy: measure.TimingPolicy, round_: int = 1):
        self.slot, self.round = slot, round_
        context = start_context(device, slot)
        self.conn, child_conn = context.Pipe()
        self.process = context.Process(target=serve, args=(child_conn, device, device_name, policy, slot.threads),
                                       daemon=True)
        with _SPAWNING:  # workers start side by side (Scheduler.start_together); the environment is shared
            saved = {key: os.environ.get(key) for key in slot.env}
            os.environ.update(slot.env)  # a spawned child starts with the parent's environment as it is now
            try:
                self.process.start()
            finally:
                for key, value in saved.items():
                    if value is None:
                        os.environ.pop(key, None)
                    else:
                        os.environ[key] = value
        child_conn.close()
        reply = self.receive(STARTUP_TIMEOUT_S)
        if reply is None or reply is DIED or reply[0] != "ready":
            self.kill()
            raise StartError(f"the measuring worker did not start: {self.death_reason() or 'no answer'}")
        self.settings = reply[1]

    def receive(self, timeout_s: float):
        """The worker's next message; DIED if its pipe closed, None if it did not answer in time."""
        try:
            if self.conn.poll(timeout_s):
                return self.conn.recv()
        except (EOFError, OSError):
            return DIED
        return None

    def send(self, message) -> bool:
        try:
            self.conn.send(message)
            return True
        except (BrokenPipeError, OSError):
            return False

    def alive(self) -> bool:
        return self.process.is_alive()

    def death_reason(self) -> str | None:
        self.process.join(timeout=5)
        code = self.process.exitcode
        if code is None:
            return None
        if code < 0:
            try:
                return f"worker process killed by signal {signal.Signals(-code).name}"
            except ValueError:
                return f"worker process killed by signal {-code}"
        return f"worker process exited with status {code}"

    def kill(self) -> None:
        if self.process.is_alive():
            self.process.kill()
        self.process.join(timeout=10)

    def stop(self) -> None:
        self.send(("stop",))
        self.process.join(timeout=10)
        self.kill()


def wait_local(workers: list[Worker], timeout_s: float) -> list[Worker]:
    """The workers among `workers` with a message (or a closed pipe) to read, waiting at most `timeout_s`."""
    by_conn = {worker.conn: worker for worker in workers}
    return [by_conn[conn] for conn in multiprocessing.connection.wait(list(by_conn), timeout=timeout_s)]


class LocalBackend:
    """Worker processes on this machine, one per slot (see `start_context`)."""

    name = "local"

    def start(self, slot: Slot, device: str, device_name: str, policy: measure.TimingPolicy, round_: int) -> Worker:
        return Worker(slot, device, device_name, policy, round_)

    def wait(self, workers: list[Worker], timeout_s: float) -> list[Worker]:
        return wait_local(workers, timeout_s)

    def machine(self, device: str) -> dict | None:
        """The facts of the machine that measures, when it is not this one (None: it is this one)."""
        return None

    def describe(self) -> dict:
        return {"backend": self.name}

    def close(self) -> None:
        pass


# --- scheduling ---------------------------------------------------------------------------------------

@dataclass
class Unit:
    """Items one worker runs in order in one round; after an oom or timeout the rest are cut off when `cut`."""

    round: int
    items: list
    cut: bool = True
    position: int = 0


class Scheduler:
    """Runs units on a pool of worker slots; every result, failure and cut-off is handed to `record`.

    `message(item)` is what a worker is sent for an item; `failed(item, status, reason)` builds the row
    of an item that produced none; `record(unit, item, row, slot)` stores a row; `skip(unit, item)` says
    an item needs no run (e.g. an earlier round already failed it). `start(slot, round)` gives a worker
    and `wait(workers, timeout_s)` those of them with a reply (see `LocalBackend`).
    """

    def __init__(self, slots: list[Slot], start: Callable[[Slot, int], Worker], timeout_s: float,
                 message: Callable, failed: Callable, record: Callable, skip: Callable | None = None,
                 progress: Callable | None = None, total: int = 0, done: int = 0, wait: Callable | None = None):
        self.slots, self.start, self.timeout_s = slots, start, timeout_s
        self.wait = wait or wait_local
        self.message, self.failed, self.record = message, failed, record
        self.skip = skip or (lambda unit, item: False)
        self.progress = progress or (lambda done, total, item, eta: None)
        self.total, self.done = total, done
        self.workers: dict[int, Worker] = {}  # slot position -> its current worker
        self.started = time.monotonic()
        self.counted = 0  # items finished by this scheduler (for the time-left estimate)
        self.pending: deque[Unit] = deque()
        self.retired: set[int] = set()  # slots whose machine went away
        self.lost: list[dict] = []  # what each retired slot was doing, and why it went

    def worker_for(self, position: int, round_: int) -> Worker:
        """The slot's worker for `round_`: a fresh process when the round changes or the last one died."""
        worker = self.workers.get(position)
        if worker is not None and (worker.round != round_ or not worker.alive()):
            worker.stop()
            worker = None
        if worker is None:
            worker = self.workers[position] = self.start(self.slots[position], round_)
        return worker

    def start_together(self, rounds: dict[int, int]) -> None:
        """Start the fresh workers these slots need for these rounds at once: each start takes seconds."""
        needed = [position for position, round_ in rounds.items()
                  if (worker := self.workers.get(position)) is None or worker.round != round_ or not worker.alive()]
        if len(needed) < 2:
            return  # worker_for starts it
        for position in needed:
            old = self.workers.pop(position, None)
            if old is not None:
                old.stop()

        def start(position: int) -> None:
            self.workers[position] = self.start(self.slots[position], rounds[position])

        with ThreadPoolExecutor(len(needed)) as pool:
            for future in [pool.submit(start, position) for position in needed]:
                future.result()  # a worker that did not start stops the run, as it does one at a time

    def _next(self, unit: Unit):
        while unit.position < len(unit.items):
            item = unit.items[unit.position]
            if not self.skip(unit, item):
                return item
            unit.position += 1
        return None

    def _finish(self, unit: Unit, item, row: dict, slot: Slot) -> None:
        self.record(unit, item, row, slot)
        unit.position += 1
        self.done += 1
        self.counted += 1
        if row["status"] in CUT_OFF and unit.cut:
            first = getattr(item, "seq_len", None)
            word = "ran out of memory" if row["status"] == "oom" else "timed out"
            for rest in unit.items[unit.position:]:
                if not self.skip(unit, rest):
                    self.record(unit, rest, self.failed(rest, row["status"],
                                                        f"not run: seq_len={first} of this series {word}"), slot)
                    self.done += 1
            unit.position = len(unit.items)

    def _eta(self) -> float | None:
        if not self.counted:
            return None
        return (time.monotonic() - self.started) / self.counted * max(self.total - self.done, 0)

    def run(self, units: list[Unit]) -> None:
        self.pending = deque(units)
        running: dict[int, tuple[Unit, object, float]] = {}  # slot position -> (unit, item, deadline)
        try:
            while self.pending or running:
                live = [position for position in range(len(self.slots)) if position not in self.retired]
                if not live:
                    left = sum(len(unit.items) - unit.position for unit in self.pending)
                    raise StartError(f"every worker was lost with its machine ({self.lost[-1]['reason']}); "
                                     f"{left} item(s) not run")
                taken: dict[int, tuple[Unit, object]] = {}
                for position in live:
                    while position not in running and position not in taken and self.pending:
                        unit = self.pending.popleft()  # the unit is this slot's until it is done
                        item = self._next(unit)
                        if item is not None:
                            taken[position] = (unit, item)
                self.start_together({position: unit.round for position, (unit, _) in taken.items()})
                for position, (unit, item) in taken.items():
                    self._send(position, unit, item, running)
                if not running:
                    continue
                soonest = min(deadline for _, _, deadline in running.values())
                busy = {id(self.workers[position]): position for position in running}
                ready = self.wait([self.workers[position] for position in running],
                                  max(0.0, soonest - time.monotonic()))
                for worker in ready:
                    self._reply(busy[id(worker)], running)
                for position, (unit, item, deadline) in list(running.items()):
                    if position in running and time.monotonic() >= deadline:
                        if self.wait([self.workers[position]], 0):  # answered while another worker was starting
                            self._reply(position, running)
                        else:
                            self._timeout(position, running)
        finally:
            self.close()

    def _send(self, position: int, unit: Unit, item, running: dict) -> None:
        worker = self.worker_for(position, unit.round)
        if not worker.send(self.message(item)):  # its pipe broke while idle: a fresh worker takes the item
            worker.kill()
            worker = self.worker_for(position, unit.round)
            worker.send(self.message(item))
        running[position] = (unit, item, time.monotonic() + self.timeout_s)
        self.progress(self.done, self.total, item, self._eta())

    def _reply(self, position: int, running: dict) -> None:
        unit, item, deadline = running.pop(position)
        worker = self.workers[position]
        reply = worker.receive(0)
        if reply is None:  # woken without a whole message: still running
            running[position] = (unit, item, deadline)
            return
        if reply is LOST:  # its machine went away: the item goes back to the queue, the slot is retired
            self.lost.append({"worker": worker.slot.index, "item": _label(item), "at": now(),
                              "reason": worker.death_reason() or "its machine went away"})
            worker.kill()
            del self.workers[position]
            self.retired.add(position)
            self.pending.appendleft(unit)  # unit.position still names the item: it runs again elsewhere
            return
        if reply is DIED:
            reason = worker.death_reason() or "worker process closed its pipe"
            row = self.failed(item, "error", f"{reason} while measuring this point")
            worker.kill()
            self._finish(unit, item, row, worker.slot)
            self._continue(position, unit, running)
            return
        _, row, fatal = reply
        if fatal:  # its CUDA context is poisoned: let it exit, carry on with a fresh one
            worker.kill()
        self._finish(unit, item, row, worker.slot)
        self._continue(position, unit, running)

    def _timeout(self, position: int, running: dict) -> None:
        unit, item, _ = running.pop(position)
        worker = self.workers[position]
        worker.kill()
        row = self.failed(item, "timeout", f"no result within the {self.timeout_s:g} s timeout; worker killed")
        self._finish(unit, item, row, worker.slot)
        self._continue(position, unit, running)

    def _continue(self, position: int, unit: Unit, running: dict) -> None:
        """The same worker goes on with the unit's next item; a finished unit frees the slot."""
        item = self._next(unit)
        if item is not None:
            self._send(position, unit, item, running)

    def close(self) -> None:
        for worker in self.workers.values():
            worker.kill()
        self.workers.clear()


def _label(item) -> str:
    return item.label() if hasattr(item, "label") else str(item)


# --- rounds -------------------------------------------------------------------------------------------

def weighted_quantile(values_and_weights: list[tuple[float, float]], q: float) -> float:
    """The smallest value whose cumulative weight reaches q of the total."""
    ordered = sorted(values_and_weights)
    total = sum(weight for _, weight in ordered)
    running = 0.0
    for value, weight in ordered:
        running += weight
        if running >= q * total - 1e-12:
            return value
    return ordered[-1][0]


def combine_rounds(point: Point, records: list[dict], rounds: int, peaks: dict) -> dict:
    """The row of a point from its rounds' records (each {"round", "row", "samples"}), oldest first.

    time_ms, p20 and p80 pool every timed call of every ok round (each round's sketch weighted by its
    repetitions); time_ms_lo/hi are the lowest and highest round medians. A failed round makes the row
    failed with that round's status and reason.
    """
    records = sorted(records, key=lambda record: record["round"])
    ok = [record for record in records if record["row"]["status"] == "ok"]
    bad = [record for record in records if record["row"]["status"] != "ok"]
    row = dict((ok or records)[-1]["row"])
    if ok:
        medians = [record["row"]["time_ms"] for record in ok]
        if len(ok) > 1:
            pooled = [(value, record["row"]["reps"] / len(record["samples"]))
                      for record in ok for value in record["samples"]]
            row.update(time_ms=weighted_quantile(pooled, 0.5), time_ms_p20=weighted_quantile(pooled, 0.2),
                       time_ms_p80=weighted_quantile(pooled, 0.8))
            row.update(metrics(point, row["time_ms"], peaks))
        maximum = {column: max((record["row"].get(column) or 0.0 for record in ok), default=None)
                   for column in ("peak_mem_mb", "reserved_mem_mb", "resident_mem_mb", "load_avg")}
        energies = [record["row"]["energy_mj"] for record in ok if record["row"].get("energy_mj") is not None]
        row.update(time_ms_lo=min(medians), time_ms_hi=max(medians), reps=sum(r["row"]["reps"] for r in ok),
                   energy_mj=sum(energies) / len(energies) if energies else None,
                   **{k: v for k, v in maximum.items() if v is not None})
    if bad:
        first = bad[0]
        reason = first["row"].get("error", "")
        row.update(status=first["row"]["status"],
                   error=f"round {first['round']} of {rounds}: {reason}" if first["round"] > 1 else reason)
    indices = sorted({str(record.get("device_index")) for record in records if record.get("device_index") is not None})
    row.update(rounds=len(records), device_index="+".join(indices))
    return row


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


Progress = Callable[[int, int, object, float | None], None]  # done, total, current item, eta_s


def _rows_by_key(rows) -> dict:
    return {Point.from_row(row).key: row for row in rows}


class _Rounds:
    """The rounds of every point of a sweep: what is logged, what is final, what is left to measure."""

    def __init__(self, folder: RunFolder, points: list[Point], rounds: int, peaks: dict):
        self.folder, self.rounds, self.peaks = folder, rounds, peaks
        self.hashes = {point.key: base_row(point, "")["source_hash"] for point in points}
        self.final: set = set()
        for key, row in _rows_by_key(folder.rows()).items():
            if self.hashes.get(key) == row["source_hash"] and (row["status"] != "ok"
                                                               or int(float(row["rounds"] or 1)) >= rounds):
                self.final.add(key)
        self.logged: dict[tuple, list[dict]] = {}
        for record in folder.rounds():
            key = tuple(record.get("key", ()))
            if key in self.hashes and record.get("row", {}).get("source_hash") == self.hashes[key]:
                self.logged.setdefault(key, []).append(record)

    def missing(self, point: Point) -> list[int]:
        if point.key in self.final:
            return []
        have = {record["round"] for record in self.logged.get(point.key, [])}
        return [r for r in range(1, self.rounds + 1) if r not in have]

    def settle(self, points: list[Point]) -> list[dict]:
        """Final rows of the points whose rounds are all logged (or one failed) but whose row never reached
        the table (its write failed: a full disk); they are written now instead of measured again."""
        rows = []
        for point in points:
            records = list({r["round"]: r for r in self.logged.get(point.key, [])}.values())  # the latest per round
            if point.key in self.final or not records:
                continue
            if len(records) >= self.rounds or any(r["row"].get("status") != "ok" for r in records):
                self.final.add(point.key)
                rows.append(combine_rounds(point, records, self.rounds, self.peaks))
        return rows

    def add(self, point: Point, round_: int, row: dict, slot: Slot) -> dict | None:
        """Log one round of a point; returns its final row when this completes it (or fails it), else None."""
        samples = row.pop("_samples", [])
        record = {"key": list(point.key), "round": round_, "device_index": slot.index, "pid": row.pop("_pid", None),
                  "row": row, "samples": samples}
        self.folder.append_round(record)
        records = [r for r in self.logged.get(point.key, []) if r["round"] != round_] + [record]
        self.logged[point.key] = records
        failed = row["status"] != "ok"
        if failed or len(records) >= self.rounds:
            self.final.add(point.key)
            return combine_rounds(point, records, self.rounds, self.peaks)
        return None


def run(points: list[Point], axes: Axes, device: str, out: Path, *, preset: str | None = None,
        flush_l2: bool = False, progress: Progress | None = None, slots: list[Slot] | None = None,
        backend=None) -> SweepReport:
    """Measure `points` into the run folder `out` (resuming it) with `backend`'s workers (by default local
    processes), and return what was done."""
    folder = RunFolder(out)
    folder.open()
    try:
        return _run_locked(folder, points, axes, device, preset, flush_l2, progress, slots or local_slots(device),
                           backend or LocalBackend())
    finally:
        folder.close()


PROVENANCE = ("command", "git_commit", "git_dirty")


def open_env(folder: RunFolder, device: str, stage: str = "sweep", measured_on: dict | None = None) -> dict:
    """env.json for a sweep or a quality run that starts or resumes now.

    A sweep refreshes the fingerprint and keeps what an earlier start recorded (its start time, the
    calibrated ceilings, the quality run's section); a quality run keeps the sweep's record whole and
    puts its own command and commit in its "quality" section. `measured_on`: the facts of the machine that
    measures, when it is not this one (a Ray worker's node).
    """
    env = folder.read_env()
    facts = environment.fingerprint(device, measured_on)
    if env and env.get("device_name") != facts["device_name"]:
        raise RunFolderError(f"{folder.path} holds a run measured on {env.get('device_name')!r}, not on this "
                             f"{facts['device_name']!r}; choose another --out")
    if stage == "quality":
        env = {**facts, **env}
        env["quality"] = {**env.get("quality", {}), **{key: facts[key] for key in PROVENANCE}}
        return env
    kept = ("started_at", "peak_bandwidth_gbps", "peak_tflops", "calibration", "resumed_at", "interrupted", "quality",
            "workers", "lost")
    env = {**facts, **{k: v for k, v in env.items() if k in kept}}
    env.setdefault("started_at", now())
    return env


def pool(backend, slots: list[Slot]) -> dict:
    """How the work is spread, for env.json: the backend, how many workers, threads each."""
    return {**backend.describe(), "workers": len(slots), "threads_per_worker": slots[0].threads}


def _run_locked(folder: RunFolder, points, axes, device, preset, flush_l2, progress, slots, backend) -> SweepReport:
    report = SweepReport(folder.path, total=len(points), took_over=folder.took_over)
    measured_on = backend.machine(device)
    env = open_env(folder, device, measured_on=measured_on)
    book = _Rounds(folder, points, axes.rounds, env)
    for row in book.settle(points):  # measured, but the row's write failed
        folder.append(row)
        report.written.append(row)
    todo = [point for point in points if book.missing(point)]
    report.skipped = len(points) - len(todo) - len(report.written)
    if report.skipped or folder.rows():
        env["resumed_at"] = [*env.get("resumed_at", []), now()]
    env.update(preset=preset, memory_method=(measure.CUDA_MEMORY_METHOD if device == "cuda"
                                             else measure.CPU_MEMORY_METHOD),
               timing={"budget_s": axes.budget_s, "min_reps": axes.min_reps, "timeout_s": axes.timeout_s,
                       "flush_l2": flush_l2, "rounds": axes.rounds,
                       "statistic": "median, p20, p80 of the per-call times of every round; lo/hi: the lowest "
                                    "and highest round medians",
                       "timer": "CUDA events" if device == "cuda" else "time.perf_counter"},
               train_step="mixer scope: forward + backward to the input and parameters; block and encoder scope: "
                          "forward + backward + an AdamW step (encoder loss: masked-LM cross-entropy)",
               gpu_before=env.get("gpu"), finished_at=None, pool=pool(backend, slots))
    env.pop("interrupted", None)
    folder.write_env(env)

    policy = measure.TimingPolicy(min_reps=axes.min_reps, budget_s=axes.budget_s, flush_l2=flush_l2)
    device_name = env["device_name"]
    peaks = {key: env.get(key) for key in ("peak_bandwidth_gbps", "peak_tflops")}
    book.peaks = peaks

    def start(slot: Slot, round_: int) -> Worker:
        worker = backend.start(slot, device, device_name, policy, round_)
        env.setdefault("workers", {}).update({str(slot.index): worker.settings})
        return worker

    def failed(point: Point, status: str, reason: str) -> dict:
        return {**base_row(point, device_name), "status": status, "error": reason}

    def record(unit: Unit, point: Point, row: dict, slot: Slot) -> None:
        final = book.add(point, unit.round, row, slot)
        if final is not None:
            folder.append(final)
            report.written.append(final)

    units = _timing_units(todo, book)
    total_rounds = sum(len(book.missing(point)) for point in todo)
    scheduler = Scheduler(slots, start, axes.timeout_s, lambda point: ("point", point.as_dict(), peaks), failed,
                          record, skip=lambda unit, point: point.key in book.final, progress=progress,
                          total=total_rounds, wait=backend.wait)

    def finish(env: dict) -> None:
        here = device == "cuda" and measured_on is None  # a remote node's GPU is not this machine's to ask
        gpu_after, _ = environment.gpu_state() if here else (None, None)
        env.update(gpu_after=gpu_after, finished_at=None if "interrupted" in env else now())

    with _session(folder, env, scheduler, folder.results, finish, progress):
        if todo:
            # every slot's worker starts now, so the others' start-up overlaps the first one's calibration
            scheduler.start_together({position: units[0].round for position in range(min(len(slots), len(units)))})
            _calibrate(scheduler, folder, env, todo, peaks, units[0].round)
        folder.write_env(env)
        scheduler.run(units)
    return report


@contextmanager
def _session(folder: RunFolder, env: dict, scheduler: Scheduler, table, finish: Callable, progress,
             section: dict | None = None):
    """Run the body; on a signal record the interruption in env.json (in `section`, by default the top level);
    always stop the workers and save env.json."""
    try:
        yield
    except (Interrupted, KeyboardInterrupt) as exc:
        (env if section is None else section)["interrupted"] = {
            "signal": str(exc) if isinstance(exc, Interrupted) else "SIGINT", "at": now(), "rows": len(table.rows())}
        raise
    finally:
        scheduler.close()
        if scheduler.lost:
            env["lost"] = [*env.get("lost", []), *scheduler.lost]
        finish(env)
        folder.write_env(env)
        if progress:
            progress(scheduler.done, scheduler.total, None, 0.0)


def _timing_units(todo: list[Point], book: _Rounds) -> list[Unit]:
    """One unit per (round, series), rounds outermost: the plan once, then again."""
    units: dict[tuple, Unit] = {}
    for point in todo:
        for round_ in book.missing(point):
            units.setdefault((round_, point.series), Unit(round_, [])).items.append(point)
    return [units[key] for key in sorted(units, key=lambda key: key[0])]


def _calibrate(scheduler: Scheduler, folder: RunFolder, env: dict, todo: list[Point], peaks: dict, round_: int):
    """Measure the device's ceilings once per run folder, in the first worker."""
    needed = set()
    for point in todo:
        needed.add(point.dtype)
        try:
            needed.update(compute_dtype_name(point).split("+"))
        except Exception:  # noqa: BLE001 - an unknown or refused point needs no ceiling
            pass
    needed = sorted((needed | {"float32"}) - {""})
    if set(needed) <= set(env.get("peak_tflops") or {}):
        return
    worker = scheduler.worker_for(0, round_)
    worker.send(("calibrate", needed))
    reply = worker.receive(STARTUP_TIMEOUT_S)
    if reply is None or reply is DIED or reply is LOST:
        raise StartError(f"device calibration failed: {worker.death_reason() or 'no answer'}")
    env.update(reply[1])
    peaks.update({key: env.get(key) for key in ("peak_bandwidth_gbps", "peak_tflops")})
    folder.write_env(env)


# --- training runs --------------------------------------------------------------------------------------

def run_training(runs: list, device: str, out: Path, *, timeout_s: float, preset: str | None = None,
                 progress: Progress | None = None, slots: list[Slot] | None = None, settings: dict | None = None,
                 backend=None) -> SweepReport:
    """Train `runs` (bench.measuring.train.TrainPoint) into `out`/quality.csv, resuming it; returns what was done."""
    folder = RunFolder(out)
    folder.open()
    try:
        return _train_locked(folder, runs, device, timeout_s, preset, progress, slots or local_slots(device),
                             settings or {}, backend or LocalBackend())
    finally:
        folder.close()


def _train_locked(folder: RunFolder, runs, device, timeout_s, preset, progress, slots, settings,
                  backend) -> SweepReport:
    from bench.measuring import train

    report = SweepReport(folder.path, total=len(runs), took_over=folder.took_over)
    env = open_env(folder, device, stage="quality", measured_on=backend.machine(device))
    device_name = env["device_name"]
    done = set()
    hashes = {run.key: train.base_row(run, device_name)["source_hash"] for run in runs}
    for row in folder.quality.rows():
        try:
            key = train.TrainPoint.from_row(row).key
        except (ValueError, TypeError):
            continue
        if hashes.get(key) and hashes[key] == row["source_hash"]:
            done.add(key)
    todo = [run for run in runs if run.key not in done]
    report.skipped = len(runs) - len(todo)
    env["quality"] = {**env.get("quality", {}), **settings, "preset": preset, "timeout_s": timeout_s,
                      **pool(backend, slots),
                      "training": "AdamW (betas 0.9/0.98, weight decay 0.1), linear warm-up then cosine decay, "
                                  "gradient norm clipped at 1; the best rate is chosen on validation accuracy "
                                  "and reported on the test set",
                      "started_at": env.get("quality", {}).get("started_at") or now(), "finished_at": None}
    env["quality"].pop("interrupted", None)
    folder.write_env(env)
    commit = env["quality"].get("git_commit")

    def start(slot: Slot, round_: int) -> Worker:
        worker = backend.start(slot, device, device_name, measure.TimingPolicy(), round_)
        env.setdefault("workers", {}).update({str(slot.index): worker.settings})
        return worker

    def failed(run, status: str, reason: str) -> dict:
        return {**train.base_row(run, device_name), "status": status, "error": reason}

    def record(unit: Unit, run, row: dict, slot: Slot) -> None:
        row = {**{k: v for k, v in row.items() if not k.startswith("_")}, "device_index": slot.index,
               "git_commit": commit}
        folder.quality.append(row)
        report.written.append(row)

    scheduler = Scheduler(slots, start, timeout_s, lambda run: ("train", run.as_dict()), failed, record,
                          progress=progress, total=len(todo), wait=backend.wait)

    def finish(env: dict) -> None:
        env["quality"]["finished_at"] = None if "interrupted" in env["quality"] else now()

    with _session(folder, env, scheduler, folder.quality, finish, progress, section=env["quality"]):
        scheduler.run([Unit(1, [run], cut=False) for run in todo])
    return report
