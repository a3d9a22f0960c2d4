"""Sweeps on Ray: the same rows as local workers, faults turned into rows, a lost node, a killed driver.

One small local cluster serves the whole module (`ray.cluster_utils.Cluster`: a head with 2 CPUs and 2
fake GPUs, so each actor gets a GPU id of its own while the points run on the CPU); the tests in this
process are its driver, and the sweeps run as a user runs them (`python -m bench sweep --backend ray
--ray-address ...`) are drivers of their own. Where ray is not installed these tests are skipped.
"""

import csv
import importlib.util
import json
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bench import api
from bench.measuring import fingerprint, measure
from bench.measuring.points import PlanError, Point
from bench.measuring.rows import Reply
from bench.measuring.scheduler import Scheduler, Unit
from bench.measuring.workers import LOST, Slot, StartError

HAVE_RAY = importlib.util.find_spec("ray") is not None
needs_ray = pytest.mark.skipif(not HAVE_RAY, reason="ray is not installed here (make install adds it where it can)")
# one local cluster serves the module: under pytest-xdist its tests run on one worker (`--dist loadgroup`)
pytestmark = pytest.mark.xdist_group("ray")
REPO = Path(__file__).resolve().parents[3]
SMALL = dict(layouts="fft,linear", seq_lens="8,16", dims="4", modes="forward,train", budget_s=0.01, rounds=1,
             device="cpu")


def read_rows(run_dir):
    with open(run_dir / "results.csv", newline="") as handle:
        return list(csv.DictReader(handle))


def outcome(run_dir):
    """What a run measured, point for point: the key of each row and its status."""
    return sorted((*Point.from_row(row).key, row["status"]) for row in read_rows(run_dir))


@pytest.fixture(scope="module")
def cluster():
    """A local Ray cluster for the module: a head with 2 CPUs and 2 fake GPUs; this process is a driver."""
    if not HAVE_RAY:
        pytest.skip("ray is not installed here")
    import ray
    from ray.cluster_utils import Cluster

    head = Cluster(initialize_head=True, head_node_args={"num_cpus": 2, "num_gpus": 2, "include_dashboard": False})
    ray.init(address=head.address, log_to_driver=False, logging_level=logging.WARNING)
    try:
        yield head
    finally:
        ray.shutdown()
        head.shutdown()


# --- the scheduler with fake workers: lost machines, late answers (no Ray needed) ----------------------

class FakeWorker:
    """A worker whose replies a test decides: `behaviour(slot, message)` gives the reply to each message."""

    def __init__(self, slot, round_, behaviour):
        self.slot, self.round, self.settings = slot, round_, {}
        self.behaviour, self.reply, self.killed = behaviour, None, False

    def send(self, message):
        self.reply = self.behaviour(self.slot, message)
        return True

    def receive(self, timeout_s):
        reply, self.reply = self.reply, None
        return reply

    def alive(self):
        return not self.killed

    def death_reason(self):
        return "its node 10.0.0.7 was lost"

    def kill(self):
        self.killed = True

    stop = kill


def answered(workers, timeout_s):
    return [worker for worker in workers if worker.reply is not None]


class Recording:
    """A job of plain items: each is sent as ("item", item), and each reply's status is appended to `recorded`."""

    def __init__(self, recorded):
        self.recorded = recorded

    def message(self, item):
        return ("item", item)

    def failed(self, item, status, reason):
        return {"status": status, "error": reason}

    def record(self, unit, item, reply, slot):
        self.recorded.append((item, reply.row["status"], slot.index))

    def skip(self, unit, item):
        return False


OK = Reply({"status": "ok"})


def scheduler(slots, behaviour, recorded, *, worker=FakeWorker, timeout_s=10.0, wait=answered):
    return Scheduler(slots, lambda slot, round_: worker(slot, round_, behaviour), Recording(recorded), timeout_s,
                     wait=wait)


def test_an_item_whose_worker_lost_its_machine_runs_again_on_another_and_the_slot_is_retired():
    recorded = []
    lose_on_slot_0 = lambda slot, message: LOST if slot.index == 0 else OK  # noqa: E731
    scheduled = scheduler([Slot(0), Slot(1)], lose_on_slot_0, recorded)
    scheduled.run([Unit(1, ["a", "b"]), Unit(1, ["c"])])
    assert sorted(recorded) == [("a", "ok", 1), ("b", "ok", 1), ("c", "ok", 1)]  # each item once, none lost
    assert scheduled.retired == {0}
    assert [(lost["worker"], lost["item"]) for lost in scheduled.lost] == [(0, "a")]
    assert "10.0.0.7 was lost" in scheduled.lost[0]["reason"]


def test_a_sweep_whose_every_worker_is_lost_stops_with_the_reason():
    recorded = []
    scheduled = scheduler([Slot(0)], lambda slot, message: LOST, recorded)
    with pytest.raises(StartError, match="every worker was lost.*10.0.0.7.*2 item"):
        scheduled.run([Unit(1, ["a", "b"])])
    assert recorded == []


def test_the_count_of_items_not_run_leaves_out_those_done_and_a_loss_is_dated():
    recorded = []
    lose_c = lambda slot, message: LOST if message == ("item", "c") else OK  # noqa: E731
    scheduled = scheduler([Slot(0)], lose_c, recorded)
    with pytest.raises(StartError, match=r"; 3 item\(s\) not run"):  # c (handed back), d, e; not a or b
        scheduled.run([Unit(1, ["a", "b", "c", "d", "e"])])
    assert [item for item, _, _ in recorded] == ["a", "b"]
    assert [lost["item"] for lost in scheduled.lost] == ["c"] and scheduled.lost[0]["at"].startswith("20")


def test_a_loss_without_a_reason_from_the_worker_says_the_machine_went_away():
    class Silent(FakeWorker):
        def death_reason(self):
            return None

    recorded = []
    lose_on_slot_0 = lambda slot, message: LOST if slot.index == 0 else OK  # noqa: E731
    scheduled = scheduler([Slot(0), Slot(1)], lose_on_slot_0, recorded, worker=Silent)
    scheduled.run([Unit(1, ["a"])])
    assert recorded == [("a", "ok", 1)] and scheduled.lost[0]["reason"] == "its machine went away"


def test_an_answer_that_came_while_the_scheduler_was_busy_is_taken_at_the_deadline_not_timed_out():
    recorded = []
    waits = []

    def late_wait(workers, timeout_s):  # the scheduler was busy (starting another worker) until past the deadline
        waits.append(timeout_s)
        if timeout_s > 0:
            time.sleep(timeout_s)
            return []
        return answered(workers, timeout_s)

    scheduled = scheduler([Slot(0)], lambda slot, message: OK, recorded, timeout_s=0.2,
                     wait=late_wait)
    scheduled.run([Unit(1, ["a", "b"])])
    assert recorded == [("a", "ok", 0), ("b", "ok", 0)] and 0 in waits and max(waits) > 0


def test_a_run_that_lost_nothing_has_an_empty_list_of_losses():
    recorded = []
    scheduled = scheduler([Slot(0)], lambda slot, message: OK, recorded)
    scheduled.run([Unit(1, ["a"])])
    assert scheduled.lost == [] and recorded == [("a", "ok", 0)]


# --- choosing GPUs ------------------------------------------------------------------------------------

def node(alive=True, **resources):
    return {"NodeID": str(id(resources)), "Alive": alive, "Resources": resources}


@needs_ray
def test_gpus_are_counted_per_type_on_alive_nodes_only():
    from bench.measuring.ray_backend import gpu_inventory

    nodes = [node(GPU=8, **{"accelerator_type:H100": 1}), node(GPU=4, **{"accelerator_type:H100": 1}),
             node(GPU=8, **{"accelerator_type:A100": 1}), node(alive=False, GPU=8, **{"accelerator_type:H200": 1}),
             node(CPU=64), node(GPU=2)]
    assert gpu_inventory(nodes) == {"H100": 12, "A100": 8, "": 2}


@needs_ray
def test_a_cluster_with_several_gpu_types_needs_gpu_type_and_the_error_names_them():
    from bench.measuring.ray_backend import choose_gpus

    mixed = {"H100": 12, "A100": 8}
    with pytest.raises(PlanError, match=r"several types \(A100: 8, H100: 12\).*--gpu-type A100 / --gpu-type H100"):
        choose_gpus(mixed, None)
    assert choose_gpus(mixed, "A100") == ("A100", 8)
    with pytest.raises(PlanError, match=r"--gpu-type V100: .*no GPUs of that type \(it has A100: 8, H100: 12\)"):
        choose_gpus(mixed, "V100")
    assert choose_gpus({"": 2}, None) == (None, 2)  # GPUs Ray knows no type of (fake ones): one kind
    assert choose_gpus({}, None) == (None, 0)
    with pytest.raises(PlanError, match="it has no GPUs"):
        choose_gpus({}, "H100")


# --- bad input ----------------------------------------------------------------------------------------

def test_backend_options_are_checked_before_anything_runs(tmp_path):
    for options, message in (({"threads": "0"}, "--threads"), ({"backend": "slurm"}, "allowed: local, ray"),
                             ({"ray_address": "auto"}, "--ray-address is for --backend ray"),
                             ({"gpu_type": "H100"}, "--gpu-type is for --backend ray"),
                             ({"backend": "ray", "devices": "0"}, "--devices picks this machine's GPUs")):
        with pytest.raises(PlanError, match=message):
            api.plan_sweep(**SMALL, out=tmp_path / "run", **options)
    assert not (tmp_path / "run").exists()


@pytest.mark.slow
def test_backend_ray_without_ray_is_one_line_and_exit_status_2(tmp_path, mixbench):
    blocked = tmp_path / "blocked"
    (blocked / "ray").mkdir(parents=True)
    (blocked / "ray" / "__init__.py").write_text("raise ImportError(\"No module named 'ray' (blocked for a test)\")\n")
    done = mixbench("sweep", "--mixers", "fft", "--seq-lens", "8", "--dims", "4", "--device", "cpu", "--backend",
                    "ray", "--out", str(tmp_path / "run"), extra_path=blocked)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1 and "--backend ray needs the ray package" in done.stderr
    assert not (tmp_path / "run").exists()


# --- sweeps on the cluster ------------------------------------------------------------------------------

@needs_ray
@pytest.mark.slow
def test_one_worker_two_workers_and_ray_measure_the_same_rows_and_each_worker_sees_its_own_gpu(tmp_path, cluster,
                                                                                                      calibrated):
    runs = {"one": {}, "two": {"workers": 2, "threads": 1},
            "ray": {"backend": "ray", "ray_address": cluster.address, "threads": 1}}
    for name, options in runs.items():
        sweep_plan = api.plan_sweep(**SMALL, out=calibrated(tmp_path / name), **options)
        try:
            api.run_plan(sweep_plan)
        finally:
            sweep_plan.backend.close()
    assert outcome(tmp_path / "one") == outcome(tmp_path / "two") == outcome(tmp_path / "ray")
    assert len(outcome(tmp_path / "ray")) == 8
    assert {row["device_index"] for row in read_rows(tmp_path / "ray")} == {"0", "1"}

    env = json.loads((tmp_path / "ray" / "env.json").read_text())
    assert env["pool"]["backend"] == "ray" and env["pool"]["workers"] == 2
    assert env["pool"]["worker_resources"] == {"num_gpus": 1, "num_cpus": 1} and env["pool"]["gpus"] == {"": 2}
    workers = env["workers"]
    assert sorted(workers) == ["0", "1"] and all(worker["threads"] == 1 for worker in workers.values())
    assert sorted(worker["cuda_visible_devices"] for worker in workers.values()) == ["0", "1"]
    assert env["device_name"] == fingerprint.device_facts("cpu")["device_name"]
    local = json.loads((tmp_path / "two" / "env.json").read_text())
    assert local["pool"] == {"backend": "local", "workers": 2, "threads_per_worker": 1}
    assert all(worker["threads"] == 1 for worker in local["workers"].values())


@needs_ray
@pytest.mark.slow
def test_a_ray_worker_that_crashes_or_hangs_costs_its_point_and_the_sweep_completes(tmp_path, cluster,
                                                                                    planted_path, mixbench, calibrated):
    run_dir = calibrated(tmp_path / "run")
    done = mixbench("sweep", "--backend", "ray", "--ray-address", cluster.address, "--device", "cpu", "--mixers",
                    "planted-identity,planted-segfault,planted-hang", "--seq-lens", "8", "--dims", "4", "--modes",
                    "forward", "--timeout", "3", "--budget", "0.01", "--rounds", "1", "--out", str(run_dir),
                    "--no-report", extra_path=planted_path)
    assert done.returncode == 0, done.stderr
    assert "with 2 Ray workers" in done.stdout and "measured 3 points (1 error, 1 ok, 1 timeout)" in done.stdout
    rows = {row["mixer"]: row for row in read_rows(run_dir)}
    assert rows["planted-identity"]["status"] == "ok"
    crashed = rows["planted-segfault"]
    assert crashed["status"] == "error" and "the Ray worker (pid" in crashed["error"] and "died" in crashed["error"]
    assert rows["planted-hang"]["status"] == "timeout" and "3 s timeout" in rows["planted-hang"]["error"]


def sweep_in_thread_until_signalled(sweep_plan, run_dir, rows: int, signum: int):
    """Run `sweep_plan` here as the CLI does (under `interrupts`) and send this process `signum` once `rows`
    rows are in; returns the exception that stopped it."""
    import threading

    from bench.measuring.runner import Interrupted, interrupts

    def signal_when_measured():
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if (run_dir / "results.csv").exists() and len(read_rows(run_dir)) >= rows:
                break
            time.sleep(0.05)
        os.kill(os.getpid(), signum)

    threading.Thread(target=signal_when_measured, daemon=True).start()
    try:
        with interrupts():
            api.run_plan(sweep_plan)
    except Interrupted as exc:
        return exc
    finally:
        sweep_plan.backend.close()
    return None


@needs_ray
@pytest.mark.slow
def test_a_stopped_or_killed_ray_driver_resumes_without_duplicates(tmp_path, cluster, calibrated):
    import ray

    run_dir = calibrated(tmp_path / "run")
    axes = dict(layouts="fft", seq_lens="8,16,32,64,128,256", dims="4", modes="forward,train", budget_s=0.5,
                min_reps=3, rounds=1, device="cpu", out=run_dir, backend="ray")
    stopped = sweep_in_thread_until_signalled(api.plan_sweep(**axes), run_dir, 2, signal.SIGTERM)
    assert stopped is not None and stopped.signum == signal.SIGTERM
    recorded = json.loads((run_dir / "env.json").read_text())
    assert recorded["interrupted"]["signal"] == "SIGTERM" and recorded["finished_at"] is None
    deadline = time.monotonic() + 30
    while ray.available_resources().get("GPU", 0) < 2 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert ray.available_resources().get("GPU", 0) == 2, "the stopped sweep's actors must be gone"

    args = [sys.executable, "-m", "bench", "sweep", "--backend", "ray", "--ray-address", cluster.address, "--mixers",
            "fft", "--seq-lens", "8,16,32,64,128,256", "--dims", "4", "--modes", "forward,train", "--budget", "0.5",
            "--min-reps", "3", "--rounds", "1", "--device", "cpu", "--out", str(run_dir), "--no-report", "--quiet"]
    stopped_at = len(read_rows(run_dir))
    sweep = subprocess.Popen(args, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                             start_new_session=True)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and sweep.poll() is None and len(read_rows(run_dir)) < stopped_at + 2:
        time.sleep(0.05)
    os.kill(sweep.pid, signal.SIGKILL)  # the driver only: Ray ends the actors it owned
    sweep.wait()
    before = read_rows(run_dir)
    assert stopped_at + 2 <= len(before) < 12, "the kill should land in the middle of the sweep"

    resumed = api.plan_sweep(**axes)  # run again (here, a driver of the same cluster)
    try:
        report = api.run_plan(resumed)
    finally:
        resumed.backend.close()
    after = read_rows(run_dir)
    keys = [(row["seq_len"], row["mode"]) for row in after]
    assert len(keys) == len(set(keys)) == 12
    assert after[:len(before)] == before  # nothing written before the kill is lost or rewritten
    assert report.skipped == len(before) and len(report.written) == 12 - len(before)
    assert "interrupted" not in json.loads((run_dir / "env.json").read_text())


@needs_ray
@pytest.mark.slow
def test_a_point_in_flight_on_a_node_that_goes_away_is_handed_back(cluster):
    from bench.measuring.ray_backend import RayWorker, code_path

    doomed = cluster.add_node(num_cpus=1, resources={"doomed": 1})
    cluster.wait_for_nodes()
    options = {"num_cpus": 1, "resources": {"doomed": 1}, "runtime_env": {"env_vars": {"PYTHONPATH": code_path()}}}
    name = fingerprint.device_facts("cpu")["device_name"]
    # a point that measures for a minute: no spread stops it early, and no repetition count does
    policy = measure.TimingPolicy(budget_s=60.0, target_spread=-1.0, max_reps=10**9)
    worker = RayWorker(Slot(0), options, "cpu", name, policy, 1)
    try:
        assert worker.settings["node_id"] != cluster.head_node.node_id
        point = Point("fft", "mixer", 64, 8, None, None, None, None, 1, "batch=1", "float32", "forward", "cpu")
        assert worker.send(("point", point.as_dict()))
        time.sleep(1.0)  # measuring
        cluster.remove_node(doomed)  # as a node drained or preempted: its raylet is told to stop
        deadline = time.monotonic() + 60
        reply = None
        while reply is None and time.monotonic() < deadline:
            reply = worker.receive(1.0)
        assert reply is LOST
        assert "node" in worker.death_reason() and "was lost" in worker.death_reason()
        assert not worker.alive()
    finally:
        worker.kill()


@needs_ray
@pytest.mark.slow
def test_a_worker_of_the_run_reports_the_machine_it_measures_on(cluster):
    from bench.measuring.ray_backend import RayBackend

    backend = RayBackend()
    assert backend.here and backend.machine("cpu") is None  # a cluster of this machine alone: asked here
    backend.slots(None, 1)
    facts = backend.probe("cpu")  # what a cluster of other machines is asked, by a task with a worker's resources
    assert facts["device_name"] == fingerprint.device_facts("cpu")["device_name"]
    assert facts["device"] == "cpu" and facts["torch"] and "git_commit" not in facts
