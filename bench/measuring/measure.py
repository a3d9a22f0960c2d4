"""Timing, peak memory and energy of one call, taken the way the field learned to take them.

- GPU time comes from CUDA events around each call, after a warm-up that also builds cuFFT plans and
  cuBLAS handles; the first call is never timed; an optional L2 flush runs outside the timed region.
- CPU time comes from `perf_counter` around each call, under the same scheme.
- Repetitions continue until the spread (p80 - p20) / median is small or the time budget runs out;
  the median and the p20/p80 spread are reported.
- Peak memory is measured in a pass of its own (timing and memory tracking disturb each other).
"""

from __future__ import annotations

import sys
import time
import weakref
from dataclasses import dataclass
from typing import Callable

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten


@dataclass(frozen=True)
class Timing:
    median_ms: float
    p20_ms: float
    p80_ms: float
    reps: int
    energy_mj: float | None = None  # per call, from NVML's energy counter where the GPU has one
    samples_ms: tuple[float, ...] = ()  # every timed call, ascending

    def order_statistics(self, count: int = 129) -> list[float]:
        """`count` evenly spaced order statistics of the samples (all of them when there are fewer).

        Rounds keep these instead of every sample: pooled with weight reps / count each, their
        median is the median of all samples to within one step of the sketch.
        """
        if len(self.samples_ms) <= count:
            return list(self.samples_ms)
        return [quantile(list(self.samples_ms), i / (count - 1)) for i in range(count)]


@dataclass(frozen=True)
class Memory:
    peak_mb: float  # peak bytes allocated during the call, minus what was allocated before it
    reserved_mb: float | None  # the caching allocator's reserved peak (CUDA only)
    method: str


@dataclass(frozen=True)
class TimingPolicy:
    """How long to warm up and how many repetitions to take.

    The warm-up is sized to the point: at least `warmup_calls` calls (the first call of a point builds plans,
    handles and cached tables and is never timed), then calls until `warmup_s` has passed (clocks ramp) or
    `warmup_max_calls` were made, whichever comes first. A call slower than `warmup_s` is warmed up once, not
    three times.
    """

    warmup_calls: int = 1
    warmup_s: float = 0.025  # 25 ms of calls, as triton's do_bench
    warmup_max_calls: int = 1000
    min_reps: int = 10
    max_reps: int = 10_000
    budget_s: float = 1.0  # stop adding repetitions after this much measured time...
    target_spread: float = 0.05  # ...or as soon as (p80 - p20) / median is below this
    flush_l2: bool = False


def synchronize(device: torch.device | str) -> None:
    """Wait for all queued work on `device` (a no-op on CPU)."""
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize(device)


def quantile(sorted_values: list[float], q: float) -> float:
    """Linear-interpolated quantile of an ascending list (q in [0, 1])."""
    if not sorted_values:
        raise ValueError("quantile of no values")
    pos = q * (len(sorted_values) - 1)
    lo = int(pos)
    hi = min(lo + 1, len(sorted_values) - 1)
    return sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (pos - lo)


def spread(samples_ms: list[float]) -> float:
    """(p80 - p20) / median of the samples."""
    ordered = sorted(samples_ms)
    median = quantile(ordered, 0.5)
    return (quantile(ordered, 0.8) - quantile(ordered, 0.2)) / median if median > 0 else 0.0


class _L2Flusher:
    """Writes a buffer twice the size of the L2 cache so the next call starts cold."""

    def __init__(self, device: torch.device):
        l2_bytes = getattr(torch.cuda.get_device_properties(device), "L2_cache_size", 64 << 20) or (64 << 20)
        self.buffer = torch.empty(2 * l2_bytes, dtype=torch.uint8, device=device)

    def __call__(self) -> None:
        self.buffer.zero_()


def warm_up(fn: Callable[[], object], device: torch.device, policy: TimingPolicy = TimingPolicy()) -> None:
    """Call `fn` `policy.warmup_calls` times, then on until `policy.warmup_s` has passed or
    `policy.warmup_max_calls` calls were made, whichever comes first (plans, handles, clocks)."""
    calls, start = 0, time.perf_counter()
    while calls < policy.warmup_calls or (time.perf_counter() - start < policy.warmup_s
                                          and calls < policy.warmup_max_calls):
        fn()
        calls += 1
        synchronize(device)


def time_call(fn: Callable[[], object], device: torch.device | str,
              policy: TimingPolicy = TimingPolicy(), energy_counter: Callable[[], float | None] | None = None
              ) -> Timing:
    """Time `fn()` on `device`: warm up, then repeat until the spread is small or the budget is spent."""
    device = torch.device(device)
    warm_up(fn, device, policy)
    flush = _L2Flusher(device) if policy.flush_l2 and device.type == "cuda" else None
    samples: list[float] = []
    energy_start = energy_counter() if energy_counter else None
    wall_start = time.perf_counter()
    round_size = 1
    while len(samples) < policy.max_reps:
        samples.extend(_timed_round(fn, device, round_size, flush))
        enough = len(samples) >= policy.min_reps
        if enough and (spread(samples) <= policy.target_spread or sum(samples) / 1e3 >= policy.budget_s):
            break
        if time.perf_counter() - wall_start >= 2 * policy.budget_s and len(samples) >= 3:
            break  # very slow calls: a few repetitions are all the budget allows
        round_size = min(2 * round_size, 64, policy.max_reps - len(samples))
    energy_mj = None
    if energy_start is not None:
        energy_end = energy_counter()
        if energy_end is not None and energy_end > energy_start:
            energy_mj = (energy_end - energy_start) / len(samples)
    ordered = sorted(samples)
    return Timing(quantile(ordered, 0.5), quantile(ordered, 0.2), quantile(ordered, 0.8), len(samples), energy_mj,
                  tuple(ordered))


def _timed_round(fn, device: torch.device, count: int, flush) -> list[float]:
    if device.type == "cuda":
        events = [(torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True))
                  for _ in range(count)]
        for start, end in events:
            if flush is not None:
                flush()
            start.record()
            fn()
            end.record()
        torch.cuda.synchronize(device)
        return [start.elapsed_time(end) for start, end in events]
    samples = []
    for _ in range(count):
        start = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - start) * 1e3)
    return samples


class _LiveTensorBytes(TorchDispatchMode):
    """Tracks the bytes of tensor storages created by operators and still alive; keeps the peak.

    Storages are counted once (views share them) and released through a weak-reference finaliser
    when the storage dies. Scratch memory that a library allocates outside PyTorch tensors (for
    example inside an FFT or BLAS call) is not seen.
    """

    def __init__(self):
        super().__init__()
        self.live_bytes = 0
        self.peak_bytes = 0
        self._sizes: dict[int, int] = {}

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        inputs = {item.untyped_storage().data_ptr() for item in tree_flatten((args, kwargs))[0]
                  if isinstance(item, torch.Tensor)}
        for item in tree_flatten(out)[0]:
            if isinstance(item, torch.Tensor) and item.untyped_storage().data_ptr() not in inputs:
                self._track(item.untyped_storage())  # in-place and out= results are not new memory
        return out

    def _track(self, storage) -> None:
        key, nbytes = storage.data_ptr(), storage.nbytes()
        if nbytes == 0 or key in self._sizes:
            return
        self._sizes[key] = nbytes
        self.live_bytes += nbytes
        self.peak_bytes = max(self.peak_bytes, self.live_bytes)
        weakref.finalize(storage, self._release, key)

    def _release(self, key: int) -> None:
        self.live_bytes -= self._sizes.pop(key, 0)


def _dynamo_guard_once_loaded(method):
    """What the torch._disable_dynamo wrapper that TorchDispatchMode puts around `method` should call.

    That wrapper imports torch._dynamo on its first call (about 2 s of one core here, in every worker), only to keep
    torch.compile from tracing into the mode. Until something has imported torch._dynamo nothing can trace, so this
    calls the method itself; from then on it calls it guarded, as torch would have. The wrapper reads what to call
    from the method's `__dynamo_disable` (torch/_compile.py); where a torch version does not, it imports as before.
    """
    guarded = None

    def call(*args, **kwargs):
        nonlocal guarded
        if guarded is None and "torch._dynamo" in sys.modules:
            guarded = sys.modules["torch._dynamo"].disable(method, recursive=True)
        return (guarded or method)(*args, **kwargs)

    return call


_dispatch = getattr(_LiveTensorBytes.__torch_dispatch__, "__wrapped__", None)
if _dispatch is not None:
    _dispatch.__dynamo_disable = _dynamo_guard_once_loaded(_dispatch)


CPU_MEMORY_METHOD = "live tensor bytes at the dispatcher (excludes library scratch)"
CUDA_MEMORY_METHOD = "torch.cuda max_memory_allocated during the call minus allocated before"


def resident_mb(*holders) -> float:
    """MiB held across calls by tensors, modules and optimizers (parameters, gradients, buffers, state),
    and by lists or tuples of them (pass `mixers.cached_tensors()` for the tables mixers cache).

    Each storage counts once, however many tensors view it or holders name it. This is the memory
    `peak_memory` leaves out because it was allocated before the call.
    """
    storages: dict[tuple, int] = {}

    def add(item) -> None:
        if isinstance(item, torch.Tensor):
            storage = item.untyped_storage()
            storages[(item.device, storage.data_ptr())] = storage.nbytes()
            if item.grad is not None:
                add(item.grad)
        elif isinstance(item, torch.nn.Module):
            for tensor in (*item.parameters(), *item.buffers()):
                add(tensor)
        elif isinstance(item, torch.optim.Optimizer):
            for state in item.state.values():
                for value in tree_flatten(state)[0]:
                    add(value)
        elif isinstance(item, (list, tuple)):
            for value in item:
                add(value)

    for holder in holders:
        add(holder)
    return sum(storages.values()) / 2**20


def peak_memory(fn: Callable[[], object], device: torch.device | str) -> Memory:
    """Peak memory of one call of `fn()` beyond what was allocated before it, in a pass of its own.

    The result of `fn()` is held until the peak is read, so an output counts towards the peak.
    """
    device = torch.device(device)
    if device.type == "cuda":
        synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        before = torch.cuda.memory_allocated(device)
        result = fn()
        synchronize(device)
        peak = torch.cuda.max_memory_allocated(device) - before
        reserved = torch.cuda.max_memory_reserved(device)
        del result
        return Memory(peak / 2**20, reserved / 2**20, CUDA_MEMORY_METHOD)
    tracker = _LiveTensorBytes()
    with tracker:
        result = fn()
    del result
    return Memory(tracker.peak_bytes / 2**20, None, CPU_MEMORY_METHOD)


def describe(policy: TimingPolicy, device: str, rounds: int, timeout_s: float) -> dict:
    """How a sweep times and pools its points, for env.json."""
    return {"budget_s": policy.budget_s, "min_reps": policy.min_reps, "timeout_s": timeout_s,
            "flush_l2": policy.flush_l2, "rounds": rounds,
            "statistic": "median, p20, p80 of the per-call times of every round; lo/hi: the lowest and highest round "
                         "medians",
            "timer": "CUDA events" if device == "cuda" else "time.perf_counter"}


def memory_method(device: str) -> str:
    return CUDA_MEMORY_METHOD if device == "cuda" else CPU_MEMORY_METHOD
