"""One timing point -> its raw measurements: build the step, check its output, time it, read its memory; and the
device's ceilings (`calibrate`). Everything that can fail inside a point becomes a row with a status and a reason.

The parent turns the raw time into throughput and the fraction of the roofline (`metrics`) once, after pooling
the point's rounds (`bench.measuring.rounds`).
"""

from __future__ import annotations

import gc
import os
from typing import Callable, NamedTuple

import torch
import torch.nn.functional as F

import mixers
from bench import models
from bench.measuring import measure
from bench.measuring.points import Point
from bench.measuring.fingerprint import tf32_settings
from bench.measuring.rows import Reply, failure, kernel_of, now, parses, point_hash

TORCH_DTYPES = {"float32": torch.float32, "float64": torch.float64, "bfloat16": torch.bfloat16,
                "float16": torch.float16}
_MiB = 2**20
ORDER_STATISTICS = 129  # per round: the sketch of its samples that rounds are pooled from
LEFT_ALLOCATED_BYTES = 64 * _MiB  # on CUDA, more than this still allocated after a point: collect garbage


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
        return mixers.build(point.mixer, point.seq_len, point.dim, causal=point.causal)
    if point.scope == "block":
        return models.Block(point.mixer, point.seq_len, point.dim, point.ffn, norm=point.norm, causal=point.causal)
    return models.Encoder(point.mixer, point.seq_len, point.dim, point.layers, point.ffn, point.vocab,
                          norm=point.norm, head="mlm" if point.vocab else "none", causal=point.causal)


def prepare_call(point: Point, generator_seed: int = 0) -> Prepared:
    """Build the module and inputs of `point`.

    Forward is one forward call (the caller runs it under `torch.inference_mode()`). Train at mixer
    scope is forward plus backward to the input and every parameter (no optimizer, no accumulation);
    at block and encoder scope it is a whole training step: forward, backward and an AdamW step (an
    encoder's loss is the masked-LM cross-entropy over its head's positions).
    """
    dtype = TORCH_DTYPES[point.dtype]
    with torch.device(point.device):  # parameters are initialised where they run: no host RNG, no copy
        if point.scope == "mixer":
            module = mixers.build(point.mixer, point.seq_len, point.dim, dtype=dtype, device=point.device,
                                  causal=point.causal)
        else:
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
    """Measure this device's ceilings: copy bandwidth, and matrix-product FLOP/s per dtype.

    A ceiling is the fastest repetition, not the median: it is what the device did at its best, so a mixer
    timed by its median stays at or below 1.0 of it unless its own kernel is faster than the product's."""
    policy = measure.TimingPolicy(warmup_calls=2, min_reps=5, budget_s=budget_s)
    numel = (256 if device == "cuda" else 32) * _MiB  # float32 elements: 1 GiB on a GPU, 128 MiB on a CPU
    src = torch.rand(numel, device=device)
    dst = torch.empty_like(src)
    copy = measure.time_call(lambda: dst.copy_(src), device, policy)
    bandwidth_gbps = 2 * src.numel() * src.element_size() / (copy.samples_ms[0] * 1e-3) / 1e9
    del src, dst
    peaks = {}
    size = 8192 if device == "cuda" else 2048  # large enough that no mixer's products beat the ceiling (1024 did)
    for name in dtypes:
        dtype = TORCH_DTYPES[name]
        if device == "cpu" and dtype not in mixers.CPU_DTYPES:
            continue
        a = torch.randn(size, size, device=device, dtype=dtype)
        b = torch.randn(size, size, device=device, dtype=dtype)
        matmul = measure.time_call(lambda: a @ b, device, policy)
        peaks[name] = 2 * size**3 / (matmul.samples_ms[0] * 1e-3) / 1e12
        del a, b
    if device == "cuda":
        torch.cuda.empty_cache()
    return {"peak_bandwidth_gbps": bandwidth_gbps, "peak_tflops": peaks,
            "calibration": f"copy of {numel * 4 / 2**30:.3g} GiB (read + write counted); "
                           f"{size}x{size}x{size} matrix product per dtype; the fastest of the repetitions"}


# --- rows ---------------------------------------------------------------------------------------------

def _options(point: Point) -> dict:
    return dict(scope=point.scope, layers=point.layers, ffn=point.ffn, vocab=point.vocab,
                norm=point.norm or "post", head="mlm" if point.vocab else "none")


def cost_parts(point: Point) -> list:
    """The analytic parts (FLOPs, bytes, parameters, computing dtype) of one call at `point`."""
    return models.parts(point.scope, point.mixer, point.seq_len, point.dim, point.batch, TORCH_DTYPES[point.dtype],
                        point.mode, point.device, **{k: v for k, v in _options(point).items() if k != "scope"},
                        mixer_options={"causal": True} if point.causal else None)


def compute_dtype_name(point: Point) -> str:
    """The dtype that actually computes at `point` ("float32" for a bf16 FFT; "bfloat16+float32" for a
    model whose FFT mixers upcast while its matrix products do not, the larger share of FLOPs first)."""
    if point.scope == "mixer" and "+" not in point.mixer:
        dtype = mixers.get(point.mixer).compute_dtype(TORCH_DTYPES[point.dtype], point.device, seq_len=point.seq_len,
                                                      dim=point.dim)
        return str(dtype).removeprefix("torch.")
    flops: dict[str, int] = {}
    for part in cost_parts(point):
        name = str(part.compute_dtype).removeprefix("torch.")
        flops[name] = flops.get(name, 0) + part.flops
    return "+".join(sorted(flops, key=lambda name: -flops[name]))


def refusal(point: Point) -> str | None:
    """Why `point` cannot run, or None."""
    if point.batch < 1:
        return (f"{point.batching} per batch is fewer than one sequence of {point.seq_len} tokens; nothing was "
                f"measured at this length")
    layout = models.parse_layout(point.mixer)
    if not layout.is_plain and point.scope != "encoder":
        return (f"a layout ({point.mixer}) arranges an encoder's layers; at {point.scope} scope give a mixer name")
    for name in layout.names:
        support = mixers.get(name).supports(point.seq_len, point.dim, TORCH_DTYPES[point.dtype], point.device,
                                            causal=point.causal)
        if not support:
            return support.reason
    return None


def base_row(point: Point, device_name: str) -> dict:
    """The columns every row has, whatever its status."""
    runnable = parses(point.mixer) and refusal(point) is None
    return {**point.as_dict(), "compute_dtype": compute_dtype_name(point) if runnable else "",
            "device_name": device_name, "source_hash": point_hash(point), "measured_at": now(),
            "load_avg": _load_average()}


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


def measure_point(point: Point, policy: measure.TimingPolicy, device_name: str, energy=None) -> Reply:
    """Measure one point; never raises: a failure is a row with its status and reason.

    An ok reply carries the raw time and memory in its row and the order statistics of its timed calls in
    `samples`, which the parent pools across rounds (and turns into throughput and roofline columns).
    """
    row = base_row(point, device_name)
    refused = refusal(point)
    if refused:
        return Reply({**row, "status": "unsupported", "error": refused})
    prepared, failed = None, True
    mixers.clear_caches()  # from here on the caches hold only what this point's mixer builds
    try:
        prepared = prepare_call(point)
        context = torch.inference_mode if point.mode == "forward" else torch.enable_grad
        with context():
            if point.mode == "forward":
                out = prepared.step()
                shape, dtype = prepared.expected
                if out.dtype != dtype or tuple(out.shape) != shape:
                    return Reply({**row, "status": "error", "error": f"{point.scope} returned {tuple(out.shape)} "
                                  f"{out.dtype}; expected {shape} {dtype}"})
                del out
            # the warm-up's first call builds any cached tables; they stay allocated, so the memory pass after it
            # leaves them out of the peak and they count below, as memory the mixer holds
            timing = measure.time_call(prepared.step, point.device, policy, energy)
            memory = measure.peak_memory(prepared.step, point.device)
        resident = measure.resident_mb(*prepared.holders, mixers.cached_tensors())
        failed = False
        return Reply({**row, "status": "ok", "time_ms": timing.median_ms, "time_ms_p20": timing.p20_ms,
                      "time_ms_p80": timing.p80_ms, "reps": timing.reps, "peak_mem_mb": memory.peak_mb,
                      "reserved_mem_mb": memory.reserved_mb, "resident_mem_mb": resident,
                      "energy_mj": timing.energy_mj, "kernel": kernel_of(prepared.module), "tf32": tf32_settings(),
                      "error": ""}, timing.order_statistics(ORDER_STATISTICS))
    except BaseException as exc:  # noqa: BLE001 - a point's failure is data
        if isinstance(exc, KeyboardInterrupt):
            raise
        return failure(row, exc)
    finally:
        del prepared
        mixers.clear_caches()
        # A point's objects hold no reference cycles, so dropping them frees their memory at once; a full
        # collection (~0.1 s with torch loaded) runs only after a failure, whose traceback keeps the point's frames
        # and tensors in a cycle, or on CUDA when memory is still allocated after the point is gone.
        if failed or (point.device == "cuda" and torch.cuda.memory_allocated() > LEFT_ALLOCATED_BYTES):
            gc.collect()
        if point.device == "cuda":
            torch.cuda.empty_cache()


def describe() -> str:
    """What a timed call in train mode is (`prepare_call`), for env.json."""
    return ("mixer scope: forward + backward to the input and parameters; block and encoder scope: forward + "
            "backward + an AdamW step (encoder loss: masked-LM cross-entropy)")
