"""pytest-benchmark suite: every registered mixer, forward and train, at one representative point.

It answers "did my change make a mixer slower?" (`make bench-pytest`, `make bench-baseline`,
`make bench-compare`); `mixbench sweep` answers how mixers compare across lengths. Under a plain
`pytest` timing is off and each test runs its step once and checks the output.

The point per device:
- CPU: seq_len 256, dim 128, batch 1, float32 (the smallest point of the `cpu` sweep preset);
- CUDA: seq_len 4096, dim 768, batch 8, bfloat16 (a point of the `paper` preset: FNet's GPU setting,
  BERT-base width, long enough that attention's n^2 shows).
The make targets time the CPU with one thread: on a shared machine two threads waiting on each other
are far noisier than one (see the Makefile).

A timed call is one step followed by a device synchronize, so GPU time is the kernels' time and not
the launch queue's; with the host waiting on every call, launch latency is included, which at these
sizes is small. Warm-up calls (which build cuFFT plans and cuBLAS handles) run before the timings;
peak memory is measured in a pass of its own and kept in `extra_info`.
"""

from __future__ import annotations

import pytest
import torch

import mixers
from bench.measuring import measure
from bench.measuring.fingerprint import device_facts
from bench.measuring.plan import resolve_device
from bench.measuring.points import MODES, mixer_point
from bench.measuring.rows import source_hash
from bench.measuring.timing import TORCH_DTYPES, compute_dtype_name, prepare_call

POINTS = {
    "cpu": {"seq_len": 256, "dim": 128, "batch": 1, "dtype": "float32"},
    "cuda": {"seq_len": 4096, "dim": 768, "batch": 8, "dtype": "bfloat16"},
}
DEVICE = resolve_device("auto")  # the GPU where torch sees one, else the CPU, as `mixbench sweep`
POINT = POINTS[DEVICE]
# The point is in every test id, so changing it makes old saved numbers stale instead of comparable.
POINT_TAG = f"{DEVICE}-n{POINT['seq_len']}-d{POINT['dim']}-b{POINT['batch']}-{POINT['dtype']}"
CASES = [(mixer, mode) for mixer in mixers.available() for mode in MODES]


@pytest.mark.parametrize(("mixer", "mode"), CASES, ids=[f"{mixer}-{mode}-{POINT_TAG}" for mixer, mode in CASES])
def test_mixer(benchmark, mixer, mode):
    point = mixer_point(mixer, POINT["seq_len"], POINT["dim"], POINT["batch"], POINT["dtype"], mode, DEVICE)
    cls = mixers.get(mixer)
    dtype = TORCH_DTYPES[point.dtype]
    support = cls.supports(point.seq_len, point.dim, dtype, point.device)
    if not support:
        pytest.skip(f"{mixer} does not run {point.label()} on {DEVICE}: {support.reason}")
    call, module, x, _, _ = prepare_call(point)

    def step():
        out = call()
        measure.synchronize(DEVICE)
        return out

    benchmark.group = f"{mode} {POINT_TAG}"
    context = torch.inference_mode if mode == "forward" else torch.enable_grad
    with context():
        out = step()
        produced = out if mode == "forward" else out[0]  # train returns (grad of x, grads of parameters)
        assert produced.shape == x.shape and produced.dtype == x.dtype, (
            f"{mixer} {mode} returned {tuple(produced.shape)} {produced.dtype} for {tuple(x.shape)} {x.dtype}")
        assert torch.isfinite(produced).all(), f"{mixer} {mode} returned non-finite values"
        del out, produced
        if benchmark.enabled:
            measure.warm_up(step, torch.device(DEVICE), measure.TimingPolicy())  # never time the first calls
        benchmark(step)
        memory = measure.peak_memory(call, DEVICE)  # a pass of its own

    benchmark.extra_info.update({
        "mixer": mixer, "mode": mode, "device": DEVICE, "device_name": device_facts(DEVICE)["device_name"],
        "seq_len": point.seq_len, "dim": point.dim, "batch": point.batch, "dtype": point.dtype,
        "compute_dtype": compute_dtype_name(point),
        "peak_mem_mb": memory.peak_mb, "reserved_mem_mb": memory.reserved_mb, "memory_method": memory.method,
        "source_hash": source_hash(cls),
    })
