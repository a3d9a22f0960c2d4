"""Sweeps end to end in child processes: planted faults, resume after SIGKILL, one writer, the API.

The planted mixers (tests/plugins/planted_mixers.py) reach the sweep the way a third-party mixer
would: through the `mixbench.mixers` entry-point group, on PYTHONPATH.
"""

import csv
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bench.measuring import measure
from bench.measuring.workers import Slot, Worker
from bench.measuring.store import RunFolder

pytestmark = pytest.mark.slow

FAULTS = "planted-identity,planted-raise,planted-hang,planted-segfault,planted-oom"


def read_rows(run_dir):
    with open(run_dir / "results.csv", newline="") as handle:
        return list(csv.DictReader(handle))


def test_planted_faults_become_rows_and_every_other_point_is_measured(tmp_path, planted_path, mixbench, calibrated):
    run_dir = calibrated(tmp_path / "run")
    done = mixbench("sweep", "--device", "cpu", "--mixers", FAULTS, "--seq-lens", "16,64,128", "--dims", "8",
                    "--modes", "forward", "--out", str(run_dir), "--timeout", "8", "--budget", "0.02", "--no-report",
                    "--rounds", "1", extra_path=planted_path)
    assert done.returncode == 0, done.stderr
    rows = {(row["mixer"], int(row["seq_len"])): row for row in read_rows(run_dir)}
    assert len(rows) == 15
    status = {key: row["status"] for key, row in rows.items()}
    for n in (16, 64, 128):
        assert status[("planted-identity", n)] == "ok"
        assert float(rows[("planted-identity", n)]["time_ms"]) > 0
        assert status[("planted-raise", n)] == "error"
        assert "planted failure in forward" in rows[("planted-raise", n)]["error"]
        assert status[("planted-hang", n)] == "timeout"
        assert status[("planted-segfault", n)] == "error"
        assert "SIGSEGV" in rows[("planted-segfault", n)]["error"]
    assert "8 s timeout" in rows[("planted-hang", 16)]["error"]
    assert "not run: seq_len=16" in rows[("planted-hang", 128)]["error"]  # longer lengths are not retried
    assert status[("planted-oom", 16)] == "ok"
    assert status[("planted-oom", 64)] == "oom" and "out of memory" in rows[("planted-oom", 64)]["error"]
    assert status[("planted-oom", 128)] == "oom" and "not run: seq_len=64" in rows[("planted-oom", 128)]["error"]


def test_a_sigkilled_sweep_resumes_to_exactly_one_row_per_point(tmp_path, planted_path, calibrated):
    run_dir = calibrated(tmp_path / "run")
    args = [sys.executable, "-m", "bench", "sweep", "--device", "cpu", "--mixers", "planted-identity", "--seq-lens",
            "8,16,32,64,128,256", "--dims", "4", "--modes", "forward,train", "--budget", "0.3", "--min-reps", "3",
            "--out", str(run_dir), "--no-report", "--quiet"]
    env = {**os.environ, "PYTHONPATH": str(planted_path)}
    sweep = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                             start_new_session=True)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if (run_dir / "results.csv").exists() and len(read_rows(run_dir)) >= 3:
            break
        time.sleep(0.05)
    os.killpg(sweep.pid, signal.SIGKILL)
    sweep.wait()
    before = read_rows(run_dir)
    assert 3 <= len(before) < 12, "the kill should land in the middle of the sweep"

    resumed = subprocess.run(args, env=env, capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    after = read_rows(run_dir)
    keys = [(row["seq_len"], row["mode"]) for row in after]
    assert len(keys) == len(set(keys)) == 12
    assert after[:len(before)] == before  # nothing written before the kill is lost or rewritten
    assert f"{len(before)} already in" in resumed.stdout


def test_a_second_sweep_into_a_folder_being_written_is_refused(tmp_path, planted_path, mixbench):
    run_dir = tmp_path / "run"
    holder = RunFolder(run_dir).open()  # stands in for a sweep that is writing there
    try:
        refused = mixbench("sweep", "--device", "cpu", "--mixers", "planted-identity", "--seq-lens", "8", "--dims", "4",
                           "--out", str(run_dir), "--no-report", extra_path=planted_path)
    finally:
        holder.close()
    assert refused.returncode == 2
    assert "another sweep" in refused.stderr and "Traceback" not in refused.stderr
    assert not (run_dir / "results.csv").exists()


def test_sweep_api_returns_a_dataframe_of_its_points(tmp_path):
    import bench
    import mixers

    name = "fft" if "fft" in mixers.available() else mixers.available()[0]
    table = bench.sweep(mixers=[name], seq_lens=[16, 32], dims=[8], modes="forward", dtypes="float32",
                        device="cpu", out=tmp_path / "run", budget_s=0.01)
    assert list(table.seq_len) == [16, 32] and set(table.status) == {"ok"}
    assert (table.time_ms > 0).all()
    assert (table.peak_mem_mb >= 0.99 * table.batch * table.seq_len * 8 * 4 / 2**20).all()  # the fp32 output at least
    assert table.attrs["run_dir"] == str(tmp_path / "run")
    env = RunFolder(tmp_path / "run").read_env()
    assert env["device"] == "cpu" and env["peak_tflops"]["float32"] > 0 and env["finished_at"]


def test_the_same_sweep_again_measures_nothing_and_a_mixer_edited_since_is_measured_again(tmp_path, mixbench,
                                                                                          calibrated):
    """The same sweep into the same folder finds its points there; after the plugin mixer's file changes, its
    point runs again, with the new hash."""
    from bench.reporting import analysis

    plugin = tmp_path / "plugin"
    (plugin / "planted_mixers-0.0.dist-info").mkdir(parents=True)
    (plugin / "planted_mixers-0.0.dist-info" / "METADATA").write_text("Metadata-Version: 2.1\nName: planted-mixers\n"
                                                                      "Version: 0.0\n")
    (plugin / "planted_mixers-0.0.dist-info" / "entry_points.txt").write_text("[mixbench.mixers]\n"
                                                                              "planted = planted_mixers\n")
    source = (Path(__file__).parents[2] / "plugins" / "planted_mixers.py").read_text()
    (plugin / "planted_mixers.py").write_text(source)
    run_dir = calibrated(tmp_path / "run")
    args = ("sweep", "--device", "cpu", "--mixers", "planted-identity", "--seq-lens", "8", "--dims", "4",
            "--modes", "forward", "--budget", "0.01", "--min-reps", "3", "--rounds", "1", "--out", str(run_dir),
            "--no-report")
    first = mixbench(*args, extra_path=plugin)
    assert first.returncode == 0, first.stderr
    again = mixbench(*args, extra_path=plugin)
    assert again.returncode == 0 and "measured 0 points" in again.stdout and "; 1 already in" in again.stdout
    (plugin / "planted_mixers.py").write_text(source.replace("return x.clone()", "return x.clone()  # edited", 1))
    second = mixbench(*args, extra_path=plugin)
    assert second.returncode == 0, second.stderr
    assert "measured 1 points" in second.stdout and "; 0 already in" in second.stdout
    rows = read_rows(run_dir)
    assert len(rows) == 2 and rows[0]["source_hash"] != rows[1]["source_hash"]
    table = analysis.load_results(run_dir)
    assert len(table) == 1 and table["source_hash"].iloc[0] == rows[1]["source_hash"]


@pytest.mark.skipif(not os.path.exists("/proc/self/stat"), reason="reads a process's parent from /proc")
def test_each_cpu_worker_is_a_process_of_its_own_forked_by_the_server_with_its_own_settings():
    policy = measure.TimingPolicy(budget_s=0.01, min_reps=1)
    workers = [Worker(Slot(0, {}, threads), "cpu", "this cpu", policy) for threads in (1, 2)]
    try:
        pids = [worker.process.pid for worker in workers]
        parents = {int(open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[1]) for pid in pids}
        assert len(set(pids)) == 2 and parents.isdisjoint({os.getpid()}) and len(parents) == 1  # the forkserver
        assert [worker.settings["pid"] for worker in workers] == pids
        assert [worker.settings["threads"] for worker in workers] == [1, 2]
    finally:
        for worker in workers:
            worker.stop()
    assert not any(worker.alive() for worker in workers)
