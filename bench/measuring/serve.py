"""The worker process: configure it, then answer the parent's messages one at a time, a timing point
(`bench.measuring.timing`) or a training run (`bench.measuring.train`) each.

A worker runs in a process of its own (a local one started by `bench.measuring.workers`, or a Ray actor of
`bench.measuring.ray_backend`) so that a hang, a crash or a poisoned CUDA context costs one item, not the
run; both answer messages with the same `Measurer.handle`.
"""

from __future__ import annotations

import ctypes
import os
import signal

import torch

from bench.measuring import measure, timing, train
from bench.measuring.fingerprint import energy_counter, gpu_sampler, gpu_state
from bench.measuring.points import Point, TrainingRun
from bench.measuring.rows import Reply, failure

_MiB = 2**20
# glibc serves allocations above its mmap threshold with fresh pages each call, and moves that threshold as a
# process frees large blocks, so a process can fall into a slow mode for good; fixed thresholds remove that mode.
MALLOC_SETTINGS = {"M_MMAP_THRESHOLD": (-3, 32 * _MiB), "M_TRIM_THRESHOLD": (-1, 4 * 2**30 - 1)}


def configure_process(threads: int | None) -> dict:
    """Set this worker's thread count and allocator; returns what was set and what it sees, for env.json."""
    if threads:
        torch.set_num_threads(threads)
    settings = {"threads": torch.get_num_threads(), "pid": os.getpid(),
                "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES")}
    try:
        libc = ctypes.CDLL("libc.so.6")
        applied = {name: value for name, (code, value) in MALLOC_SETTINGS.items() if libc.mallopt(code, value) == 1}
        settings["allocator"] = ("glibc malloc, " + ", ".join(f"{k}={v}" for k, v in applied.items())
                                 + " (mallopt in each worker)") if applied else "glibc malloc, defaults"
    except (OSError, AttributeError):
        settings["allocator"] = "system default (no glibc mallopt here)"
    return settings


class Measurer:
    """One worker's state and its one way of answering a message, used by the local worker loop (`serve`) and
    by a Ray actor (`bench.measuring.ray_backend`) alike."""

    def __init__(self, device: str, device_name: str, policy: measure.TimingPolicy, threads: int | None = None):
        self.device, self.device_name, self.policy = device, device_name, policy
        self.settings = configure_process(threads)
        self.energy = self.sample = None
        if device == "cuda":  # this worker's own GPU (its CUDA device 0), found by UUID or PCI bus id, not index
            self.energy, self.sample = energy_counter(), gpu_sampler()
            self.settings["gpu"], self.settings["nvml_error"] = gpu_state()
        if device != "cuda":  # the first dispatch mode now, not in a timeout (measure._dynamo_guard_once_loaded)
            measure.peak_memory(lambda: torch.ones(1) + 1, device)

    def handle(self, message: tuple):
        """The answer to ('calibrate', dtypes): ('calibration', ceilings); to ('point', point) or ('train', run):
        a `Reply` (its `fatal` says this process's CUDA context is poisoned and it must exit)."""
        if message[0] == "calibrate":
            return ("calibration", timing.calibrate(self.device, message[1]))
        if message[0] not in ("train", "point"):
            raise ValueError(f"unknown message {message[0]!r} (allowed: calibrate, point, train, stop)")
        try:
            if message[0] == "train":
                reply = train.train_run(TrainingRun(**message[1]), self.device_name)
            else:
                reply = timing.measure_point(Point(**message[1]), self.policy, self.device_name, self.energy)
                if self.sample is not None and reply.row.get("status") == "ok":
                    reply = reply._replace(row={**reply.row, **self.sample()})  # the GPU's state as the point ends
        except Exception as exc:  # noqa: BLE001 - escaped the item's own handling: its cleanup failed
            reply = self._escaped(message, exc)
        return reply._replace(pid=os.getpid())

    def _escaped(self, message: tuple, exc: BaseException) -> Reply:
        """The reply for an exception that escaped an item's own handling, typically raised by its cleanup after
        a sticky CUDA error (an illegal memory access, a device-side assert: `empty_cache` raises it again): the
        item fails with that error, and the reply is fatal, so this worker exits and the parent starts a fresh
        one rather than trusting a process in a state nobody planned for."""
        if message[0] == "train":
            run = TrainingRun(**message[1])
            row = train.base_row(run, self.device_name)
        else:
            row = timing.base_row(Point(**message[1]), self.device_name)
        return failure(row, exc)._replace(fatal=True)


def serve(conn, device: str, device_name: str, policy: measure.TimingPolicy, threads: int | None = None) -> None:
    """The worker loop: answer messages (see `Measurer.handle`) through the pipe until ('stop',)."""
    # The parent owns interruption: Ctrl-C reaches the whole process group, and the parent stops its workers.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        measurer = Measurer(device, device_name, policy, threads)
        conn.send(("ready", measurer.settings))
        while True:
            message = conn.recv()
            if message[0] == "stop":
                return
            reply = measurer.handle(message)
            conn.send(reply)
            if isinstance(reply, Reply) and reply.fatal:
                return  # the parent starts a fresh worker with a clean CUDA context
    except (EOFError, BrokenPipeError, ConnectionResetError):
        return  # the parent is gone (killed or interrupted): nothing to report to, and nobody to tell
