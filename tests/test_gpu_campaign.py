"""scripts/gpu_campaign.sh: one bounded command that packs each step into $OUT as soon as it ends.

Run on this CPU at tiny sizes (DEVICE=cpu), with this Python (PY: no `make install`).
"""

from __future__ import annotations

import csv
import io
import os
import signal
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "gpu_campaign.sh"


def campaign_env(tmp_path: Path, **extra) -> dict:
    env = {**os.environ, "DEVICE": "cpu", "PY": sys.executable, "PYTHONPATH": str(ROOT),
           "OUT": str(tmp_path / "out"), "RUNS": str(tmp_path / "runs"), **extra}
    env.pop("CI", None)
    return env


def members(pack: Path) -> set[str]:
    with tarfile.open(pack) as tar:
        return set(tar.getnames())


def processes_mentioning(text: str) -> list[str]:
    found = []
    for entry in Path("/proc").iterdir():
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if entry.name.isdigit() and text in cmdline:
            found.append(f"{entry.name}: {cmdline[:120]}")
    return found


@pytest.mark.parametrize("args, env, message", [
    (["soon"], {}, "usage: scripts/gpu_campaign.sh [BUDGET_S]"),
    (["60"], {"DEVICE": "tpu"}, "DEVICE must be cuda or cpu, got 'tpu'"),
])
def test_bad_input_is_one_line_and_exit_2(tmp_path, args, env, message):
    done = subprocess.run(["bash", str(SCRIPT), *args], env=campaign_env(tmp_path, **env), capture_output=True,
                          text=True, timeout=30)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [done.stderr.strip()] and message in done.stderr
    assert not (tmp_path / "out").exists()


@pytest.mark.slow
def test_a_campaign_killed_mid_step_still_returns_the_finished_steps(tmp_path):
    out, runs = tmp_path / "out", tmp_path / "runs"
    proc = subprocess.Popen(["bash", str(SCRIPT), "120"], env=campaign_env(tmp_path), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        deadline = time.monotonic() + 150
        log = out / "campaign.log"
        # the first measuring step packed, and the next one running: its run folder begun (a fixed sleep raced a
        # loaded machine, where the step had not made its folder yet)
        while not ((out / "sweep.tar.gz").exists() and log.exists() and "fnet (at most" in log.read_text()
                   and (runs / "fnet" / "env.json").exists()):
            assert proc.poll() is None, proc.stdout.read()
            assert time.monotonic() < deadline, "the fnet step did not begin its run folder within 150 s"
            time.sleep(0.1)
        proc.send_signal(signal.SIGTERM)
        output, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert proc.returncode == 143, output
    assert "stopped by a signal during fnet" in output
    sweep = members(out / "sweep.tar.gz")
    assert {"sweep/results.csv", "sweep/env.json"} <= sweep, sweep
    with tarfile.open(out / "sweep.tar.gz") as tar:
        results = tar.extractfile("sweep/results.csv").read().decode()
    rows = list(csv.DictReader(io.StringIO(results)))
    assert len(rows) > 10 and any(row["status"] == "ok" for row in rows)  # the sweep's points, measured
    assert not list(out.glob(".*")) and len(list(out.iterdir())) <= 8  # no half-written pack; the file limit
    # the step that was stopped is packed with what it had, and nothing it started outlives the script
    assert "fnet/env.json" in members(out / "fnet.tar.gz")
    time.sleep(1)
    assert processes_mentioning(str(runs)) == []
