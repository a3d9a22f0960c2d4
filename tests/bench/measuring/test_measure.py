"""Timing and memory measurement on known workloads."""

import subprocess
import sys
import time

import pytest
import torch

from bench.measuring import measure

MiB = 2**20


def test_quantile_interpolates():
    values = [1.0, 2.0, 3.0, 4.0, 5.0]
    assert measure.quantile(values, 0.5) == 3.0
    assert measure.quantile(values, 0.2) == pytest.approx(1.8)
    assert measure.quantile([7.0], 0.8) == 7.0


def test_time_call_measures_a_known_duration():
    policy = measure.TimingPolicy(warmup_calls=1, warmup_s=0.0, min_reps=5, budget_s=0.1)
    timing = measure.time_call(lambda: time.sleep(0.004), "cpu", policy)
    assert 4.0 <= timing.median_ms < 40.0  # sleep never returns early; a loaded machine may be late
    assert timing.p20_ms <= timing.median_ms <= timing.p80_ms
    assert timing.reps >= 5


def test_time_call_never_times_the_first_call():
    calls = []

    def first_call_is_slow():
        calls.append(None)
        if len(calls) == 1:
            time.sleep(0.2)

    timing = measure.time_call(first_call_is_slow, "cpu", measure.TimingPolicy(warmup_calls=1, warmup_s=0.0,
                                                                              min_reps=3, budget_s=0.01))
    assert timing.median_ms < 100 and timing.p80_ms < 100


def test_time_call_stops_at_the_budget_for_slow_calls():
    policy = measure.TimingPolicy(warmup_calls=1, warmup_s=0.0, min_reps=3, budget_s=0.05, max_reps=1000)
    timing = measure.time_call(lambda: time.sleep(0.02), "cpu", policy)
    assert 3 <= timing.reps <= 10


def warm_up_calls(call_s: float, policy: measure.TimingPolicy) -> tuple[int, float]:
    calls = []
    start = time.perf_counter()
    measure.warm_up(lambda: calls.append(time.sleep(call_s)), torch.device("cpu"), policy)
    return len(calls), time.perf_counter() - start


def test_warm_up_is_sized_to_the_call():
    policy = measure.TimingPolicy(warmup_calls=1, warmup_s=0.05, warmup_max_calls=1000)
    assert warm_up_calls(0.2, policy)[0] == 1  # a slow call: once, not three times
    calls, seconds = warm_up_calls(0.0, policy)
    assert calls == 1000 or seconds >= 0.05  # a fast one: for warmup_s, at most warmup_max_calls
    calls, seconds = warm_up_calls(0.02, policy)
    assert calls <= 3 and seconds >= 0.05  # 20 ms calls: until 50 ms have passed
    assert warm_up_calls(0.0, measure.TimingPolicy(warmup_calls=1, warmup_s=10.0, warmup_max_calls=7))[0] == 7
    assert warm_up_calls(0.05, measure.TimingPolicy(warmup_calls=2, warmup_s=0.0))[0] == 2  # the least it makes


def test_peak_memory_counts_exactly_what_the_call_allocates():
    numel = 1 << 20

    def allocate_then_free():
        scratch = torch.ones(numel)  # 4 MiB, freed before returning
        result = scratch * 2  # 4 MiB, returned
        del scratch
        return result + 1  # 4 MiB more while `result` is alive: peak 12 MiB? no, `scratch` died first

    memory = measure.peak_memory(allocate_then_free, "cpu")
    # scratch (4) + result (4) alive together, then scratch dies, then result + 1 (4): peak 8 MiB
    assert memory.peak_mb == pytest.approx(8.0)
    assert "dispatcher" in memory.method


@pytest.mark.parametrize("seq_len", [64, 128, 256])
def test_peak_memory_grows_as_the_allocation_says(seq_len):
    x = torch.randn(2, seq_len, 32)
    memory = measure.peak_memory(lambda: torch.fft.rfft(x, dim=1).real.contiguous(), "cpu")
    complex_bytes = 2 * (seq_len // 2 + 1) * 32 * 8  # the complex rfft output, alive with its real copy
    real_bytes = 2 * (seq_len // 2 + 1) * 32 * 4
    assert memory.peak_mb * MiB == pytest.approx(complex_bytes + real_bytes)


def test_inputs_allocated_before_the_call_do_not_count():
    x = torch.randn(1 << 20)
    memory = measure.peak_memory(lambda: x.add_(1), "cpu")  # in place: nothing new
    assert memory.peak_mb == 0


MEMORY_WITH_AND_WITHOUT_DYNAMO = """
import sys, torch
from bench.measuring import measure
def call(f):
    return measure.peak_memory(lambda: f(torch.ones(1 << 18)), "cpu").peak_mb
eager = call(lambda x: x * 2 + 1)
assert "torch._dynamo" not in sys.modules, "the first dispatch mode imported torch._dynamo"
compiled = call(torch.compile(lambda x: x * 2 + 1, backend="eager"))
assert "torch._dynamo" in sys.modules
print(eager, compiled, call(lambda x: x * 2 + 1))
"""


def test_cpu_memory_is_measured_without_importing_dynamo_and_alike_once_something_compiles():
    # torch wraps a dispatch mode in a guard that imports torch._dynamo (seconds) on its first call; ours runs the
    # mode unguarded until something has imported it, then guarded (a compiled call under the mode)
    done = subprocess.run([sys.executable, "-c", MEMORY_WITH_AND_WITHOUT_DYNAMO], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    eager, compiled, eager_again = map(float, done.stdout.split())
    assert eager == eager_again == compiled == 3.0  # the 1 MiB input, x * 2 and its + 1 alive together


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_peak_memory_counts_a_known_allocation():
    memory = measure.peak_memory(lambda: torch.empty(64 * MiB, dtype=torch.uint8, device="cuda"), "cuda")
    assert memory.peak_mb == pytest.approx(64.0)
    timing = measure.time_call(lambda: torch.cuda._sleep(1_000_000), "cuda",
                               measure.TimingPolicy(min_reps=5, budget_s=0.1))
    assert timing.median_ms > 0
