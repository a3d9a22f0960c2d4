"""The child-process side of a sweep: calibrate the device, then measure points or train models, one at a time.

A worker runs in a process of its own (started by `bench.measuring.runner`, or a Ray actor of
`bench.measuring.ray_backend`) so that a hang, a crash or a poisoned CUDA context costs one point, not the
sweep; both answer messages with the same `Measurer.handle`. Everything that can fail inside a point becomes
a row with a status and a reason.
"""

from __future__ import annotations

import ctypes
import datetime as dt
import functools
import gc
import hashlib
import inspect
import os
import signal
import sys
from types import ModuleType
from typing import Callable, NamedTuple

import torch
import torch.nn.functional as F

import mixers
from bench import models
from bench.measuring import measure
from bench.measuring.env import energy_counter
from bench.measuring.plan import DTYPES, Point

_MiB = 2**20
# glibc serves allocations above its (moving) mmap threshold with fresh pages each call, so a process
# could fall into a slow mode for good (shared/notes/timing-noise.md); fixed thresholds remove that mode.
MALLOC_SETTINGS = {"M_MMAP_THRESHOLD": (-3, 32 * _MiB), "M_TRIM_THRESHOLD": (-1, 4 * 2**30 - 1)}
ORDER_STATISTICS = 129  # per round: the sketch of its samples that rounds are pooled from


def _module_source(module: ModuleType) -> str:
    try:
        return inspect.getsource(module)
    except (OSError, TypeError):
        return module.__name__


@functools.lru_cache(maxsize=None)
def source_hash(cls: type) -> str:
    """Short hash of the source of a mixer's module and of the `mixers.*` modules it uses, directly or through
    another (the `_cost`/`_cache`/`_spectral` helpers, a base class's module)."""
    used: dict[str, ModuleType] = {}
    pending = [sys.modules[cls.__module__]]
    while pending:
        module = pending.pop()
        used[module.__name__] = module
        for value in vars(module).values():
            name = value.__name__ if inspect.ismodule(value) else getattr(value, "__module__", None)
            if isinstance(name, str) and name.startswith("mixers.") and name in sys.modules and name not in used:
                pending.append(sys.modules[name])
    digest = hashlib.sha256()
    for name in sorted(used):
        digest.update(_module_source(used[name]).encode())
    return digest.hexdigest()[:12]


@functools.lru_cache(maxsize=None)
def package_hash(package: str) -> str:
    """Short hash of every module of an imported package (bench.models, bench.tasks, ...)."""
    digest = hashlib.sha256()
    for name in sorted(n for n in sys.modules if n == package or n.startswith(package + ".")):
        digest.update(_module_source(sys.modules[name]).encode())
    return digest.hexdigest()[:12]


def layout_hash(layout: str, *packages: str) -> str:
    """The source hash of a layout's mixers, plus the packages that build or feed the model around them."""
    parts = [source_hash(mixers.get(name)) for name in models.parse_layout(layout).names]
    parts += [package_hash(package) for package in packages]
    return parts[0] if len(parts) == 1 else hashlib.sha256("".join(parts).encode()).hexdigest()[:12]


def point_hash(point: Point) -> str:
    """What a point's row depends on: its mixers' sources, and the model code above mixer scope."""
    return layout_hash(point.mixer, *(() if point.scope == "mixer" else ("bench.models",)))


# --- building one step ------------------------------------------------------------------------------

class Prepared(NamedTuple):
    """One point, built: `step()` runs one call; `holders` own what stays allocated between calls."""

    step: Callable[[], object]
    module: torch.nn.Module
    inputs: torch.Tensor
    holders: tuple
    expected: tuple  # (shape, dtype) the forward output must have


def _model(point: Point) -> torch.nn.Module:
    if point.scope == "mixer":
        return mixers.build(point.mixer, point.seq_len, point.dim)
    if point.scope == "block":
        return models.Block(point.mixer, point.seq_len, point.dim, point.ffn, norm=point.norm)
    return models.Encoder(point.mixer, point.seq_len, point.dim, point.layers, point.ffn, point.vocab,
                          norm=point.norm, head="mlm" if point.vocab else "none")


def prepare_call(point: Point, generator_seed: int = 0) -> Prepared:
    """Build the module and inputs of `point`.

    Forward is one forward call (the caller runs it under `torch.inference_mode()`). Train at mixer
    scope is forward plus backward to the input and every parameter (no optimizer, no accumulation);
    at block and encoder scope it is a whole training step: forward, backward and an AdamW step (an
    encoder's loss is the masked-LM cross-entropy over its head's positions).
    """
    dtype = DTYPES[point.dtype]
    if point.scope == "mixer":
        module = mixers.build(point.mixer, point.seq_len, point.dim, dtype=dtype, device=point.device)
    else:
        with torch.device(point.device):
            module = _model(point).to(dtype=dtype)
    generator = torch.Generator(device=point.device).manual_seed(generator_seed)
    tokens_in = point.scope == "encoder" and point.vocab
    if tokens_in:
        x = torch.randint(point.vocab, (point.batch, point.seq_len), generator=generator, device=point.device)
    else:
        x = torch.randn(point.batch, point.seq_len, point.dim, generator=generator, dtype=dtype, device=point.device)
    if tokens_in:
        expected = ((point.batch, len(module.mlm_positions), point.vocab), dtype)
    else:
        expected = (tuple(x.shape), dtype)
    if point.mode == "forward":
        module.eval()
        return Prepared(lambda: module(x), module, x, (module, x), expected)
    module.train()
    params = [p for p in module.parameters() if p.requires_grad]
    if point.scope == "mixer":
        x.requires_grad_(True)
        grad_out = torch.randn(x.shape, generator=generator, dtype=dtype, device=point.device)
        inputs = [x, *params]
        return Prepared(lambda: torch.autograd.grad(module(x), inputs, grad_out), module, x, (module, x, grad_out),
                        expected)
    optimizer = torch.optim.AdamW(params, lr=1e-5)
    if tokens_in:
        targets = torch.randint(point.vocab, expected[0][:2], generator=generator, device=point.device)

        def loss_of(out):
            return F.cross_entropy(out.flatten(0, 1).float(), targets.flatten())
    else:
        grad_out = torch.randn(x.shape, generator=generator, dtype=dtype, device=point.device)
        if point.scope == "block":  # a layer inside a model passes the gradient on to the layers below
            x.requires_grad_(True)

        def loss_of(out):
            return (out * grad_out).sum()

    def train_step():
        loss = loss_of(module(x))
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        x.grad = None
        return loss

    return Prepared(train_step, module, x, (module, x, optimizer, *([grad_out] if not tokens_in else [targets])),
                    expected)


# --- the device's ceilings ----------------------------------------------------------------------------

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
    size = 8192 if device == "cuda" else 2048  # large enough that no mixer's products beat the ceiling (1024 did)
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


# --- rows ---------------------------------------------------------------------------------------------

def is_oom(exc: BaseException) -> bool:
    if isinstance(exc, (torch.cuda.OutOfMemoryError, MemoryError)):
        return True
    text = str(exc)
    return isinstance(exc, RuntimeError) and ("out of memory" in text or "can't allocate memory" in text)


def is_fatal_cuda(exc: BaseException) -> bool:
    """A CUDA error after which this process's context cannot be trusted (illegal access, assert...)."""
    return isinstance(exc, RuntimeError) and ("CUDA error" in str(exc) or "CUDA kernel errors" in str(exc))


def one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}"[:500]


def failure(exc: BaseException) -> dict:
    """The status, reason and fatal flag of a row for an exception raised while measuring or training."""
    return {"status": "oom" if is_oom(exc) else "error", "error": one_line(exc), "_fatal": is_fatal_cuda(exc)}


def _options(point: Point) -> dict:
    return dict(scope=point.scope, layers=point.layers, ffn=point.ffn, vocab=point.vocab,
                norm=point.norm or "post", head="mlm" if point.vocab else "none")


def cost_parts(point: Point) -> list:
    """The analytic parts (FLOPs, bytes, parameters, computing dtype) of one call at `point`."""
    return models.parts(point.scope, point.mixer, point.seq_len, point.dim, point.batch, DTYPES[point.dtype],
                        point.mode, point.device, **{k: v for k, v in _options(point).items() if k != "scope"})


def compute_dtype_name(point: Point) -> str:
    """The dtype that actually computes at `point` ("float32" for a bf16 FFT; "bfloat16+float32" for a
    model whose FFT mixers upcast while its matrix products do not, the larger share of FLOPs first)."""
    if point.scope == "mixer" and "+" not in point.mixer:
        dtype = mixers.get(point.mixer).compute_dtype(DTYPES[point.dtype], point.device, seq_len=point.seq_len,
                                                      dim=point.dim)
        return str(dtype).removeprefix("torch.")
    flops: dict[str, int] = {}
    for part in cost_parts(point):
        name = str(part.compute_dtype).removeprefix("torch.")
        flops[name] = flops.get(name, 0) + part.flops
    return "+".join(sorted(flops, key=lambda name: -flops[name]))


def _refusal(point: Point) -> str | None:
    """Why `point` cannot run, or None."""
    if point.batch < 1:
        return (f"{point.batching} per batch is fewer than one sequence of {point.seq_len} tokens; nothing was "
                f"measured at this length")
    layout = models.parse_layout(point.mixer)
    if not layout.is_plain and point.scope != "encoder":
        return (f"a layout ({point.mixer}) arranges an encoder's layers; at {point.scope} scope give a mixer name")
    for name in layout.names:
        support = mixers.get(name).supports(point.seq_len, point.dim, DTYPES[point.dtype], point.device)
        if not support:
            return support.reason
    return None


def base_row(point: Point, device_name: str) -> dict:
    """The columns every row has, whatever its status."""
    known = _parses(point.mixer)  # a plugin mixer that is gone since the point was planned is not
    runnable = known and _refusal(point) is None
    return {**point.as_dict(), "compute_dtype": compute_dtype_name(point) if runnable else "",
            "device_name": device_name, "source_hash": point_hash(point) if known else "",
            "measured_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
            "load_avg": _load_average()}


def _parses(text: str) -> bool:
    try:
        models.parse_layout(text)
        return True
    except models.LayoutError:
        return False


def _load_average() -> float | None:
    try:
        return os.getloadavg()[0]
    except OSError:
        return None


def metrics(point: Point, time_ms: float, peaks: dict) -> dict:
    """Throughput, achieved rates and the fraction of the roofline for a point measured at `time_ms`.

    The floor is summed over the point's parts (a mixer alone is one part), each part bounded by its
    own FLOPs at the peak of the dtype it computes in, or by its minimal bytes at the copy bandwidth.
    """
    parts = cost_parts(point)
    seconds = time_ms * 1e-3
    peak_tflops = peaks.get("peak_tflops") or {}
    peak_bandwidth = (peaks.get("peak_bandwidth_gbps") or 0.0) * 1e9
    flops_floor = bytes_floor = floor = 0.0
    for part in parts:
        peak_flops = peak_tflops.get(str(part.compute_dtype).removeprefix("torch."), 0.0) * 1e12
        part_flops = part.flops / peak_flops if peak_flops and part.flops else 0.0
        part_bytes = part.bytes_min / peak_bandwidth if peak_bandwidth else 0.0
        floor += max(part_flops, part_bytes)
        flops_floor += part_flops if part_flops >= part_bytes else 0.0
        bytes_floor += part_bytes if part_bytes > part_flops else 0.0
    flops = sum(part.flops for part in parts)
    bytes_min = sum(part.bytes_min for part in parts)
    return {
        "tokens_per_s": point.batch * point.seq_len / seconds,
        "flops": flops,
        "tflops": flops / seconds / 1e12 if flops else None,
        "bytes_min": bytes_min,
        "gbps": bytes_min / seconds / 1e9,
        "roofline_frac": floor / seconds if floor else None,
        "bound": ("flops" if flops_floor > bytes_floor else "bytes") if floor else "",
    }


def measure_point(point: Point, policy: measure.TimingPolicy, peaks: dict, device_name: str,
                  energy=None) -> dict:
    """Measure one point; never raises: a failure is a row with its status and reason.

    An ok row carries `_samples`, the order statistics of its timed calls, which the runner pools
    across rounds and does not write to results.csv.
    """
    row = base_row(point, device_name)
    refused = _refusal(point)
    if refused:
        return {**row, "status": "unsupported", "error": refused}
    prepared = None
    try:
        prepared = prepare_call(point)
        context = torch.inference_mode if point.mode == "forward" else torch.enable_grad
        with context():
            if point.mode == "forward":
                out = prepared.step()
                shape, dtype = prepared.expected
                if out.dtype != dtype or tuple(out.shape) != shape:
                    return {**row, "status": "error", "error": f"{point.scope} returned {tuple(out.shape)} "
                            f"{out.dtype}; expected {shape} {dtype}"}
                del out
            timing = measure.time_call(prepared.step, point.device, policy, energy)
            memory = measure.peak_memory(prepared.step, point.device)
        resident = measure.resident_mb(*prepared.holders)
        return {**row, "status": "ok", "time_ms": timing.median_ms, "time_ms_p20": timing.p20_ms,
                "time_ms_p80": timing.p80_ms, "reps": timing.reps, "peak_mem_mb": memory.peak_mb,
                "reserved_mem_mb": memory.reserved_mb, "resident_mem_mb": resident, "energy_mj": timing.energy_mj,
                **metrics(point, timing.median_ms, peaks), "error": "",
                "_samples": timing.order_statistics(ORDER_STATISTICS)}
    except BaseException as exc:  # noqa: BLE001 - a point's failure is data
        if isinstance(exc, KeyboardInterrupt):
            raise
        return {**row, **failure(exc)}
    finally:
        del prepared
        mixers.clear_caches()
        gc.collect()
        if point.device == "cuda":
            torch.cuda.empty_cache()


# --- the process ---------------------------------------------------------------------------------------

def configure_process(threads: int | None) -> dict:
    """Set this worker's thread count and allocator; returns what was set and what it sees, for env.json."""
    if threads:
        torch.set_num_threads(threads)
    settings = {"threads": torch.get_num_threads(), "pid": os.getpid(),
                "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES")}
    try:
        libc = ctypes.CDLL("libc.so.6")
        applied = {name: value for name, (code, value) in MALLOC_SETTINGS.items() if libc.mallopt(code, value) == 1}
        settings["allocator"] = ("glibc malloc, " + ", ".join(f"{k}={v}" for k, v in applied.items())
                                 + " (mallopt in each worker)") if applied else "glibc malloc, defaults"
    except (OSError, AttributeError):
        settings["allocator"] = "system default (no glibc mallopt here)"
    return settings


class Measurer:
    """One worker's state and its one way of answering a message, used by the local worker loop (`serve`) and
    by a Ray actor (`bench.measuring.ray_backend`) alike."""

    def __init__(self, device: str, device_name: str, policy: measure.TimingPolicy, threads: int | None = None):
        self.device, self.device_name, self.policy = device, device_name, policy
        self.settings = configure_process(threads)
        self.energy = energy_counter() if device == "cuda" else None
        if device != "cuda":  # the first dispatch mode now, not in a timeout (measure._dynamo_guard_once_loaded)
            measure.peak_memory(lambda: torch.ones(1) + 1, device)

    def handle(self, message: tuple) -> tuple:
        """The reply to ('calibrate', dtypes), ('point', point, peaks) or ('train', point): ('calibration', peaks)
        or ('row', row, fatal), where fatal says this process's CUDA context is poisoned and it must exit."""
        if message[0] == "calibrate":
            return ("calibration", calibrate(self.device, message[1]))
        if message[0] == "train":
            from bench.measuring import train

            row = train.train_point(train.TrainPoint(**message[1]), self.device_name)
        elif message[0] == "point":
            point, peaks = Point(**message[1]), message[2]
            row = measure_point(point, self.policy, peaks, self.device_name, self.energy)
        else:
            raise ValueError(f"unknown message {message[0]!r} (allowed: calibrate, point, train, stop)")
        fatal = row.pop("_fatal", False)
        return ("row", {**row, "_pid": os.getpid()}, fatal)


def serve(conn, device: str, device_name: str, policy: measure.TimingPolicy, threads: int | None = None) -> None:
    """The worker loop: answer messages (see `Measurer.handle`) through the pipe until ('stop',)."""
    # The parent owns interruption: Ctrl-C reaches the whole process group, and the parent stops its workers.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        measurer = Measurer(device, device_name, policy, threads)
        conn.send(("ready", measurer.settings))
        while True:
            message = conn.recv()
            if message[0] == "stop":
                return
            reply = measurer.handle(message)
            conn.send(reply)
            if reply[0] == "row" and reply[2]:
                return  # the parent starts a fresh worker with a clean CUDA context
    except (EOFError, BrokenPipeError, ConnectionResetError):
        return  # the parent is gone (killed or interrupted): nothing to report to, and nobody to tell
