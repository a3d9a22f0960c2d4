"""The child-process side of a sweep: calibrate the device, then measure points one at a time.

A worker runs in a process of its own (spawned by `bench.measuring.runner`) so that a hang, a crash or a
poisoned CUDA context costs one point, not the sweep. Everything that can fail inside a point becomes
a row with a status and a reason.
"""

from __future__ import annotations

import datetime as dt
import functools
import gc
import hashlib
import inspect
import sys
from types import ModuleType

import torch

import mixers
from bench.measuring import measure
from bench.measuring.env import energy_counter
from bench.measuring.plan import DTYPES, Point

_MiB = 2**20


@functools.lru_cache(maxsize=None)
def source_hash(cls: type) -> str:
    """Short hash of the source of a mixer's module and of the private `mixers._*` helpers it uses."""
    module = sys.modules[cls.__module__]
    used: dict[str, ModuleType] = {module.__name__: module}
    for value in vars(module).values():
        name = value.__name__ if inspect.ismodule(value) else getattr(value, "__module__", None)
        if isinstance(name, str) and name.startswith("mixers._") and name in sys.modules:
            used[name] = sys.modules[name]
    digest = hashlib.sha256()
    for name in sorted(used):
        try:
            digest.update(inspect.getsource(used[name]).encode())
        except (OSError, TypeError):
            digest.update(name.encode())
    return digest.hexdigest()[:12]


def prepare_call(point: Point, generator_seed: int = 0):
    """Build the mixer and inputs of `point`; return (call, module, x): `call()` runs one step.

    Forward is one forward call (the caller runs it under `torch.inference_mode()`); train is forward
    plus backward to the input and every parameter, with no gradient accumulation.
    """
    dtype = DTYPES[point.dtype]
    module = mixers.build(point.mixer, point.seq_len, point.dim, dtype=dtype, device=point.device)
    generator = torch.Generator(device=point.device).manual_seed(generator_seed)
    x = torch.randn(point.batch, point.seq_len, point.dim, generator=generator, dtype=dtype, device=point.device)
    if point.mode == "forward":
        module.eval()
        return (lambda: module(x)), module, x
    module.train()
    x.requires_grad_(True)
    inputs = [x, *(p for p in module.parameters() if p.requires_grad)]
    grad_out = torch.randn(point.batch, point.seq_len, point.dim, generator=generator, dtype=dtype,
                           device=point.device)

    def train_step():
        return torch.autograd.grad(module(x), inputs, grad_out)

    return train_step, module, x


def calibrate(device: str, dtypes: list[str], budget_s: float = 0.5) -> dict:
    """Measure this device's ceilings: copy bandwidth, and matrix-product FLOP/s per dtype."""
    policy = measure.TimingPolicy(warmup_calls=2, min_reps=5, budget_s=budget_s)
    numel = (256 if device == "cuda" else 32) * _MiB  # float32 elements: 1 GiB on a GPU, 128 MiB on a CPU
    src = torch.rand(numel, device=device)
    dst = torch.empty_like(src)
    copy = measure.time_call(lambda: dst.copy_(src), device, policy)
    bandwidth_gbps = 2 * src.numel() * src.element_size() / (copy.median_ms * 1e-3) / 1e9
    del src, dst
    peaks = {}
    size = 8192 if device == "cuda" else 1024
    for name in dtypes:
        dtype = DTYPES[name]
        if device == "cpu" and dtype not in mixers.CPU_DTYPES:
            continue
        a = torch.randn(size, size, device=device, dtype=dtype)
        b = torch.randn(size, size, device=device, dtype=dtype)
        matmul = measure.time_call(lambda: a @ b, device, policy)
        peaks[name] = 2 * size**3 / (matmul.median_ms * 1e-3) / 1e12
        del a, b
    if device == "cuda":
        torch.cuda.empty_cache()
    return {"peak_bandwidth_gbps": bandwidth_gbps, "peak_tflops": peaks,
            "calibration": f"copy of {numel * 4 / 2**30:.3g} GiB (read + write counted); "
                           f"{size}x{size}x{size} matrix product per dtype; median of repetitions"}


def _is_oom(exc: BaseException) -> bool:
    if isinstance(exc, (torch.cuda.OutOfMemoryError, MemoryError)):
        return True
    text = str(exc)
    return isinstance(exc, RuntimeError) and ("out of memory" in text or "can't allocate memory" in text)


def _is_fatal_cuda(exc: BaseException) -> bool:
    """A CUDA error after which this process's context cannot be trusted (illegal access, assert...)."""
    return isinstance(exc, RuntimeError) and ("CUDA error" in str(exc) or "CUDA kernel errors" in str(exc))


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}"[:500]


def compute_dtype_name(point: Point) -> str:
    """The dtype that actually computes at `point`, as its mixer states it ("float32" for a bf16 FFT)."""
    dtype = mixers.get(point.mixer).compute_dtype(DTYPES[point.dtype], point.device, seq_len=point.seq_len,
                                                  dim=point.dim)
    return str(dtype).removeprefix("torch.")


def base_row(point: Point, device_name: str) -> dict:
    """The columns every row has, whatever its status."""
    cls = mixers.get(point.mixer) if point.mixer in mixers.available() else None
    return {**point.as_dict(), "compute_dtype": compute_dtype_name(point) if cls else "",
            "device_name": device_name, "source_hash": source_hash(cls) if cls else "",
            "measured_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")}


def metrics(point: Point, time_ms: float, peaks: dict) -> dict:
    """Throughput, achieved rates and the fraction of the roofline for a point measured at `time_ms`."""
    cls = mixers.get(point.mixer)
    dtype = DTYPES[point.dtype]
    cost = cls.cost(point.seq_len, point.dim, point.batch, dtype, point.mode)
    seconds = time_ms * 1e-3
    peak_flops = (peaks.get("peak_tflops") or {}).get(compute_dtype_name(point), 0.0) * 1e12
    peak_bandwidth = (peaks.get("peak_bandwidth_gbps") or 0.0) * 1e9
    flops_floor = cost.flops / peak_flops if peak_flops and cost.flops else 0.0
    bytes_floor = cost.bytes_min / peak_bandwidth if peak_bandwidth else 0.0
    floor = max(flops_floor, bytes_floor)
    return {
        "tokens_per_s": point.batch * point.seq_len / seconds,
        "flops": cost.flops,
        "tflops": cost.flops / seconds / 1e12 if cost.flops else None,
        "bytes_min": cost.bytes_min,
        "gbps": cost.bytes_min / seconds / 1e9,
        "roofline_frac": floor / seconds if floor else None,
        "bound": ("flops" if flops_floor > bytes_floor else "bytes") if floor else "",
    }


def measure_point(point: Point, policy: measure.TimingPolicy, peaks: dict, device_name: str,
                  energy=None) -> dict:
    """Measure one point; never raises: a failure is a row with its status and reason."""
    row = base_row(point, device_name)
    cls = mixers.get(point.mixer)
    support = cls.supports(point.seq_len, point.dim, DTYPES[point.dtype], point.device)
    if not support:
        return {**row, "status": "unsupported", "error": support.reason}
    call = module = x = None
    try:
        call, module, x = prepare_call(point)
        context = torch.inference_mode if point.mode == "forward" else torch.enable_grad
        with context():
            out = call()
            produced = out if isinstance(out, torch.Tensor) else out[0]
            if produced.dtype != x.dtype or produced.shape != x.shape:
                return {**row, "status": "error", "error": f"mixer returned {tuple(produced.shape)} "
                        f"{produced.dtype} for input {tuple(x.shape)} {x.dtype}"}
            del out, produced
            timing = measure.time_call(call, point.device, policy, energy)
            memory = measure.peak_memory(call, point.device)
        return {**row, "status": "ok", "time_ms": timing.median_ms, "time_ms_p20": timing.p20_ms,
                "time_ms_p80": timing.p80_ms, "reps": timing.reps, "peak_mem_mb": memory.peak_mb,
                "reserved_mem_mb": memory.reserved_mb, "energy_mj": timing.energy_mj,
                **metrics(point, timing.median_ms, peaks), "error": ""}
    except BaseException as exc:  # noqa: BLE001 - a point's failure is data
        if isinstance(exc, KeyboardInterrupt):
            raise
        status = "oom" if _is_oom(exc) else "error"
        return {**row, "status": status, "error": _one_line(exc), "_fatal": _is_fatal_cuda(exc)}
    finally:
        del call, module, x
        mixers.clear_caches()
        gc.collect()
        if point.device == "cuda":
            torch.cuda.empty_cache()


def serve(conn, device: str, device_name: str, policy: measure.TimingPolicy) -> None:
    """The worker loop: answer ('calibrate', dtypes) and ('point', point, peaks) until ('stop',)."""
    energy = energy_counter() if device == "cuda" else None
    conn.send(("ready",))
    while True:
        message = conn.recv()
        if message[0] == "stop":
            return
        if message[0] == "calibrate":
            conn.send(("calibration", calibrate(device, message[1])))
            continue
        point, peaks = Point(**message[1]), message[2]
        row = measure_point(point, policy, peaks, device_name, energy)
        fatal = row.pop("_fatal", False)
        conn.send(("row", row, fatal))
        if fatal:
            return  # the parent starts a fresh worker with a clean CUDA context
