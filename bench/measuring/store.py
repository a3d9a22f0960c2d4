"""A run folder: tables appended and synced row by row, `env.json` beside them, one writer.

- `results.csv`: one row per timing point (`COLUMNS`); `quality.csv`: one row per training run
  (`QUALITY_COLUMNS`); `rounds.jsonl`: one line per point and round, with the order statistics of that
  round's timed calls, from which the point's row pools its rounds.
- Each row is written with a single `write` of a whole line, flushed and fsynced before the next point
  starts, so a killed sweep loses at most the point in flight; a torn last line (a crash inside the
  write) is cut off when the folder is opened again.
- A folder holding files mixbench did not write (an unknown header, an env.json that is not a JSON
  object) is refused, and those files are never overwritten.
"""

from __future__ import annotations

import csv
import fcntl
import io
import json
import math
import os
from pathlib import Path

COLUMNS = [
    "mixer", "scope", "seq_len", "dim", "layers", "ffn", "vocab", "norm", "causal", "batch", "batching", "dtype",
    "compute_dtype", "kernel", "tf32", "mode", "device", "device_index", "device_name",
    "status", "time_ms", "time_ms_p20", "time_ms_p80", "time_ms_lo", "time_ms_hi", "rounds", "reps",
    "peak_mem_mb", "reserved_mem_mb", "resident_mem_mb",
    "tokens_per_s", "flops", "tflops", "bytes_min", "gbps", "roofline_frac", "bound", "energy_mj",
    "sm_clock_mhz", "temp_c", "load_avg",
    "source_hash", "measured_at", "error",
]
QUALITY_COLUMNS = [
    "task", "task_options", "layout", "seq_len", "dim", "layers", "ffn", "norm", "shift", "batch", "steps", "lr",
    "weight_decay", "seed", "dtype",
    "device", "device_index", "device_name", "status", "accuracy", "val_accuracy", "train_accuracy", "loss",
    "baseline", "params", "train_s", "step_ms", "tokens_per_s", "threads", "source_hash", "git_commit",
    "measured_at", "error",
]
STATUSES = ("ok", "oom", "unsupported", "timeout", "error")
RESULTS = "results.csv"
QUALITY = "quality.csv"
ROUNDS = "rounds.jsonl"
ENV = "env.json"
LOCK = ".lock"


class RunFolderError(RuntimeError):
    """A run folder that cannot be written: locked by another sweep, or holding data mixbench did not write."""


def cell(value) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


def _append_line(path: Path, text: str) -> None:
    """Append `text` with one write, then flush and fsync it; a failure names the file."""
    try:
        with open(path, "a", newline="") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
    except OSError as exc:
        if exc.filename is None:  # a failed write or fsync does not say which file
            raise OSError(exc.errno, exc.strerror, str(path)) from exc
        raise


def _cut_torn_line(path: Path) -> bytes:
    """Cut a last line that lacks its newline (a write interrupted by a crash); returns what remains."""
    if not path.exists():
        return b""
    data = path.read_bytes()
    if data and not data.endswith(b"\n"):
        keep = data.rfind(b"\n") + 1
        with open(path, "r+b") as handle:
            handle.truncate(keep)
        data = data[:keep]
    return data


class Table:
    """One CSV table of a run folder, with fixed columns."""

    def __init__(self, path: Path, columns: list[str]):
        self.path = path
        self.columns = columns

    def check(self) -> None:
        """Refuse a file with another header: it was written by something else, and is left as it is."""
        if not self.path.exists():
            return
        with open(self.path, "rb") as handle:
            first = handle.readline()
        if not first:
            return
        header = first.decode(errors="replace").strip().split(",")
        if header != self.columns:
            hint = ("another version of mixbench" if header and header[0] == self.columns[0]
                    else "something other than mixbench")
            raise RunFolderError(f"{self.path} has columns written by {hint}; it is left untouched: "
                                 f"choose another --out")

    def repair(self) -> None:
        _cut_torn_line(self.path)

    def rows(self) -> list[dict]:
        """The rows recorded so far, as dicts of strings."""
        if not self.path.exists():
            return []
        with open(self.path, newline="") as handle:
            return list(csv.DictReader(handle))

    def append(self, row: dict) -> None:
        """Append one row as one write (with the header first in a new file), then flush and fsync it."""
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        if not self.path.exists() or self.path.stat().st_size == 0:
            writer.writerow(self.columns)
        writer.writerow([cell(row.get(column)) for column in self.columns])
        _append_line(self.path, buffer.getvalue())


class RunFolder:
    """The files of one run; `open()` takes the folder's lock for as long as this object lives."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self._lock_file = None
        self.results = Table(self.path / RESULTS, COLUMNS)
        self.quality = Table(self.path / QUALITY, QUALITY_COLUMNS)
        self.took_over: str | None = None  # set by open() when a stale lock of a dead process was taken over

    @property
    def results_path(self) -> Path:
        return self.results.path

    @property
    def env_path(self) -> Path:
        return self.path / ENV

    @property
    def rounds_path(self) -> Path:
        return self.path / ROUNDS

    def open(self) -> "RunFolder":
        """Create the folder if needed, refuse foreign files, take its lock, and repair torn last lines."""
        self.path.mkdir(parents=True, exist_ok=True)
        for table in (self.results, self.quality):
            table.check()
        self.read_env()  # refuses an env.json that is not mixbench's
        lock_file = open(self.path / LOCK, "a+")
        try:
            fcntl.flock(lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock_file.seek(0)
            holder = lock_file.read().strip() or "another process"
            lock_file.close()
            raise RunFolderError(f"another sweep ({holder}) is writing to {self.path}; wait for it to finish "
                                 f"or choose another --out") from None
        lock_file.seek(0)
        previous = lock_file.read().strip()
        if previous.startswith("pid "):  # its holder died without unlocking (a kill -9): its lock is stale
            self.took_over = previous
        lock_file.seek(0)
        lock_file.truncate()
        try:
            lock_file.write(f"pid {os.getpid()}\n")
            lock_file.flush()
        except OSError as exc:
            lock_file.close()
            raise OSError(exc.errno, exc.strerror, str(self.path / LOCK)) from exc
        self._lock_file = lock_file
        for table in (self.results, self.quality):
            table.repair()
        _cut_torn_line(self.rounds_path)
        return self

    def close(self) -> None:
        if self._lock_file is not None:
            self._lock_file.seek(0)
            self._lock_file.truncate()  # an empty lock file: nobody holds it, and nobody died holding it
            fcntl.flock(self._lock_file, fcntl.LOCK_UN)
            self._lock_file.close()
            self._lock_file = None

    def __enter__(self):
        return self.open()

    def __exit__(self, *exc):
        self.close()

    def rows(self) -> list[dict]:
        """The timing rows recorded so far, as dicts of strings."""
        return self.results.rows()

    def append(self, row: dict) -> None:
        """Append one timing row (results.csv)."""
        self.results.append(row)

    def rounds(self) -> list[dict]:
        """Every per-round record so far (rounds.jsonl); a line that does not parse is skipped."""
        if not self.rounds_path.exists():
            return []
        records = []
        with open(self.rounds_path) as handle:
            for line in handle:
                try:
                    record = json.loads(line)
                except ValueError:
                    continue
                if isinstance(record, dict):
                    records.append(record)
        return records

    def append_round(self, record: dict) -> None:
        _append_line(self.rounds_path, json.dumps(record, default=str) + "\n")

    def read_env(self) -> dict:
        """env.json as a dict ({} when there is none); one that is not mixbench's is refused."""
        if not self.env_path.exists():
            return {}
        try:
            env = json.loads(self.env_path.read_text())
        except (ValueError, UnicodeDecodeError):
            env = None
        if not isinstance(env, dict):
            raise RunFolderError(f"{self.env_path} is not an env.json mixbench wrote (not a JSON object); it is "
                                 f"left untouched: choose another --out")
        return env

    def write_env(self, env: dict) -> None:
        """Write env.json atomically (a temporary file renamed over it)."""
        temporary = self.env_path.with_suffix(".json.tmp")
        try:
            temporary.write_text(json.dumps(env, indent=2, sort_keys=True, default=str) + "\n")
        except OSError as exc:
            temporary.unlink(missing_ok=True)  # the old env.json stays whole
            raise OSError(exc.errno, exc.strerror, str(self.env_path)) from exc
        os.replace(temporary, self.env_path)


PROVENANCE = ("command", "git_commit", "git_dirty")
_KEPT = ("started_at", "peak_bandwidth_gbps", "peak_tflops", "calibration", "resumed_at", "interrupted", "quality",
         "workers", "lost")  # what a sweep that starts again keeps of an earlier start's record


class EnvRecord:
    """env.json of a sweep or a quality run, its one owner: every change is a method that says what happened,
    and each is written at once (atomically).

    A sweep's record is the top level; a quality run keeps the sweep's record whole and writes its own in the
    "quality" section (its `section`).
    """

    def __init__(self, folder: RunFolder, data: dict, section: dict):
        self.folder, self.data, self.section = folder, data, section

    @classmethod
    def open(cls, folder: RunFolder, facts: dict, stage: str, now: str) -> "EnvRecord":
        """The record of a sweep (`stage` "sweep") or a quality run ("quality") that starts or resumes now, from
        this machine's (or the measuring machine's) `facts`. A sweep refreshes the fingerprint and keeps what
        an earlier start recorded (its start time, the calibrated ceilings, the quality run's section)."""
        data = folder.read_env()
        # a folder resumes only on the machine that started it, so that nobody's numbers pass for this machine's;
        # a folder from before env.json recorded `machine_id` is accepted (nothing says where it was measured)
        if data.get("machine_id") and facts.get("machine_id") and data["machine_id"] != facts["machine_id"]:
            host = data.get("host") or "unknown host"
            raise RunFolderError(f"{folder.path} was started on another machine ({host}, machine id "
                                 f"{data['machine_id']}); a run folder resumes only on the machine that started "
                                 f"it: choose another --out")
        if data and data.get("device_name") != facts["device_name"]:
            raise RunFolderError(f"{folder.path} holds a run measured on {data.get('device_name')!r}, not on this "
                                 f"{facts['device_name']!r}; choose another --out")
        if stage == "quality":
            data = {**facts, **data}
            data["quality"] = {**data.get("quality", {}), **{key: facts[key] for key in PROVENANCE}}
            return cls(folder, data, data["quality"])
        data = {**facts, **{k: v for k, v in data.items() if k in _KEPT}}
        data.setdefault("started_at", now)
        return cls(folder, data, data)

    @property
    def device_name(self) -> str:
        return self.data["device_name"]

    @property
    def peaks(self) -> dict:
        """The device's calibrated ceilings (empty until calibrated)."""
        return {key: self.data.get(key) for key in ("peak_bandwidth_gbps", "peak_tflops")}

    def started(self, **settings) -> None:
        """The run (re)starts with these settings; an earlier interruption and finish are cleared."""
        self.section.update(settings, finished_at=None)
        self.section.pop("interrupted", None)
        self.write()

    def resumed(self, at: str) -> None:
        self.data["resumed_at"] = [*self.data.get("resumed_at", []), at]

    def calibrated(self, ceilings: dict) -> None:
        self.data.update(ceilings)
        self.write()

    def worker_started(self, slot_index: int, settings: dict) -> None:
        self.data.setdefault("workers", {})[str(slot_index)] = settings

    def lost(self, records: list[dict]) -> None:
        """Workers that went away with their machines, and what each was doing."""
        if records:
            self.data["lost"] = [*self.data.get("lost", []), *records]

    def interrupted(self, signal: str, at: str, rows: int) -> None:
        self.section["interrupted"] = {"signal": signal, "at": at, "rows": rows}

    def finished(self, at: str, **facts) -> None:
        """The run ends (its finish time is left empty when a signal stopped it); writes the record."""
        self.data.update(facts)
        self.section["finished_at"] = None if "interrupted" in self.section else at
        self.write()

    def write(self) -> None:
        self.folder.write_env(self.data)
