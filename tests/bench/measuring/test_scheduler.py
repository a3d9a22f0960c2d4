"""The scheduler, the round log and a sweep's bookkeeping in process, with fake workers: which points run, which
are cut off, which resume.

`FakeWorker` stands in for `workers.Worker` (a process of its own): it answers a point at once with a reply made
from `behaviour`, so a whole `runner.run` — units, the scheduler, rounds, resume — runs in milliseconds and
without torch doing any work. The real processes are exercised by test_runner.py and test_faults.py.
"""

from collections import deque

import pytest

from bench.measuring import forkserver, rows, runner, timing, workers
from bench.measuring import scheduler as scheduler_module
from bench.measuring.plan import Axes, expand
from bench.measuring.points import Point, mixer_point
from bench.measuring.rounds import RoundLog
from bench.measuring.rows import Reply
from bench.measuring.scheduler import Scheduler, Unit
from bench.measuring.store import RunFolder
from bench.measuring.workers import DIED, Slot, local_slots, start_context
from bench.reporting import analysis

PEAKS = {"peak_bandwidth_gbps": 10.0, "peak_tflops": {"float32": 0.1, "float64": 0.05}}


class FakeWorker:
    """A worker that answers at once; `behaviour(point)` gives a status ("ok" or a failure)."""

    behaviour = staticmethod(lambda point: "ok")
    sent: list = []  # every point sent, in order, across workers
    started: list = []  # (slot index, round) of every worker started

    def __init__(self, slot, device, device_name, policy, round_=1):
        self.slot, self.round, self.device_name = slot, round_, device_name
        self.settings = {"threads": 1}
        self.inbox = deque()
        self.dead = False
        FakeWorker.started.append((slot.index, round_))

    def send(self, message):
        if message[0] == "calibrate":
            self.inbox.append(("calibration", {**PEAKS, "calibration": "fake"}))
        elif message[0] == "point":
            point = Point(**message[1])
            FakeWorker.sent.append((point, self.round))
            self.inbox.append(fake_reply(point, self.device_name, FakeWorker.behaviour(point)))
        return True

    def receive(self, timeout_s):
        return self.inbox.popleft() if self.inbox else None

    def alive(self):
        return not self.dead

    def stop(self):
        self.dead = True

    kill = stop

    def death_reason(self):
        return None


def fake_reply(point: Point, device_name: str, status: str, fatal: bool = False) -> Reply:
    row = timing.base_row(point, device_name)
    if status != "ok":
        return Reply({**row, "status": status, "error": f"planted {status}"}, fatal=fatal, pid=1)
    time_ms = 1.0 + point.seq_len / 1000
    return Reply({**row, "status": "ok", "time_ms": time_ms, "time_ms_p20": time_ms, "time_ms_p80": time_ms, "reps": 3,
                  "peak_mem_mb": 1.0, "error": ""}, [time_ms] * 3, pid=1)


class RowJob:
    """A job of planted functions, as the tests need them: `record(unit, item, row, slot)` gets the reply's row."""

    def __init__(self, failed=None, record=None, skip=None):
        self._failed = failed or (lambda item, status, reason: {"status": status, "error": reason})
        self._record = record or (lambda unit, item, row, slot: None)
        self._skip = skip or (lambda unit, item: False)

    def message(self, item):
        return ("point", item.as_dict())

    def failed(self, item, status, reason):
        return self._failed(item, status, reason)

    def record(self, unit, item, reply, slot):
        self._record(unit, item, reply.row, slot)

    def skip(self, unit, item):
        return self._skip(unit, item)


def fake_waiting(ready, timeout_s):
    return [w for w in ready if w.inbox]


@pytest.fixture
def fake_workers(monkeypatch):
    """runner.run with FakeWorker processes; returns the class, whose `behaviour` a test may set."""
    monkeypatch.setattr(workers, "Worker", FakeWorker)
    monkeypatch.setattr(workers, "wait_local", fake_waiting)
    monkeypatch.setattr(runner.fingerprint, "collect",
                        lambda device, measured_on=None: {"device": device, "device_name": "fake cpu",
                                                          "cpu_count": 2})
    monkeypatch.setattr(FakeWorker, "behaviour", staticmethod(lambda point: "ok"))
    monkeypatch.setattr(FakeWorker, "sent", [])
    monkeypatch.setattr(FakeWorker, "started", [])
    return FakeWorker


def sweep(out, rounds=1, **axes):
    axes = Axes(**{"mixers": ("fft", "dct"), "seq_lens": (32, 64, 128), "dims": (16,),
                   "dtypes": ("float32", "float64"), "modes": ("forward", "train"), "rounds": rounds, **axes})
    return runner.run(expand(axes, "cpu"), axes, "cpu", out)


def statuses(out) -> dict:
    table = analysis.load_results(out)
    return {(r.mixer, r.dtype, r.mode, r.seq_len): r.status for r in table.itertuples()}


# --- cut-off: per series ------------------------------------------------------------------------------------

def test_an_oom_cuts_off_the_rest_of_its_series_and_no_other(tmp_path, fake_workers):
    fake_workers.behaviour = staticmethod(
        lambda p: "oom" if (p.mixer, p.dtype, p.mode) == ("fft", "float64", "forward") and p.seq_len >= 64 else "ok")
    report = sweep(tmp_path)
    status = statuses(tmp_path)
    assert len(status) == 2 * 2 * 2 * 3 == len(report.written)
    assert [status[("fft", "float64", "forward", n)] for n in (32, 64, 128)] == ["ok", "oom", "oom"]
    cut = analysis.load_results(tmp_path).set_index(["mixer", "dtype", "mode", "seq_len"])
    assert cut.loc[("fft", "float64", "forward", 128), "error"] == "not run: seq_len=64 of this series ran out of memory"
    # the same mixer's other dtype and mode, and the other mixer, ran every length
    others = {key: value for key, value in status.items() if key[:3] != ("fft", "float64", "forward")}
    assert set(others.values()) == {"ok"} and len(others) == 21
    ran = {(p.mixer, p.dtype, p.mode, p.seq_len) for p, _ in fake_workers.sent}
    assert ("fft", "float64", "forward", 128) not in ran and ("fft", "float64", "train", 128) in ran
    assert ("fft", "float32", "forward", 128) in ran


def test_a_timeout_cuts_off_its_series_with_its_own_words(tmp_path, fake_workers):
    fake_workers.behaviour = staticmethod(lambda p: "timeout" if (p.mixer, p.dtype, p.mode, p.seq_len)
                                          == ("dct", "float32", "train", 32) else "ok")
    sweep(tmp_path)
    table = analysis.load_results(tmp_path).set_index(["mixer", "dtype", "mode", "seq_len"]).sort_index()
    series = table.loc[("dct", "float32", "train")]
    assert list(series["status"]) == ["timeout"] * 3
    assert list(series["error"])[1:] == ["not run: seq_len=32 of this series timed out"] * 2
    assert (table.drop(index=("dct", "float32", "train"))["status"] == "ok").all()


@pytest.mark.parametrize("status", ["error", "unsupported"])
def test_other_failures_cut_nothing_off(tmp_path, fake_workers, status):
    fake_workers.behaviour = staticmethod(lambda p: status if (p.mixer, p.seq_len) == ("fft", 32) else "ok")
    sweep(tmp_path, dtypes=("float32",), modes=("forward",))
    assert statuses(tmp_path) == {("fft", "float32", "forward", 32): status, ("fft", "float32", "forward", 64): "ok",
                                  ("fft", "float32", "forward", 128): "ok", ("dct", "float32", "forward", 32): "ok",
                                  ("dct", "float32", "forward", 64): "ok", ("dct", "float32", "forward", 128): "ok"}


def test_training_units_are_never_cut_off(fake_workers):
    calls = []

    def record(unit, item, row, slot):
        calls.append((item, row["status"]))

    scheduler = Scheduler([Slot(0)], lambda slot, round_: FakeWorker(slot, "cpu", "", None, round_),
                          RowJob(record=record), 1.0, wait=fake_waiting)
    points = [mixer_point("fft", n, 16, 1, "float32", "forward", "cpu") for n in (32, 64)]
    fake_workers.behaviour = staticmethod(lambda p: "oom" if p.seq_len == 32 else "ok")
    scheduler.run([Unit(1, points, cut=False)])
    assert [(item.seq_len, status) for item, status in calls] == [(32, "oom"), (64, "ok")]
    assert scheduler.done == 2


# --- rounds ---------------------------------------------------------------------------------------------------

def test_rounds_run_the_plan_once_then_again_in_fresh_workers(tmp_path, fake_workers):
    sweep(tmp_path, rounds=2, mixers=("fft",), dtypes=("float32",), modes=("forward",))
    assert [(p.seq_len, r) for p, r in fake_workers.sent] == [(32, 1), (64, 1), (128, 1), (32, 2), (64, 2), (128, 2)]
    assert fake_workers.started == [(0, 1), (0, 2)]  # round 2 in a worker of its own
    table = analysis.load_results(tmp_path)
    assert list(table["rounds"]) == [2, 2, 2] and set(table["status"]) == {"ok"}
    assert len(RunFolder(tmp_path).rounds()) == 6


def test_a_point_failed_in_round_one_is_not_run_again_in_round_two(tmp_path, fake_workers):
    fake_workers.behaviour = staticmethod(lambda p: "error" if p.seq_len == 64 else "ok")
    sweep(tmp_path, rounds=2, mixers=("fft",), dtypes=("float32",), modes=("forward",))
    assert [(p.seq_len, r) for p, r in fake_workers.sent] == [(32, 1), (64, 1), (128, 1), (32, 2), (128, 2)]
    table = analysis.load_results(tmp_path).set_index("seq_len")
    assert table.loc[64, "status"] == "error" and table.loc[64, "rounds"] == 1
    assert table.loc[128, "rounds"] == 2


def test_an_oom_in_round_two_cuts_off_the_rest_of_that_round(tmp_path, fake_workers):
    # the second time 64 tokens are sent (round 2), they run out of memory
    fake_workers.behaviour = staticmethod(
        lambda p: "oom" if p.seq_len == 64 and sum(q.seq_len == 64 for q, _ in FakeWorker.sent) == 2 else "ok")
    sweep(tmp_path, rounds=2, mixers=("fft",), dtypes=("float32",), modes=("forward",))
    assert [(p.seq_len, r) for p, r in fake_workers.sent] == [(32, 1), (64, 1), (128, 1), (32, 2), (64, 2)]
    table = analysis.load_results(tmp_path).set_index("seq_len")
    assert list(table["status"]) == ["ok", "oom", "oom"]
    assert table.loc[64, "error"] == "round 2 of 2: planted oom"
    assert table.loc[128, "error"] == "round 2 of 2: not run: seq_len=64 of this series ran out of memory"


# --- resume: by point and source hash -------------------------------------------------------------------------

def test_a_finished_sweep_run_again_measures_nothing(tmp_path, fake_workers):
    first = sweep(tmp_path)
    assert len(first.written) == 24 and first.skipped == 0
    fake_workers.sent.clear()
    again = sweep(tmp_path)
    assert again.written == [] and again.skipped == 24 and fake_workers.sent == []


def test_a_mixer_whose_source_changed_is_measured_again_and_the_others_are_not(tmp_path, fake_workers, monkeypatch):
    sweep(tmp_path)
    old_hash = analysis.load_results(tmp_path).set_index("mixer")["source_hash"]["fft"].iloc[0]
    fake_workers.sent.clear()
    real = rows.source_hash
    monkeypatch.setattr(rows, "source_hash", lambda cls: "edited000000" if cls.name == "fft" else real(cls))
    again = sweep(tmp_path)
    assert again.skipped == 12 and len(again.written) == 12
    assert {p.mixer for p, _ in fake_workers.sent} == {"fft"} and len(fake_workers.sent) == 12
    lines = RunFolder(tmp_path).rows()
    assert len(lines) == 36  # the old rows stay in the file; the newer row of a point is the one read
    table = analysis.load_results(tmp_path)
    assert len(table) == 24
    assert set(table.loc[table["mixer"] == "fft", "source_hash"]) == {"edited000000"} != {old_hash}


def test_rounds_logged_with_another_source_are_not_pooled(tmp_path, fake_workers, monkeypatch):
    point = mixer_point("fft", 32, 16, 1, "float32", "forward", "cpu")
    with RunFolder(tmp_path) as folder:
        current = timing.base_row(point, "")["source_hash"]
        stale = {"key": list(point.key), "round": 1, "row": {"status": "ok", "time_ms": 99.0, "source_hash": "old"},
                 "samples": [99.0]}
        fresh = {"key": list(point.key), "round": 2, "row": {"status": "ok", "time_ms": 1.0, "reps": 1,
                                                              "source_hash": current}, "samples": [1.0]}
        folder.append_round(stale)
        folder.append_round(fresh)
        book = RoundLog(folder, [point], 2, PEAKS)
        assert book.missing(point) == [1]  # round 1 ran on other code; round 2 on this code stands
        folder.append({**timing.base_row(point, ""), "status": "ok", "rounds": 2, "source_hash": "old"})
        assert RoundLog(folder, [point], 2, PEAKS).missing(point) == [1]  # a stale row is no result
        folder.append({**timing.base_row(point, ""), "status": "ok", "rounds": 2})
        assert RoundLog(folder, [point], 2, PEAKS).missing(point) == []
        assert RoundLog(folder, [point], 3, PEAKS).missing(point) == [1, 3]  # more rounds asked: not final


def test_a_failed_row_is_final_whatever_the_rounds(tmp_path):
    point = mixer_point("fft", 32, 16, 1, "float32", "forward", "cpu")
    with RunFolder(tmp_path) as folder:
        folder.append({**timing.base_row(point, ""), "status": "oom", "rounds": 1})
        assert RoundLog(folder, [point], 3, PEAKS).missing(point) == []


# --- the scheduler alone: workers that die, hang, refuse a message, or poison their context ------------------

class Moody(FakeWorker):
    """A fake worker whose point `bad` makes it die, hang, drop the message, or fail fatally."""

    mood = {}  # seq_len -> "die" | "hang" | "fatal"
    broken_pipe_once = set()  # seq_lens whose first send fails

    def receive(self, timeout_s):
        self.receive_timeouts = [*getattr(self, "receive_timeouts", []), timeout_s]
        return super().receive(timeout_s)

    def send(self, message):
        if message[0] == "point":
            seq_len = message[1]["seq_len"]
            if seq_len in Moody.broken_pipe_once:
                Moody.broken_pipe_once.discard(seq_len)
                self.dead = True
                return False
            mood = Moody.mood.get(seq_len)
            if mood == "die":
                FakeWorker.sent.append((Point(**message[1]), self.round))
                self.inbox.append(DIED)
                self.dead = True
                return True
            if mood == "hang":
                FakeWorker.sent.append((Point(**message[1]), self.round))
                return True
            if mood == "fatal":
                point = Point(**message[1])
                FakeWorker.sent.append((point, self.round))
                reply = fake_reply(point, "", "error", fatal=True)
                self.inbox.append(reply._replace(row={**reply.row, "error": "CUDA error: illegal"}))
                return True
        return super().send(message)


def scheduled(points, timeout_s=5.0, cut=True, progress=None):
    """Run `points` as one unit on one Moody slot; returns (rows by seq_len, the scheduler, workers started)."""
    rows, workers = {}, []

    def start(slot, round_):
        workers.append(Moody(slot, "cpu", "", None, round_))
        return workers[-1]

    def record(unit, item, row, slot):
        rows[item.seq_len] = {**row, "slot": slot}

    job = RowJob(failed=lambda item, status, reason: {"status": status, "error": reason, "item": item.seq_len},
                 record=record)
    scheduler = Scheduler([Slot(0)], start, job, timeout_s, progress=progress, total=len(points), wait=fake_waiting)
    scheduler.run([Unit(1, list(points), cut=cut)])
    return rows, scheduler, workers


def lengths(*seq_lens):
    return [mixer_point("fft", n, 16, 1, "float32", "forward", "cpu") for n in seq_lens]


@pytest.fixture
def moody(fake_workers, monkeypatch):
    monkeypatch.setattr(Moody, "mood", {})
    monkeypatch.setattr(Moody, "broken_pipe_once", set())
    return Moody


def test_a_worker_that_dies_costs_its_point_an_error_and_a_fresh_worker_goes_on(moody):
    moody.mood = {64: "die"}
    rows, scheduler, workers = scheduled(lengths(32, 64, 128))
    assert [rows[n]["status"] for n in (32, 64, 128)] == ["ok", "error", "ok"]
    assert rows[64]["item"] == 64 and rows[64]["slot"] == Slot(0)  # failed() and record() got the point
    assert all(timeout_s == 0 for worker in workers for timeout_s in worker.receive_timeouts)  # never blocks
    assert rows[64]["error"] == "worker process closed its pipe while measuring this point"
    assert len(workers) == 2 and workers[0].dead
    assert scheduler.done == 3 and scheduler.workers == {}


def test_a_point_past_its_timeout_is_killed_recorded_and_its_series_cut_off(moody):
    moody.mood = {64: "hang"}
    rows, scheduler, workers = scheduled(lengths(32, 64, 128, 256), timeout_s=0.05)
    assert [rows[n]["status"] for n in (32, 64, 128, 256)] == ["ok", "timeout", "timeout", "timeout"]
    assert rows[64]["error"] == "no result within the 0.05 s timeout; worker killed"
    assert rows[256]["error"] == "not run: seq_len=64 of this series timed out"
    assert [p.seq_len for p, _ in FakeWorker.sent] == [32, 64]
    assert scheduler.done == 4


def test_a_hang_in_a_unit_that_is_not_cut_lets_the_rest_run_in_a_fresh_worker(moody):
    moody.mood = {64: "hang"}
    rows, scheduler, workers = scheduled(lengths(32, 64, 128), timeout_s=0.05, cut=False)
    assert [rows[n]["status"] for n in (32, 64, 128)] == ["ok", "timeout", "ok"]
    assert len(workers) == 2


def test_a_message_a_worker_cannot_take_goes_to_a_fresh_worker(moody):
    moody.broken_pipe_once = {64}
    rows, scheduler, workers = scheduled(lengths(32, 64, 128))
    assert [rows[n]["status"] for n in (32, 64, 128)] == ["ok", "ok", "ok"] and len(workers) == 2
    assert [p.seq_len for p, _ in FakeWorker.sent] == [32, 64, 128]


def test_a_fatal_error_retires_the_worker_and_the_next_point_gets_a_fresh_one(moody):
    moody.mood = {64: "fatal"}
    rows, scheduler, workers = scheduled(lengths(32, 64, 128))
    assert [rows[n]["status"] for n in (32, 64, 128)] == ["ok", "error", "ok"]
    assert len(workers) == 2 and workers[0].dead


def test_progress_counts_items_and_estimates_the_time_left(moody):
    calls = []
    scheduled(lengths(32, 64, 128), progress=lambda done, total, item, eta: calls.append((done, total, item.seq_len,
                                                                                          eta)))
    assert [(done, total, n) for done, total, n, _ in calls] == [(0, 3, 32), (1, 3, 64), (2, 3, 128)]
    assert calls[0][3] is None and calls[1][3] >= 0 and calls[2][3] >= 0


def test_workers_are_started_per_slot_and_round_and_a_slot_keeps_its_worker_within_a_round(fake_workers):
    scheduler = Scheduler([Slot(0), Slot(1)], lambda slot, round_: FakeWorker(slot, "cpu", "", None, round_),
                          RowJob(), 1.0, wait=fake_waiting)
    units = [Unit(1, lengths(32, 64)), Unit(1, lengths(128)), Unit(2, lengths(256))]
    scheduler.run(units)
    assert fake_workers.started == [(0, 1), (1, 1), (1, 2)]  # slot 1 is free first; round 2 needs a fresh worker
    assert sorted(p.seq_len for p, _ in fake_workers.sent) == [32, 64, 128, 256]


def test_local_slots_are_one_per_device_or_per_worker():
    slots = local_slots("cuda", devices=(2, 5), threads=4)
    assert [(s.index, s.env, s.threads) for s in slots] == [(2, {"CUDA_VISIBLE_DEVICES": "2"}, 4),
                                                             (5, {"CUDA_VISIBLE_DEVICES": "5"}, 4)]
    assert [(s.index, s.env) for s in local_slots("cpu", devices=(0, 1))] == [(0, {}), (1, {})]
    assert [(s.index, s.env, s.threads) for s in local_slots("cpu", workers=3)] == [(0, {}, None), (1, {}, None),
                                                                                           (2, {}, None)]


def test_a_cpu_worker_is_forked_from_a_server_that_imported_torch_and_a_cuda_worker_is_spawned():
    assert start_context("cpu", Slot(0)).get_start_method() == "forkserver"
    assert start_context("cuda", Slot(0)).get_start_method() == "spawn"
    assert start_context("cpu", Slot(0, {"CUDA_VISIBLE_DEVICES": "1"})).get_start_method() == "spawn"
    assert {"torch", "bench.measuring.serve"} <= set(forkserver.PRELOAD)


def test_a_sweep_report_counts_rows_by_status(tmp_path):
    report = runner.SweepReport(tmp_path, written=[{"status": "ok"}, {"status": "oom"}, {"status": "ok"}])
    assert report.counts() == {"ok": 2, "oom": 1}


def test_a_worker_woken_without_a_whole_message_is_waited_for_again(moody, monkeypatch):
    late = {"left": 1}

    class Late(Moody):
        def receive(self, timeout_s):
            if late["left"] and self.inbox and isinstance(self.inbox[0], Reply):
                late["left"] -= 1
                return None  # woken, but the message is not all there yet
            return super().receive(timeout_s)

    monkeypatch.setattr(workers, "Worker", Late)
    rows = {}
    scheduler = Scheduler([Slot(0)], lambda slot, round_: Late(slot, "cpu", "", None, round_),
                          RowJob(record=lambda unit, item, row, slot: rows.setdefault(item.seq_len, row)), 5.0,
                          wait=fake_waiting)
    scheduler.run([Unit(1, lengths(32, 64))])
    assert [rows[n]["status"] for n in (32, 64)] == ["ok", "ok"] and late["left"] == 0


def test_a_round_logged_twice_counts_once_and_a_record_without_a_row_is_ignored(tmp_path):
    point = mixer_point("fft", 32, 16, 1, "float32", "forward", "cpu")
    with RunFolder(tmp_path) as folder:
        book = RoundLog(folder, [point], 2, PEAKS)
        reply = fake_reply(point, "", "ok")
        assert book.add(point, 1, reply, Slot(3)) is None
        assert book.add(point, 1, reply, Slot(3)) is None  # round 1 again: still one round in
        final = book.add(point, 2, reply, Slot(4))
        assert final["rounds"] == 2 and final["device_index"] == "3+4" and point.key in book.final
        logged = folder.rounds()
        assert [(r["round"], r["device_index"], r["pid"]) for r in logged] == [(1, 3, 1), (1, 3, 1), (2, 4, 1)]
        assert logged[0]["row"] == reply.row and logged[0]["samples"] == reply.samples
        folder.append_round({"key": list(point.key), "round": 1})  # no row: not a record of this code
        folder.append_round({"round": 2, "row": {"status": "ok", "source_hash": reply.row["source_hash"]}})  # no key
        assert RoundLog(folder, [point], 3, PEAKS).missing(point) == [3]


def test_a_row_from_before_rounds_existed_counts_as_one_round(tmp_path):
    point = mixer_point("fft", 32, 16, 1, "float32", "forward", "cpu")
    with RunFolder(tmp_path) as folder:
        folder.append({**timing.base_row(point, ""), "status": "ok", "rounds": None})
        assert RoundLog(folder, [point], 1, PEAKS).missing(point) == []
        assert RoundLog(folder, [point], 2, PEAKS).missing(point) == [1, 2]


def test_a_failed_round_is_final_at_once(tmp_path):
    point = mixer_point("fft", 32, 16, 1, "float32", "forward", "cpu")
    with RunFolder(tmp_path) as folder:
        book = RoundLog(folder, [point], 3, PEAKS)
        final = book.add(point, 1, fake_reply(point, "", "oom"), Slot(0))
        assert final["status"] == "oom" and final["rounds"] == 1 and book.missing(point) == []
        assert folder.rounds()[0]["samples"] == []  # a failed round timed nothing


def test_series_run_in_the_plans_order_round_after_round(tmp_path, fake_workers):
    sweep(tmp_path, rounds=2, mixers=("fft", "dct"), dtypes=("float32",), modes=("forward",), seq_lens=(32,))
    assert [(p.mixer, r) for p, r in fake_workers.sent] == [("fft", 1), ("dct", 1), ("fft", 2), ("dct", 2)]


def test_the_scheduler_waits_no_longer_than_the_soonest_deadline_and_reports_whom_it_failed(moody):
    moody.mood = {64: "hang"}
    waits, failed, recorded = [], [], []

    def wait(ready, timeout_s):
        waits.append(timeout_s)
        return [w for w in ready if w.inbox]

    def record(unit, item, row, slot):
        recorded.append((item.seq_len, row["status"], slot))

    job = RowJob(failed=lambda item, status, reason: failed.append(item.seq_len) or {"status": status},
                 record=record)
    scheduler = Scheduler([Slot(7)], lambda slot, round_: Moody(slot, "cpu", "", None, round_), job, 0.05, wait=wait)
    scheduler.run([Unit(1, lengths(32, 64, 128))])
    assert waits and all(0.0 <= timeout_s <= 0.05 for timeout_s in waits)
    assert failed == [64, 128]  # the hung point, then the one its timeout cut off
    assert recorded == [(32, "ok", Slot(7)), (64, "timeout", Slot(7)), (128, "timeout", Slot(7))]
    assert scheduler.counted == 2 and scheduler.done == 3  # the cut-off point was not timed


def test_skip_sees_the_unit_an_item_belongs_to(fake_workers):
    ran = []
    job = RowJob(record=lambda unit, item, row, slot: ran.append((unit.round, item.seq_len, row["status"])),
                 skip=lambda unit, item: unit.round == 2 and item.seq_len == 64)
    scheduler = Scheduler([Slot(0)], lambda slot, round_: FakeWorker(slot, "cpu", "", None, round_), job, 1.0,
                          wait=fake_waiting)
    fake_workers.behaviour = staticmethod(lambda p: "oom" if p.seq_len == 32 else "ok")
    scheduler.run([Unit(1, lengths(64, 128)), Unit(2, lengths(32, 64, 128))])
    # round 2: 32 runs out of memory; 64 is skipped (not cut off again); 128 is cut off
    assert ran == [(1, 64, "ok"), (1, 128, "ok"), (2, 32, "oom"), (2, 128, "oom")]


def test_a_scheduler_told_nothing_counts_no_total():
    assert Scheduler([], None, RowJob(), 1.0).total == 0


def test_local_worker_slots_carry_the_thread_count():
    assert [slot.threads for slot in local_slots("cpu", workers=2, threads=3)] == [3, 3]


def test_a_point_whose_rounds_are_logged_but_whose_row_was_lost_is_written_not_measured_again(tmp_path,
                                                                                              fake_workers):
    sweep(tmp_path, rounds=2)
    table = tmp_path / "results.csv"
    lines = table.read_text().splitlines(keepends=True)
    table.write_text("".join(lines[:-2]))  # the last two rows' writes failed (a full disk); their rounds are logged
    fake_workers.sent.clear()
    again = sweep(tmp_path, rounds=2)
    assert fake_workers.sent == [] and len(again.written) == 2 and again.skipped == 22
    assert table.read_text() == "".join(lines)  # the same rows, from the same rounds


def test_a_logged_failed_round_without_its_row_settles_the_point_as_failed(tmp_path):
    point = mixer_point("fft", 32, 16, 1, "float32", "forward", "cpu")
    with RunFolder(tmp_path) as folder:
        RoundLog(folder, [point], 3, PEAKS).add(point, 1, fake_reply(point, "", "oom"), Slot(0))
        book = RoundLog(folder, [point], 3, PEAKS)
        assert book.missing(point) == [2, 3]  # not final: its row is not in the table
        [row] = book.recover_unwritten_rows([point])
        assert row["status"] == "oom" and book.missing(point) == [] and book.recover_unwritten_rows([point]) == []


def test_a_point_with_only_some_rounds_logged_is_not_settled_and_a_later_failure_names_its_round(tmp_path):
    point = mixer_point("fft", 32, 16, 1, "float32", "forward", "cpu")
    with RunFolder(tmp_path) as folder:
        RoundLog(folder, [point], 3, PEAKS).add(point, 1, fake_reply(point, "", "ok"), Slot(0))
        book = RoundLog(folder, [point], 3, PEAKS)
        # one ok round of three: measure on
        assert book.recover_unwritten_rows([point]) == [] and book.missing(point) == [2, 3]
        book.add(point, 2, fake_reply(point, "", "oom"), Slot(0))  # its row's write is lost
        [row] = RoundLog(folder, [point], 3, PEAKS).recover_unwritten_rows([point])
        assert row["status"] == "oom" and row["error"].startswith("round 2 of 3: ")


def test_workers_started_together_replace_dead_and_stale_ones_and_keep_live_ones(fake_workers):
    scheduler = Scheduler([Slot(0), Slot(1), Slot(2)], lambda slot, round_: FakeWorker(slot, "cpu", "", None, round_),
                          RowJob(), 1.0)
    scheduler.start_together({0: 1, 1: 1, 2: 1})
    first = dict(scheduler.workers)
    assert sorted(fake_workers.started) == [(0, 1), (1, 1), (2, 1)]
    first[1].dead = True
    scheduler.start_together({0: 1, 1: 1, 2: 2})
    assert scheduler.workers[0] is first[0]  # alive and of this round: kept
    assert scheduler.workers[1] is not first[1] and scheduler.workers[1].alive()  # dead: replaced
    assert scheduler.workers[2].round == 2 and first[2].dead  # of another round: stopped and replaced
    assert {index: worker.slot.index for index, worker in scheduler.workers.items()} == {0: 0, 1: 1, 2: 2}


def test_a_sweep_on_two_slots_starts_both_workers_before_calibrating_and_starts_no_other(tmp_path, fake_workers,
                                                                                         monkeypatch):
    started_at_calibration = []
    send = FakeWorker.send

    def noting(self, message):
        if message[0] == "calibrate":
            started_at_calibration.append(len(FakeWorker.started))
        return send(self, message)

    monkeypatch.setattr(FakeWorker, "send", noting)
    axes = Axes(mixers=("fft", "dct"), seq_lens=(32, 64), dims=(16,), modes=("forward",), rounds=1)
    runner.run(expand(axes, "cpu"), axes, "cpu", tmp_path, slots=[Slot(0), Slot(1)])
    assert started_at_calibration == [2]  # the second worker's start-up overlaps the first one's calibration
    assert sorted(fake_workers.started) == [(0, 1), (1, 1)] and len(fake_workers.sent) == 4


def test_the_time_left_is_the_mean_time_per_item_times_the_items_left(monkeypatch):
    scheduler = Scheduler([], None, None, 1.0, total=10, done=4)
    assert scheduler._eta() is None  # nothing finished yet: no estimate
    scheduler.started, scheduler.counted = 100.0, 2
    monkeypatch.setattr(scheduler_module.time, "monotonic", lambda: 110.0)
    assert scheduler._eta() == 30.0  # 5 s an item, 6 items left
    scheduler.done = 12
    assert scheduler._eta() == 0.0
