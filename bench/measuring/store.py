"""A run folder: `results.csv` appended and synced point by point, `env.json` beside it, one writer.

Each row is written with a single `write` of a whole line, flushed and fsynced before the next point
starts, so a killed sweep loses at most the point in flight; a torn last line (a crash inside the
write) is cut off when the folder is opened again.
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
    "mixer", "seq_len", "dim", "batch", "batching", "dtype", "compute_dtype", "mode", "device", "device_name",
    "status", "time_ms", "time_ms_p20", "time_ms_p80", "reps", "peak_mem_mb", "reserved_mem_mb",
    "tokens_per_s", "flops", "tflops", "bytes_min", "gbps", "roofline_frac", "bound", "energy_mj",
    "source_hash", "measured_at", "error",
]
STATUSES = ("ok", "oom", "unsupported", "timeout", "error")
RESULTS = "results.csv"
ENV = "env.json"
LOCK = ".lock"


class RunFolderError(RuntimeError):
    """A run folder that cannot be written: locked by another sweep, or holding incompatible data."""


def _cell(value) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


class RunFolder:
    """The files of one run; `open()` takes the folder's lock for as long as this object lives."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self._lock_file = None

    @property
    def results_path(self) -> Path:
        return self.path / RESULTS

    @property
    def env_path(self) -> Path:
        return self.path / ENV

    def open(self) -> "RunFolder":
        """Create the folder if needed, take its lock, and repair a torn last line."""
        self.path.mkdir(parents=True, exist_ok=True)
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
        lock_file.truncate()
        lock_file.write(f"pid {os.getpid()}\n")
        lock_file.flush()
        self._lock_file = lock_file
        self._repair()
        return self

    def close(self) -> None:
        if self._lock_file is not None:
            fcntl.flock(self._lock_file, fcntl.LOCK_UN)
            self._lock_file.close()
            self._lock_file = None

    def __enter__(self):
        return self.open()

    def __exit__(self, *exc):
        self.close()

    def _repair(self) -> None:
        if not self.results_path.exists():
            return
        data = self.results_path.read_bytes()
        if data and not data.endswith(b"\n"):
            keep = data.rfind(b"\n") + 1
            with open(self.results_path, "r+b") as handle:
                handle.truncate(keep)
        if data:
            header = data.split(b"\n", 1)[0].decode().split(",")
            if header != COLUMNS:
                raise RunFolderError(f"{self.results_path} was written with other columns by another version of "
                                     f"mixbench; choose another --out")

    def rows(self) -> list[dict]:
        """The rows recorded so far, as dicts of strings."""
        if not self.results_path.exists():
            return []
        with open(self.results_path, newline="") as handle:
            return list(csv.DictReader(handle))

    def append(self, row: dict) -> None:
        """Append one row as one write, then flush and fsync it."""
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        new = not self.results_path.exists() or self.results_path.stat().st_size == 0
        if new:
            writer.writerow(COLUMNS)
        writer.writerow([_cell(row.get(column)) for column in COLUMNS])
        with open(self.results_path, "a", newline="") as handle:
            handle.write(buffer.getvalue())
            handle.flush()
            os.fsync(handle.fileno())

    def read_env(self) -> dict:
        return json.loads(self.env_path.read_text()) if self.env_path.exists() else {}

    def write_env(self, env: dict) -> None:
        """Write env.json atomically (a temporary file renamed over it)."""
        temporary = self.env_path.with_suffix(".json.tmp")
        temporary.write_text(json.dumps(env, indent=2, sort_keys=True, default=str) + "\n")
        os.replace(temporary, self.env_path)
