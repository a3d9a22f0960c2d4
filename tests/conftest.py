"""Shared fixtures: planted faulty mixers installed as a plugin through the entry-point group; the command line
in a fresh process; run folders whose device ceilings are known already."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

PLUGINS = Path(__file__).parent / "plugins"
REPO = Path(__file__).resolve().parent.parent


def pytest_configure(config):
    """Under pytest-xdist each test process gets its share of the cores for torch's threads: two processes of two
    threads each on two cores had torch's threads wait for each other (545 in-process tests: 49 s against 16 s)."""
    workers = os.environ.get("PYTEST_XDIST_WORKER_COUNT")
    if workers:
        import torch

        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
        torch.set_num_threads(max(1, cores // int(workers)))


@pytest.fixture(scope="session")
def planted_path(tmp_path_factory) -> Path:
    """A folder that, on PYTHONPATH, installs tests/plugins/planted_mixers.py as a mixbench plugin."""
    root = tmp_path_factory.mktemp("planted")
    shutil.copy(PLUGINS / "planted_mixers.py", root)
    dist_info = root / "planted_mixers-0.0.dist-info"
    dist_info.mkdir()
    (dist_info / "METADATA").write_text("Metadata-Version: 2.1\nName: planted-mixers\nVersion: 0.0\n")
    (dist_info / "entry_points.txt").write_text("[mixbench.mixers]\nplanted = planted_mixers\n")
    return root


def run_mixbench(*args: str, extra_path: Path | None = None, timeout: float = 300, **popen):
    """Run `python -m bench ARGS` in a fresh process as a user would; returns the CompletedProcess."""
    env = {**os.environ, "CI": "1"}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(extra_path or ""), env.get("PYTHONPATH", "")) if p)
    return subprocess.run([sys.executable, "-m", "bench", *args], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=timeout, **popen)


@pytest.fixture
def mixbench():
    return run_mixbench


def calibrated(run_dir: Path) -> Path:
    """`run_dir`, made, with this CPU's ceilings already in env.json as a resumed sweep finds them, so a sweep into it
    skips the seconds of calibration (a test of calibration itself starts from an empty folder)."""
    from bench.measuring import fingerprint

    run_dir.mkdir(parents=True, exist_ok=True)
    facts = fingerprint.device_facts("cpu")
    (run_dir / "env.json").write_text(json.dumps({"device_name": facts["device_name"], "peak_bandwidth_gbps": 10.0,
                                                  "peak_tflops": {"float32": 0.05}}))
    return run_dir


@pytest.fixture(name="calibrated")
def calibrated_fixture():
    """`calibrated(run_dir)` above, for a test to ask for by name."""
    return calibrated
