"""Faults of the machine around a sweep, made to happen: signals, stale locks, foreign files, bad folders;
and the sweep's own machinery across processes: rounds and several workers."""

import csv
import json
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest

from bench import cli

pytestmark = pytest.mark.slow

IDENTITY = ("--mixers", "planted-identity", "--dims", "4", "--modes", "forward", "--device", "cpu")


def read_rows(path):
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def rounds_of(run_dir):
    return [json.loads(line) for line in (run_dir / "rounds.jsonl").read_text().splitlines()]


def test_rounds_run_in_separate_processes_and_more_rounds_complete_a_finished_run(tmp_path, planted_path, mixbench,
                                                                                   calibrated):
    run_dir = calibrated(tmp_path / "run")
    args = ("sweep", *IDENTITY, "--seq-lens", "8,16", "--budget", "0.01", "--out", str(run_dir), "--no-report")
    done = mixbench(*args, "--rounds", "2", extra_path=planted_path)
    assert done.returncode == 0, done.stderr
    rows = read_rows(run_dir / "results.csv")
    assert len(rows) == 2 and {row["rounds"] for row in rows} == {"2"}
    for row in rows:
        assert float(row["time_ms_lo"]) <= float(row["time_ms_hi"])
    records = rounds_of(run_dir)
    assert len(records) == 4
    for seq_len in (8, 16):
        mine = [r for r in records if r["key"][2] == seq_len]
        assert sorted(r["round"] for r in mine) == [1, 2]
        assert len({r["pid"] for r in mine}) == 2  # each round in a worker process of its own

    again = mixbench(*args, "--rounds", "3", extra_path=planted_path)
    assert again.returncode == 0, again.stderr
    assert "measured 2 points" in again.stdout and len(rounds_of(run_dir)) == 6  # only the third rounds ran
    from bench.reporting import analysis

    assert list(analysis.load_results(run_dir)["rounds"]) == [3, 3]


def test_two_workers_measure_the_same_points_as_one_and_warn_on_a_cpu(tmp_path, planted_path, mixbench, calibrated):
    common = ("sweep", "--device", "cpu", "--mixers", "planted-identity,fft", "--dims", "4", "--seq-lens", "8,16",
              "--modes", "forward,train", "--budget", "0.01", "--rounds", "1", "--no-report")
    one = mixbench(*common, "--out", str(calibrated(tmp_path / "one")), extra_path=planted_path)
    two = mixbench(*common, "--workers", "2", "--out", str(calibrated(tmp_path / "two")), extra_path=planted_path)
    assert one.returncode == 0 and two.returncode == 0, two.stderr
    assert "warning: 2 workers share this CPU" in two.stderr
    keys = [("mixer", "seq_len", "mode", "status")]
    rows_one = {tuple(row[k] for k in keys[0]) for row in read_rows(tmp_path / "one" / "results.csv")}
    rows_two = read_rows(tmp_path / "two" / "results.csv")
    assert {tuple(row[k] for k in keys[0]) for row in rows_two} == rows_one and len(rows_two) == 8
    assert {row["device_index"] for row in rows_two} == {"0", "1"}
    env = json.loads((tmp_path / "two" / "env.json").read_text())
    assert set(env["workers"]) == {"0", "1"}


def stop_with(signum, args, env, run_dir, after_rounds):
    """Start the sweep `args`, send it `signum` once `after_rounds` more rounds are logged, and check it stopped
    within seconds with one line saying how to resume and env.json saying why."""
    logged = len(rounds_of(run_dir)) if (run_dir / "rounds.jsonl").exists() else 0
    sweep = subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if (run_dir / "rounds.jsonl").exists() and len(rounds_of(run_dir)) >= logged + after_rounds:
            break
        time.sleep(0.05)
    sweep.send_signal(signum)
    stopped = time.monotonic()
    out, err = sweep.communicate(timeout=60)
    assert time.monotonic() - stopped < 10, "a signal must stop the sweep within seconds"
    assert sweep.returncode == 128 + signum, err
    assert "Traceback" not in err and "Error" not in err
    assert f"interrupted by {signal.Signals(signum).name}" in err.strip().splitlines()[-1]
    assert "run the same command again to resume" in err
    recorded = json.loads((run_dir / "env.json").read_text())
    assert recorded["interrupted"]["signal"] == signal.Signals(signum).name and recorded["finished_at"] is None


def test_a_signal_stops_the_sweep_and_the_same_command_resumes_it(tmp_path, planted_path, calibrated):
    """SIGTERM stops the sweep; the same command resumes it, SIGINT (Ctrl-C) stops that; the third run completes."""
    run_dir = calibrated(tmp_path / "run")
    slow = ("--mixers", "planted-slow", *IDENTITY[2:])  # ~0.1 s a round, so the signals land mid-sweep
    args = [sys.executable, "-m", "bench", "sweep", *slow, "--seq-lens", "8,16,32,64,128,256", "--budget",
            "0.2", "--min-reps", "3", "--out", str(run_dir), "--no-report", "--quiet"]
    env = {**os.environ, "PYTHONPATH": str(planted_path)}
    stop_with(signal.SIGTERM, args, env, run_dir, after_rounds=2)
    stop_with(signal.SIGINT, args, env, run_dir, after_rounds=2)
    assert len(rounds_of(run_dir)) < 12, "the second signal should land in the middle of the sweep"

    resumed = subprocess.run(args, env=env, capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    rows = read_rows(run_dir / "results.csv")
    assert sorted(int(row["seq_len"]) for row in rows) == [8, 16, 32, 64, 128, 256]  # every point exactly once
    assert all(row["rounds"] == "2" for row in rows)
    rounds = [(tuple(record["key"]), record["round"]) for record in rounds_of(run_dir)]
    assert len(rounds) == len(set(rounds)) == 12  # and every round once
    assert "interrupted" not in json.loads((run_dir / "env.json").read_text())


def test_a_stale_lock_is_taken_over_with_a_note(tmp_path, planted_path, mixbench, calibrated):
    run_dir = calibrated(tmp_path / "run")
    (run_dir / ".lock").write_text("pid 999999\n")  # left by a sweep that was killed: nobody holds the flock
    done = mixbench("sweep", *IDENTITY, "--seq-lens", "8", "--budget", "0.01", "--rounds", "1", "--out",
                    str(run_dir), "--no-report", extra_path=planted_path)
    assert done.returncode == 0, done.stderr
    assert "took over the lock" in done.stdout and "pid 999999" in done.stdout
    assert (run_dir / ".lock").read_text() == ""  # released on exit


@pytest.mark.parametrize("name, content", [("results.csv", "when,what\n2024,lunch\n"), ("env.json", "not json\n"),
                                           ("env.json", "[1, 2]\n")])
def test_files_mixbench_did_not_write_are_refused_and_left_untouched(tmp_path, name, content, capsys):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / name).write_text(content)
    code = cli.main(["sweep", "--device", "cpu", "--mixers", "fft", "--seq-lens", "8", "--dims", "4",
                     "--out", str(run_dir), "--no-report"])
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1 and "left untouched" in err
    assert (run_dir / name).read_text() == content
    assert sorted(p.name for p in run_dir.iterdir()) == [name]


@pytest.mark.parametrize("where", ["/proc/mixbench-cannot-be-here/run", "FILE/run"])
def test_a_folder_that_cannot_be_created_is_refused_before_anything_runs(tmp_path, where, capsys):
    (tmp_path / "FILE").write_text("a file, not a folder")
    out = where.replace("FILE", str(tmp_path / "FILE"))
    code = cli.main(["sweep", "--device", "cpu", "--mixers", "fft", "--seq-lens", "8", "--dims", "4", "--out", out])
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1 and "--out" in err


def test_a_full_disk_while_drawing_is_one_line_and_keeps_every_row(fake_run, monkeypatch, capsys):
    import errno

    from matplotlib.figure import Figure

    run = fake_run(mixers=("fft", "attention"), seq_lens=(128, 256, 512), dtypes=("float32",), modes=("forward",))
    rows_before = (run / "results.csv").read_text()

    def full(self, path, *args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr(Figure, "savefig", full)
    assert cli.main(["plot", str(run)]) == 1
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert err.startswith("mixbench: no space left on device writing the plots and report (")
    assert f"the 6 measured rows are in {run / 'results.csv'}" in err and f"mixbench report {run}" in err
    assert (run / "results.csv").read_text() == rows_before


@pytest.fixture
def tiny_disk(tmp_path):
    """A 64 kB tmpfs where the machine allows mounting one (root in a container), else the test is skipped."""
    mount = tmp_path / "tiny"
    mount.mkdir()
    made = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mount)], capture_output=True)
    if made.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {made.stderr.decode().strip()[:100]}")
    yield mount
    subprocess.run(["umount", "-l", str(mount)], capture_output=True)


def test_a_sweep_that_fills_the_disk_stops_with_one_line_and_then_resumes(tiny_disk, tmp_path, planted_path,
                                                                          mixbench, calibrated):
    run_dir = calibrated(tiny_disk / "run")
    args = ("sweep", *IDENTITY, "--seq-lens", ",".join(str(2 ** k) for k in range(2, 12)), "--modes",
            "forward,train", "--budget", "0.01", "--min-reps", "3", "--out", str(run_dir))
    done = mixbench(*args, extra_path=planted_path)
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr and len(done.stderr.strip().splitlines()) == 1
    assert done.stderr.startswith("mixbench: no space left on device while writing the run")
    assert f"({run_dir}/" in done.stderr, done.stderr  # the file that could not be written
    if (run_dir / "results.csv").exists():
        assert f"the {len(read_rows(run_dir / 'results.csv'))} measured rows are in" in done.stderr
    else:
        assert "no measured row had been written yet" in done.stderr
    assert "run the same command again to resume" in done.stderr

    roomy = tmp_path / "roomy"  # space freed: the same folder, moved where there is room
    shutil.copytree(run_dir, roomy, ignore=shutil.ignore_patterns(".lock"))
    resumed = mixbench(*args[:-1], str(roomy), "--no-report", extra_path=planted_path)
    assert resumed.returncode == 0, resumed.stderr
    keys = [(row["seq_len"], row["mode"]) for row in read_rows(roomy / "results.csv")]
    assert len(keys) == len(set(keys)) == 20  # every point exactly once


QUALITY = ("quality", "--device", "cpu", "--tasks", "majority", "--seq-lens", "16", "--dims", "16", "--steps", "5",
           "--batch", "8", "--lrs", "3e-3", "--seeds", "0", "--no-report", "--workers", "1")


def test_training_runs_of_a_plugin_mixer_and_of_planted_faults_are_rows(tmp_path, planted_path, mixbench):
    run_dir = tmp_path / "run"
    done = mixbench(*QUALITY, "--mixers", "planted-identity,planted-raise,planted-hang,planted-segfault,fft",
                    "--timeout", "10", "--out", str(run_dir), extra_path=planted_path)
    assert done.returncode == 0, done.stderr
    rows = {row["layout"]: row for row in read_rows(run_dir / "quality.csv")}
    assert rows["planted-identity"]["status"] == "ok" and rows["fft"]["status"] == "ok"
    assert rows["planted-raise"]["status"] == "error" and "planted failure" in rows["planted-raise"]["error"]
    assert rows["planted-hang"]["status"] == "timeout"
    assert rows["planted-segfault"]["status"] == "error" and "SIGSEGV" in rows["planted-segfault"]["error"]
    again = mixbench(*QUALITY, "--mixers", "planted-identity,fft", "--out", str(run_dir), extra_path=planted_path)
    assert again.returncode == 0 and "trained 0 runs" in again.stdout and "2 already in" in again.stdout


def test_a_signal_stops_a_quality_run_and_the_same_command_resumes_it(tmp_path, planted_path):
    run_dir = tmp_path / "run"
    args = [sys.executable, "-m", "bench", *QUALITY, "--mixers", "planted-identity,fft,pool,linear", "--steps", "100",
            "--out", str(run_dir), "--quiet"]
    env = {**os.environ, "PYTHONPATH": str(planted_path)}
    run = subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not (run_dir / "quality.csv").exists():
        time.sleep(0.05)
    run.send_signal(signal.SIGTERM)
    out, err = run.communicate(timeout=60)
    assert run.returncode == 143 and "Traceback" not in err, err
    assert "interrupted by SIGTERM" in err and "run the same command again to resume" in err
    recorded = json.loads((run_dir / "env.json").read_text())["quality"]
    assert recorded["interrupted"]["signal"] == "SIGTERM" and recorded["finished_at"] is None
    resumed = subprocess.run(args, env=env, capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    layouts = [row["layout"] for row in read_rows(run_dir / "quality.csv")]
    assert sorted(layouts) == ["fft", "linear", "planted-identity", "pool"]  # every run exactly once
