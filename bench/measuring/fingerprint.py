"""The environment fingerprint of a run: where it ran, on what, with which code.

GPU facts come from NVML (the `nvidia-ml-py` package, imported as `pynvml`). On a machine without an
NVIDIA driver NVML fails to initialise: that is recorded as `nvml_error`, never raised.
"""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from pathlib import Path

import torch

REPO_ROOT = Path(__file__).resolve().parents[2]


def _nvml():
    """The initialised pynvml module, or the reason it is not available."""
    try:
        import pynvml

        pynvml.nvmlInit()
        return pynvml, None
    except Exception as exc:  # no driver, no library, no GPU: all the same to us
        return None, f"{type(exc).__name__}: {exc}"


def _text(value) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _try(fn, *args):
    try:
        return fn(*args)
    except Exception:
        return None


def gpu_state(index: int = 0) -> tuple[dict | None, str | None]:
    """NVML facts of GPU `index`: name, memory, driver, clocks, power limit, temperature."""
    nvml, error = _nvml()
    if nvml is None:
        return None, error
    try:
        handle = nvml.nvmlDeviceGetHandleByIndex(index)
    except Exception as exc:
        return None, f"{type(exc).__name__}: {exc}"
    memory = _try(nvml.nvmlDeviceGetMemoryInfo, handle)
    clocks = {
        "sm_clock_mhz": _try(nvml.nvmlDeviceGetClockInfo, handle, nvml.NVML_CLOCK_SM),
        "mem_clock_mhz": _try(nvml.nvmlDeviceGetClockInfo, handle, nvml.NVML_CLOCK_MEM),
        "sm_clock_max_mhz": _try(nvml.nvmlDeviceGetMaxClockInfo, handle, nvml.NVML_CLOCK_SM),
        "mem_clock_max_mhz": _try(nvml.nvmlDeviceGetMaxClockInfo, handle, nvml.NVML_CLOCK_MEM),
    }
    power_limit = _try(nvml.nvmlDeviceGetEnforcedPowerLimit, handle)
    state = {
        "name": _text(_try(nvml.nvmlDeviceGetName, handle)),
        "memory_total_mb": memory.total / 2**20 if memory else None,
        "driver": _text(_try(nvml.nvmlSystemGetDriverVersion)),
        **clocks,
        "power_limit_w": power_limit / 1000 if power_limit else None,
        "temperature_c": _try(nvml.nvmlDeviceGetTemperature, handle, nvml.NVML_TEMPERATURE_GPU),
        "throttle_reasons": _try(nvml.nvmlDeviceGetCurrentClocksEventReasons, handle),
    }
    return state, None


def energy_counter(index: int = 0):
    """A function returning GPU `index`'s total energy in mJ, or None where NVML has no counter."""
    nvml, _ = _nvml()
    if nvml is None:
        return None
    try:
        handle = nvml.nvmlDeviceGetHandleByIndex(index)
        nvml.nvmlDeviceGetTotalEnergyConsumption(handle)
    except Exception:
        return None
    return lambda: float(nvml.nvmlDeviceGetTotalEnergyConsumption(handle))


def _git(*args: str) -> str | None:
    try:
        out = subprocess.run(["git", *args], cwd=REPO_ROOT, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def device_facts(device: str) -> dict:
    """Name and memory of the device a sweep runs on."""
    if device == "cuda":
        props = torch.cuda.get_device_properties(0)
        return {"device_name": props.name, "device_memory_mb": props.total_memory / 2**20,
                "sm_count": props.multi_processor_count}
    try:
        pages = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError):
        pages = None
    return {"device_name": cpu_name(), "device_memory_mb": pages / 2**20 if pages else None,
            "cpu_threads": torch.get_num_threads()}


def command_line() -> str:
    """The command as the user typed it, near enough: `mixbench ...` or `python -m bench ...`."""
    program = Path(sys.argv[0]).name if sys.argv and sys.argv[0] else "python"
    if program == "__main__.py":
        program = "python -m bench"
    return " ".join([program, *sys.argv[1:]])


def machine(device: str) -> dict:
    """What env.json records about the machine that measures on `device` (a Ray worker's node, or this one)."""
    gpu, nvml_error = gpu_state() if device == "cuda" or torch.cuda.is_available() else _no_gpu()
    return {
        "device": device,
        **device_facts(device),
        "gpu": gpu,
        "nvml_error": nvml_error,
        "cuda": torch.version.cuda,
        "cudnn": torch.backends.cudnn.version() if torch.cuda.is_available() else None,
        "tf32_matmul": torch.backends.cuda.matmul.allow_tf32,
        "torch": torch.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu": cpu_name(),
        "cpu_count": os.cpu_count(),
    }


def provenance() -> dict:
    """The code and the command a run comes from (always this process's: the driver's)."""
    status = _git("status", "--porcelain", "--untracked-files=no")  # run folders in results/ are untracked
    return {
        "git_commit": _git("rev-parse", "HEAD"),
        "git_dirty": bool(status) if status is not None else None,
        "command": command_line(),
    }


def collect(device: str, measured_on: dict | None = None) -> dict:
    """Everything env.json records about where and how a run happened (except timings); `measured_on` is
    `machine(device)` as a remote worker found it, when the points are measured elsewhere."""
    return {**(measured_on if measured_on is not None else machine(device)), **provenance()}


def _no_gpu() -> tuple[None, str | None]:
    """No GPU is visible to torch; NVML is still asked so its answer is on record."""
    nvml, error = _nvml()
    return None, error if nvml is None else "NVML initialised but torch sees no CUDA device"
