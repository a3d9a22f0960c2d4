"""Run units of work on a set of worker slots: a unit is the items one worker runs in order in one round (a
series of timing points, shortest first, or one training run).

What an item means is the job's (`TimingJob`, `TrainingJob` in `bench.measuring.runner`): the scheduler asks it
what to send for an item, what row an item gets that produced none (a timeout, a dead worker, a cut-off), and
hands it every reply to record. After an `oom` or a `timeout` the rest of a unit that is `cut` is recorded
with the same status without running: longer lengths would only fail more slowly.
"""

from __future__ import annotations

import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Callable, Protocol

from bench.measuring.rows import Reply, now
from bench.measuring.workers import DIED, LOST, Slot, StartError, Worker, wait_local

CUT_OFF = ("oom", "timeout")


class Job(Protocol):
    """One kind of work, as the scheduler sees it."""

    def message(self, item) -> tuple:
        """What a worker is sent for `item`."""

    def failed(self, item, status: str, reason: str) -> dict:
        """The row of an item that produced none."""

    def record(self, unit: "Unit", item, reply: Reply, slot: Slot) -> None:
        """Store an item's reply."""

    def skip(self, unit: "Unit", item) -> bool:
        """True where an item needs no run (an earlier round already failed it)."""


@dataclass
class Unit:
    """Items one worker runs in order in one round; after an oom or timeout the rest are cut off when `cut`."""

    round: int
    items: list
    cut: bool = True
    position: int = 0


class Scheduler:
    """Runs units on worker slots; every reply, failure and cut-off is handed to `job.record`.

    `start(slot, round)` gives a worker and `wait(workers, timeout_s)` those of them with a reply (a backend's
    `start` and `wait`, see `bench.measuring.workers.LocalBackend`).
    """

    def __init__(self, slots: list[Slot], start: Callable[[Slot, int], Worker], job: Job, timeout_s: float, *,
                 progress: Callable | None = None, total: int = 0, done: int = 0, wait: Callable | None = None):
        self.slots, self.start, self.job, self.timeout_s = slots, start, job, timeout_s
        self.wait = wait or wait_local
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

        with ThreadPoolExecutor(len(needed)) as starting:
            for future in [starting.submit(start, position) for position in needed]:
                future.result()  # a worker that did not start stops the run, as it does one at a time

    def _next(self, unit: Unit):
        while unit.position < len(unit.items):
            item = unit.items[unit.position]
            if not self.job.skip(unit, item):
                return item
            unit.position += 1
        return None

    def _finish(self, unit: Unit, item, reply: Reply, slot: Slot) -> None:
        self.job.record(unit, item, reply, slot)
        row = reply.row
        unit.position += 1
        self.done += 1
        self.counted += 1
        if row["status"] in CUT_OFF and unit.cut:
            first = getattr(item, "seq_len", None)
            word = "ran out of memory" if row["status"] == "oom" else "timed out"
            for rest in unit.items[unit.position:]:
                if not self.job.skip(unit, rest):
                    reason = f"not run: seq_len={first} of this series {word}"
                    self.job.record(unit, rest, Reply(self.job.failed(rest, row["status"], reason)), slot)
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
        if not worker.send(self.job.message(item)):  # its pipe broke while idle: a fresh worker takes the item
            worker.kill()
            worker = self.worker_for(position, unit.round)
            worker.send(self.job.message(item))
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
            row = self.job.failed(item, "error", f"{reason} while measuring this point")
            worker.kill()
            self._finish(unit, item, Reply(row), worker.slot)
            self._continue(position, unit, running)
            return
        if reply.fatal:  # its CUDA context is poisoned: let it exit, carry on with a fresh one
            worker.kill()
        self._finish(unit, item, reply, worker.slot)
        self._continue(position, unit, running)

    def _timeout(self, position: int, running: dict) -> None:
        unit, item, _ = running.pop(position)
        worker = self.workers[position]
        worker.kill()
        row = self.job.failed(item, "timeout", f"no result within the {self.timeout_s:g} s timeout; worker killed")
        self._finish(unit, item, Reply(row), worker.slot)
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
