"""pytest-benchmark set-up for the mixer suite: benchmarking is opt-in, and machine_info names the GPU.

A plain `pytest` (as `make test` runs it) executes every benchmark test once with timing off, so each
mixer is still exercised and checked. Timing is on only when asked for: `--benchmark-enable`, or any
option that only makes sense with timings (`--benchmark-only`, `--benchmark-save`,
`--benchmark-autosave`, `--benchmark-json`, `--benchmark-compare`).
"""

from __future__ import annotations

import torch

from bench.measuring import fingerprint
from bench.measuring.plan import resolve_device

# Options that ask for timings; without one of them the benchmarks run once, untimed.
_ASKS_FOR_TIMINGS = ("benchmark_enable", "benchmark_only", "benchmark_save", "benchmark_autosave",
                     "benchmark_json", "benchmark_compare")

# NVML facts that identify the GPU and its settings; clocks now and temperature change between runs,
# and pytest-benchmark warns on any machine_info difference, so they stay out.
_STABLE_GPU_FACTS = ("name", "driver", "memory_total_mb", "power_limit_w", "sm_clock_max_mhz",
                     "mem_clock_max_mhz")


def pytest_configure(config):
    if any(config.getoption(name, None) for name in _ASKS_FOR_TIMINGS):
        return
    # Read when pytest-benchmark builds its session: this conftest was loaded at start-up
    # (the suite's path was on the command line).
    config.option.benchmark_disable = True
    # Already built: this conftest was loaded during collection (a plain `pytest` over tests/).
    session = getattr(config, "_benchmarksession", None)
    if session is not None:
        session.disabled = True


def gpu_info() -> dict | str:
    """Name, driver and settings of GPU 0, or "no GPU" where torch sees none."""
    if not torch.cuda.is_available():
        return "no GPU"
    state, nvml_error = fingerprint.gpu_state()
    facts = {key: (state or {}).get(key) for key in _STABLE_GPU_FACTS}
    facts["name"] = facts["name"] or torch.cuda.get_device_name(0)
    if nvml_error:
        facts["nvml_error"] = nvml_error
    return facts


def pytest_benchmark_update_machine_info(config, machine_info):
    device = resolve_device("auto")  # the device the suite measures
    facts = fingerprint.device_facts(device)
    machine_info["gpu"] = gpu_info()
    machine_info["torch"] = torch.__version__
    machine_info["cuda"] = torch.version.cuda
    machine_info["cudnn"] = torch.backends.cudnn.version() if torch.cuda.is_available() else None
    machine_info["mixbench_device"] = device
    machine_info["mixbench_device_name"] = facts["device_name"]
    if device == "cpu":
        machine_info["torch_threads"] = facts["cpu_threads"]
