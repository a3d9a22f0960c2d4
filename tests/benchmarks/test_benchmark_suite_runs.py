"""The benchmark suite with timing on, in a child process: what it saves, and the regression gate.

It runs for one mixer, the planted identity (tests/plugins), so it is fast and needs no real mixer.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[2]
SUITE = "tests/benchmarks/test_mixer_benchmarks.py"
TINY = ("--benchmark-min-rounds=1", "--benchmark-max-time=0.01", "--benchmark-warmup=off")
# the module's tests share one timed run (`saved_run`): under pytest-xdist they run on one worker (`--dist loadgroup`)
pytestmark = pytest.mark.xdist_group("pytest-benchmark")


def run_suite(planted_path: Path, *options: str) -> subprocess.CompletedProcess:
    """Run the suite for `planted-identity` with benchmarking on, as `make bench-pytest` does."""
    env = {key: value for key, value in os.environ.items()
           if key not in ("PYTEST_ADDOPTS", "PYTEST_XDIST_WORKER")}  # a worker's variable disables timing
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(planted_path), env.get("PYTHONPATH", "")) if p)
    command = [sys.executable, "-m", "pytest", SUITE, "-q", "-p", "no:cacheprovider", "-k", "planted-identity",
               "--benchmark-enable", *TINY, *options]
    return subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def saved_run(planted_path, tmp_path_factory):
    """One timed run into a fresh storage: (storage folder, the --benchmark-json output)."""
    root = tmp_path_factory.mktemp("pytest-benchmark")
    result = run_suite(planted_path, f"--benchmark-storage=file://{root / 'store'}", "--benchmark-save=check",
                       f"--benchmark-json={root / 'run.json'}")
    assert result.returncode == 0, result.stdout + result.stderr
    return root / "store", json.loads((root / "run.json").read_text())


def test_saves_timings_peak_memory_and_gpu(saved_run):
    store, run = saved_run
    benchmarks = {bench["extra_info"]["mode"]: bench for bench in run["benchmarks"]}
    assert sorted(benchmarks) == ["forward", "train"]
    for mode, bench in benchmarks.items():
        assert bench["name"].startswith(f"test_mixer[planted-identity-{mode}-")
        assert bench["stats"]["median"] > 0 and bench["stats"]["rounds"] >= 1
        info = bench["extra_info"]
        assert info["mixer"] == "planted-identity"
        assert info["peak_mem_mb"] > 0  # the identity's clone, at least
        assert {"seq_len", "dim", "batch", "dtype", "compute_dtype", "device", "memory_method"} <= set(info)
    gpu = run["machine_info"]["gpu"]
    if torch.cuda.is_available():
        assert gpu["name"]
    else:
        assert gpu == "no GPU"
    assert run["machine_info"]["torch"] == torch.__version__
    [saved] = store.glob("*/0001_check.json")
    assert json.loads(saved.read_text())["benchmarks"][0]["extra_info"]["peak_mem_mb"] > 0


def _baseline(store: Path, tmp_path: Path, scale: float) -> Path:
    """The saved run with every median multiplied by `scale` (0.01: now looks 100x slower)."""
    data = json.loads(next(store.glob("*/0001_check.json")).read_text())
    for bench in data["benchmarks"]:
        bench["stats"]["median"] *= scale
    path = tmp_path / f"baseline-{scale}.json"
    path.write_text(json.dumps(data))
    return path


def test_compare_gate_fails_on_a_median_regression(saved_run, planted_path, tmp_path):
    store, _ = saved_run
    baseline = _baseline(store, tmp_path, 0.01)
    result = run_suite(planted_path, f"--benchmark-storage=file://{store}", f"--benchmark-compare={baseline}",
                       "--benchmark-compare-fail=median:10%")
    assert result.returncode != 0, result.stdout + result.stderr
    assert "Performance has regressed" in result.stdout + result.stderr


def test_compare_gate_passes_without_regression(saved_run, planted_path, tmp_path):
    store, _ = saved_run
    baseline = _baseline(store, tmp_path, 100.0)
    result = run_suite(planted_path, f"--benchmark-storage=file://{store}", f"--benchmark-compare={baseline}",
                       "--benchmark-compare-fail=median:10%")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Comparing against benchmarks from" in result.stdout + result.stderr
