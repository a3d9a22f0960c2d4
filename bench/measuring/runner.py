"""The parent side of a sweep: hand points to a worker process, survive whatever happens there.

- A point that runs past its timeout is killed and recorded as `timeout`; a worker that dies
  (segfault, illegal memory access, abort) is recorded as `error` for the point it was on; in both
  cases a fresh worker carries on with the next point.
- After an `oom` (or a `timeout`) the longer lengths of that series are recorded as the same status
  without running: they would only fail more slowly.
- Points already in `results.csv` (measured with the same mixer source) are skipped, so running the
  same sweep into the same folder resumes it.
"""

from __future__ import annotations

import datetime as dt
import multiprocessing
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import mixers
from bench.measuring import env as environment
from bench.measuring import measure
from bench.measuring.plan import Axes, Point
from bench.measuring.store import RunFolder, RunFolderError
from bench.measuring.worker import base_row, compute_dtype_name, serve, source_hash

STARTUP_TIMEOUT_S = 300.0  # importing torch and creating a CUDA context on a busy machine
DIED = ("died",)


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


class _Worker:
    """One spawned worker process and its end of the pipe."""

    def __init__(self, device: str, device_name: str, policy: measure.TimingPolicy):
        context = multiprocessing.get_context("spawn")
        self.conn, child_conn = context.Pipe()
        self.process = context.Process(target=serve, args=(child_conn, device, device_name, policy), daemon=True)
        self.process.start()
        child_conn.close()
        reply = self.receive(STARTUP_TIMEOUT_S)
        if reply is None or reply is DIED or reply[0] != "ready":
            self.kill()
            raise RuntimeError(f"the measuring worker did not start: {self.death_reason() or 'no answer'}")

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


@dataclass
class SweepReport:
    """What a sweep did: rows it wrote this time, points it skipped as already measured."""

    run_dir: Path
    written: list[dict] = field(default_factory=list)
    skipped: int = 0
    total: int = 0

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for row in self.written:
            out[row["status"]] = out.get(row["status"], 0) + 1
        return out


Progress = Callable[[int, int, Point | None, float | None], None]  # done, total, current point, eta_s


def _point_key(row: dict) -> tuple:
    return (row["mixer"], int(row["seq_len"]), int(row["dim"]), int(row["batch"]), row["batching"],
            row["dtype"], row["mode"], row["device"])


def _current_hashes(points: list[Point]) -> dict[str, str]:
    names = {point.mixer for point in points}
    return {name: source_hash(mixers.get(name)) for name in names}


def run(points: list[Point], axes: Axes, device: str, out: Path, *, preset: str | None = None,
        flush_l2: bool = False, progress: Progress | None = None) -> SweepReport:
    """Measure `points` into the run folder `out` (resuming it), and return what was done."""
    folder = RunFolder(out)
    folder.open()
    try:
        return _run_locked(folder, points, axes, device, preset, flush_l2, progress)
    finally:
        folder.close()


def _run_locked(folder: RunFolder, points, axes, device, preset, flush_l2, progress) -> SweepReport:
    report = SweepReport(folder.path, total=len(points))
    hashes = _current_hashes(points)
    done = {_point_key(row) for row in folder.rows() if hashes.get(row["mixer"]) == row["source_hash"]}
    todo = [point for point in points if point.key not in done]
    report.skipped = len(points) - len(todo)

    env = folder.read_env()
    facts = environment.fingerprint(device)
    if env and env.get("device_name") != facts["device_name"]:
        raise RunFolderError(f"{folder.path} holds a run measured on {env.get('device_name')!r}, not on this "
                             f"{facts['device_name']!r}; choose another --out")
    env = {**facts, **{k: v for k, v in env.items() if k in ("started_at", "peak_bandwidth_gbps",
                                                            "peak_tflops", "calibration", "resumed_at")}}
    env.setdefault("started_at", _now())
    if report.skipped:
        env["resumed_at"] = [*env.get("resumed_at", []), _now()]
    env.update(preset=preset, memory_method=(measure.CUDA_MEMORY_METHOD if device == "cuda"
                                             else measure.CPU_MEMORY_METHOD),
               timing={"budget_s": axes.budget_s, "min_reps": axes.min_reps, "timeout_s": axes.timeout_s,
                       "flush_l2": flush_l2, "statistic": "median, p20, p80 of per-call times",
                       "timer": "CUDA events" if device == "cuda" else "time.perf_counter"},
               gpu_before=env.get("gpu"), finished_at=None)
    folder.write_env(env)

    policy = measure.TimingPolicy(min_reps=axes.min_reps, budget_s=axes.budget_s, flush_l2=flush_l2)
    worker = None
    try:
        if todo:
            worker = _Worker(device, facts["device_name"], policy)
            needed = sorted({p.dtype for p in todo} | {compute_dtype_name(p) for p in todo} | {"float32"})
            if not set(needed) <= set(env.get("peak_tflops") or {}):
                worker.send(("calibrate", needed))
                reply = worker.receive(STARTUP_TIMEOUT_S)
                if reply is None or reply is DIED:
                    raise RuntimeError(f"device calibration failed: {worker.death_reason() or 'no answer'}")
                env.update(reply[1])
                folder.write_env(env)
        worker = _measure_all(folder, todo, axes, device, env, policy, worker, report, progress)
    finally:
        if worker is not None:
            worker.stop()
        gpu_after, _ = environment.gpu_state() if device == "cuda" else (None, None)
        env.update(gpu_after=gpu_after, finished_at=_now())
        folder.write_env(env)
    return report


def _measure_all(folder, todo, axes, device, env, policy, worker, report, progress):
    failed_at: dict[tuple, tuple[str, int]] = {}  # series -> (status, seq_len) of its first oom/timeout
    peaks = {key: env.get(key) for key in ("peak_bandwidth_gbps", "peak_tflops")}
    device_name = env["device_name"]
    started = time.monotonic()
    for index, point in enumerate(todo):
        if progress:
            elapsed = time.monotonic() - started
            eta = elapsed / index * (len(todo) - index) if index else None
            progress(report.skipped + index, report.total, point, eta)
        if point.series in failed_at:
            status, seq_len = failed_at[point.series]
            word = "ran out of memory" if status == "oom" else "timed out"
            row = {**base_row(point, device_name), "status": status,
                   "error": f"not run: seq_len={seq_len} of this series {word}"}
        else:
            if worker is None or not worker.alive():
                worker = _Worker(device, device_name, policy)
            row, worker = _measure_one(worker, point, axes.timeout_s, device, device_name, policy, peaks)
        if row["status"] in ("oom", "timeout") and point.series not in failed_at:
            failed_at[point.series] = (row["status"], point.seq_len)
        folder.append(row)
        report.written.append(row)
    if progress:
        progress(report.total, report.total, None, 0.0)
    return worker


def _measure_one(worker: _Worker, point: Point, timeout_s: float, device, device_name, policy, peaks):
    """Send one point to the worker; return (row, the worker if it can go on, else None)."""
    if not worker.send(("point", point.as_dict(), peaks)):
        worker.kill()
        worker = _Worker(device, device_name, policy)
        worker.send(("point", point.as_dict(), peaks))
    reply = worker.receive(timeout_s)
    if reply is not None and reply is not DIED:
        _, row, fatal = reply
        if fatal:  # its CUDA context is poisoned: let it exit, carry on with a fresh one
            worker.kill()
            return row, None
        return row, worker
    if reply is DIED:
        reason = worker.death_reason() or "worker process closed its pipe"
        row = {**base_row(point, device_name), "status": "error", "error": f"{reason} while measuring this point"}
    else:
        row = {**base_row(point, device_name), "status": "timeout",
               "error": f"no result within the {timeout_s:g} s timeout; worker killed"}
    worker.kill()
    return row, None
