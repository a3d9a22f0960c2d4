"""The environment fingerprint of a run: where it ran, on what, with which code.

GPU facts come from NVML (the `nvidia-ml-py` package, imported as `pynvml`). On a machine without an
NVIDIA driver NVML fails to initialise: that is recorded as `nvml_error`, never raised.
"""

from __future__ import annotations

import hashlib
import os
import platform
import socket
import subprocess
import sys
import uuid
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


def cuda_identity(index: int = 0) -> dict:
    """How NVML can find torch's CUDA device `index` in this process (an index after CUDA_VISIBLE_DEVICES): its
    UUID ("GPU-…" or "MIG-…") and PCI bus id, where this torch reports them (empty where it reports neither)."""
    try:
        props = torch.cuda.get_device_properties(index)
    except Exception:  # no CUDA, or no such device
        return {}
    identity = {}
    uuid = getattr(props, "uuid", None)
    if uuid is not None and str(uuid):
        text = str(uuid)
        identity["uuid"] = text if text.startswith(("GPU-", "MIG-")) else f"GPU-{text}"
    if getattr(props, "pci_bus_id", None) is not None:
        identity["pci_bus_id"] = (f"{getattr(props, 'pci_domain_id', 0) or 0:08x}:{props.pci_bus_id:02x}:"
                                  f"{getattr(props, 'pci_device_id', 0) or 0:02x}.0")
    return identity


def gpu_handle(index: int = 0):
    """(nvml, handle, identity) of torch's CUDA device `index` in this process, or (None, None, the reason).

    NVML numbers GPUs in PCI order and ignores CUDA_VISIBLE_DEVICES (a worker's mask, Ray's, SLURM's), so its
    index 0 is some other process's GPU as often as not: the handle is looked up by the device's UUID, else by
    its PCI bus id, both as torch reports them for the device this process computes on; never by index."""
    nvml, error = _nvml()
    if nvml is None:
        return None, None, error
    identity = cuda_identity(index)
    if not identity:
        return None, None, f"torch reports neither a UUID nor a PCI bus id for CUDA device {index}"
    failures = []
    for key, lookup in (("uuid", "nvmlDeviceGetHandleByUUID"), ("pci_bus_id", "nvmlDeviceGetHandleByPciBusId")):
        if key in identity:
            try:
                return nvml, getattr(nvml, lookup)(identity[key]), identity
            except Exception as exc:
                failures.append(f"{lookup}({identity[key]}): {type(exc).__name__}: {exc}")
    return None, None, "; ".join(failures)


def gpu_state(index: int = 0) -> tuple[dict | None, str | None]:
    """NVML facts of torch's CUDA device `index` (see `gpu_handle`): name, UUID, memory, driver, clocks, power
    limit, temperature."""
    nvml, handle, found = gpu_handle(index)
    if nvml is None:
        return None, found
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
        **found,
        "memory_total_mb": memory.total / 2**20 if memory else None,
        "driver": _text(_try(nvml.nvmlSystemGetDriverVersion)),
        **clocks,
        "power_limit_w": power_limit / 1000 if power_limit else None,
        "temperature_c": _try(nvml.nvmlDeviceGetTemperature, handle, nvml.NVML_TEMPERATURE_GPU),
        "throttle_reasons": _try(nvml.nvmlDeviceGetCurrentClocksEventReasons, handle),
    }
    return state, None


def energy_counter(index: int = 0):
    """A function returning the total energy in mJ of torch's CUDA device `index` (found as `gpu_handle` says),
    or None where NVML has no counter for it."""
    nvml, handle, _ = gpu_handle(index)
    if nvml is None:
        return None
    try:
        nvml.nvmlDeviceGetTotalEnergyConsumption(handle)
    except Exception:
        return None
    return lambda: float(nvml.nvmlDeviceGetTotalEnergyConsumption(handle))


def gpu_sampler(index: int = 0):
    """A function returning the SM clock (MHz) and temperature (°C) of torch's CUDA device `index` now, as
    {"sm_clock_mhz", "temp_c"} (None for what NVML does not say), or None where NVML cannot find the device."""
    nvml, handle, _ = gpu_handle(index)
    if nvml is None:
        return None
    return lambda: {"sm_clock_mhz": _try(nvml.nvmlDeviceGetClockInfo, handle, nvml.NVML_CLOCK_SM),
                    "temp_c": _try(nvml.nvmlDeviceGetTemperature, handle, nvml.NVML_TEMPERATURE_GPU)}


def tf32_settings() -> str:
    """This process's float32 matrix-product settings, compactly: whether cuBLAS and cuDNN may use TF32, and
    torch's float32 matmul precision, e.g. "matmul=0 cudnn=1 precision=highest" (the cuDNN flag covers
    convolutions: mamba's and hyena's float32 conv1d run as TF32 under torch's default)."""
    return (f"matmul={int(torch.backends.cuda.matmul.allow_tf32)} cudnn={int(torch.backends.cudnn.allow_tf32)} "
            f"precision={torch.get_float32_matmul_precision()}")


def machine_id() -> str:
    """A stable id of this machine: systemd's machine id (/etc/machine-id), else the host name and a network
    card's MAC address (`uuid.getnode`), hashed either way (systemd asks that its id not be shown as it is)."""
    for path in ("/etc/machine-id", "/var/lib/dbus/machine-id"):
        try:
            text = Path(path).read_text().strip()
        except OSError:
            continue
        if text:
            return hashlib.sha256(f"mixbench machine {text}".encode()).hexdigest()[:16]
    return hashlib.sha256(f"mixbench host {socket.gethostname()} {uuid.getnode():012x}".encode()).hexdigest()[:16]


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
        "tf32": tf32_settings(),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu": cpu_name(),
        "cpu_count": os.cpu_count(),
    }


def provenance() -> dict:
    """The code and the command a run comes from, and the machine that writes its folder (always this
    process's: the driver's); a folder resumes only on the machine that started it (`store.EnvRecord.open`)."""
    status = _git("status", "--porcelain", "--untracked-files=no")  # run folders in results/ are untracked
    return {
        "git_commit": _git("rev-parse", "HEAD"),
        "git_dirty": bool(status) if status is not None else None,
        "command": command_line(),
        "machine_id": machine_id(),
        "host": socket.gethostname(),
    }


def collect(device: str, measured_on: dict | None = None) -> dict:
    """Everything env.json records about where and how a run happened (except timings); `measured_on` is
    `machine(device)` as a remote worker found it, when the points are measured elsewhere."""
    return {**(measured_on if measured_on is not None else machine(device)), **provenance()}


def _no_gpu() -> tuple[None, str | None]:
    """No GPU is visible to torch; NVML is still asked so its answer is on record."""
    nvml, error = _nvml()
    return None, error if nvml is None else "NVML initialised but torch sees no CUDA device"
