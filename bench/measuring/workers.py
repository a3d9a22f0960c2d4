"""The parent's handles on its workers: where each runs (`Slot`), one local worker process (`Worker`), and the
backend interface (`LocalBackend`) that `bench.measuring.ray_backend` implements with Ray actors.

A worker serves one round: the scheduler starts a fresh one when the round changes or the last one died.
`Worker.receive` gives the worker's next message, `DIED` when its pipe closed, `LOST` (Ray only) when it went
away with its machine, or None when it did not answer in time.
"""

from __future__ import annotations

import multiprocessing
import multiprocessing.connection
import os
import signal
import threading
from dataclasses import dataclass, field

from bench.measuring import forkserver, measure
from bench.measuring.serve import serve

STARTUP_TIMEOUT_S = 300.0  # importing torch and creating a CUDA context on a busy machine
DIED = ("died",)
LOST = ("lost",)  # the worker went away with its machine: its item is measured again elsewhere


class StartError(RuntimeError):
    """A worker did not start (or started on another kind of device than the run folder's)."""


@dataclass(frozen=True)
class Slot:
    """Where one worker runs: its device index (or worker number on a CPU) and the environment it starts with."""

    index: int
    env: dict = field(default_factory=dict)
    threads: int | None = None


def inherited_mask() -> list[str] | None:
    """The GPUs this process may use, as CUDA_VISIBLE_DEVICES lists them (indices, or "GPU-…"/"MIG-…" UUIDs: a
    SLURM job's, a container's, Ray's), or None when it is not set (every GPU of the machine, in CUDA's order)."""
    text = os.environ.get("CUDA_VISIBLE_DEVICES")
    if text is None:
        return None
    return [entry.strip() for entry in text.split(",") if entry.strip()]


def visible_device(index: int) -> str:
    """What a worker on this process's CUDA device `index` puts in its CUDA_VISIBLE_DEVICES: the `index`-th entry
    of the inherited mask where there is one (device 1 under "5,7" is "7"), else the index itself."""
    mask = inherited_mask()
    if mask is None:
        return str(index)
    if not 0 <= index < len(mask):
        raise ValueError(f"CUDA device {index} is not among the {len(mask)} GPU(s) CUDA_VISIBLE_DEVICES="
                         f"{os.environ['CUDA_VISIBLE_DEVICES']!r} allows")
    return mask[index]


def local_slots(device: str, workers: int = 1, devices: tuple[int, ...] = (), threads: int | None = None
                ) -> list[Slot]:
    """One slot per GPU in `devices` (each worker sees only its own through CUDA_VISIBLE_DEVICES), or
    `workers` slots on the device (sharing it). `devices` are this process's CUDA indices: under an inherited
    CUDA_VISIBLE_DEVICES they are positions in it (`visible_device`), as torch.cuda numbers them."""
    if devices:
        return [Slot(index, {"CUDA_VISIBLE_DEVICES": visible_device(index)} if device == "cuda" else {}, threads)
                for index in devices]
    return [Slot(index, {}, threads) for index in range(workers)]


_SPAWNING = threading.Lock()


def start_context(device: str, slot: Slot) -> multiprocessing.context.BaseContext:
    """How a worker process starts. A CPU worker with nothing of its own in its environment is forked from a
    forkserver that has imported torch once: still a process of its own, with its own allocator and threads
    (`serve.configure_process` sets them), started once per round and after every crash. A CUDA worker, or one
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
