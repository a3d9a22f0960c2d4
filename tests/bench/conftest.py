"""A fake run folder with plausible numbers, for the analysis, plot, report and compare tests.

`make_run(folder, ...)` writes `results.csv` and `env.json` the way the sweep runner does (every
contract column, failed points as rows with a reason). The `fake_run` fixture hands it to a test.
"""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import numpy as np
import pytest

COLUMNS = ["mixer", "seq_len", "dim", "batch", "batching", "dtype", "compute_dtype", "mode", "device",
           "device_name", "status", "time_ms", "time_ms_p20", "time_ms_p80", "reps", "peak_mem_mb",
           "reserved_mem_mb", "tokens_per_s", "flops", "tflops", "bytes_min", "gbps", "roofline_frac",
           "bound", "energy_mj", "source_hash", "error"]

ALL_MIXERS = ("fft", "dft-matrix", "hartley", "dct", "hadamard", "linear", "mlp-mixer", "attention",
              "attention-naive")
ITEMSIZE = {"float64": 8, "float32": 4, "bfloat16": 2, "float16": 2}
GPU_ENV = {"device": "cuda", "device_name": "NVIDIA H100 80GB HBM3", "device_memory_mb": 81559,
           "peak_bandwidth_gbps": 2900.0,
           "peak_tflops": {"float32": 48.0, "bfloat16": 610.0, "float16": 640.0, "float64": 51.0}}
CPU_ENV = {"device": "cpu", "device_name": "AMD EPYC 7B13 (2 cores)", "device_memory_mb": 16000,
           "peak_bandwidth_gbps": 12.0, "peak_tflops": {"float32": 0.15, "float64": 0.07}}


def _cost(mixer: str, seq_len: int, dim: int, batch: int) -> tuple[float, float]:
    """Rough forward FLOPs and extra working memory (elements) of each mixer."""
    tokens = batch * seq_len
    log_n, log_d = math.log2(seq_len), math.log2(dim)
    fft_flops = 5 * tokens * dim * (log_n + log_d)
    table = {
        "fft": (fft_flops, 4 * tokens * dim),
        "dft-matrix": (8 * tokens * dim * (seq_len + dim), 2 * seq_len * seq_len + 4 * tokens * dim),
        "hartley": (1.2 * fft_flops, 5 * tokens * dim),
        "dct": (2 * fft_flops, 6 * tokens * dim),
        "hadamard": (tokens * dim * (log_n + log_d), 2 * tokens * dim),
        "linear": (2 * tokens * dim * (seq_len + dim), seq_len * seq_len + tokens * dim),
        "mlp-mixer": (8 * tokens * seq_len * dim, 3 * tokens * dim),
        "attention": (8 * tokens * dim * dim + 4 * tokens * seq_len * dim, 6 * tokens * dim),
        "attention-naive": (8 * tokens * dim * dim + 4 * tokens * seq_len * dim,
                            6 * tokens * dim + 2 * batch * (dim // 64) * seq_len * seq_len),
    }
    if mixer in table:
        return table[mixer]
    return 3 * tokens * dim * log_n, 3 * tokens * dim  # a mixer the fake does not know: n log n


def _row(mixer, seq_len, dim, batch, batching, dtype, mode, env, rng, *, status="ok", error=""):
    device = env["device"]
    row = dict.fromkeys(COLUMNS, "")
    row.update(mixer=mixer, seq_len=seq_len, dim=dim, batch=batch, batching=batching, dtype=dtype,
               compute_dtype="float32" if mixer in ("fft", "hartley", "dct") and dtype == "bfloat16" else dtype,
               mode=mode, device=device, device_name=env["device_name"], status=status, error=error,
               source_hash="3f9a2c1")
    if status != "ok":
        return row
    flops, work_elements = _cost(mixer, seq_len, dim, batch)
    itemsize = ITEMSIZE[dtype]
    train = 3 if mode == "train" else 1
    flops *= train
    bytes_min = 2 * batch * seq_len * dim * itemsize * (2 if mode == "train" else 1)
    peak_flops = env["peak_tflops"][dtype] * 1e12
    efficiency = {"fft": 0.05, "hartley": 0.04, "dct": 0.03, "hadamard": 0.05, "attention-naive": 0.25,
                  "attention": 0.5, "mlp-mixer": 0.6, "linear": 0.6, "dft-matrix": 0.55}.get(mixer, 0.1)
    floor_s = max(flops / peak_flops, bytes_min / (env["peak_bandwidth_gbps"] * 1e9))
    launch_s = 0.015e-3 if device == "cuda" else 0.05e-3
    time_ms = 1e3 * (launch_s * train + floor_s / efficiency) * rng.uniform(0.97, 1.03)
    peak_mem_mb = (work_elements * itemsize * (2.5 if mode == "train" else 1)) / 2**20
    row.update(time_ms=time_ms, time_ms_p20=time_ms * 0.98, time_ms_p80=time_ms * 1.04, reps=50,
               peak_mem_mb=peak_mem_mb, reserved_mem_mb=peak_mem_mb * 1.2,
               tokens_per_s=batch * seq_len / (time_ms / 1e3), flops=int(flops),
               tflops=flops / (time_ms / 1e3) / 1e12, bytes_min=int(bytes_min),
               gbps=bytes_min / (time_ms / 1e3) / 1e9, roofline_frac=1e3 * floor_s / time_ms,
               bound="flops" if flops / peak_flops >= bytes_min / (env["peak_bandwidth_gbps"] * 1e9) else "bytes",
               energy_mj=time_ms * 0.35 if device == "cuda" else "")
    return row


def make_run(folder, *, mixers=ALL_MIXERS, seq_lens=(128, 256, 384, 512, 1024, 1536, 2048, 4096, 8192, 16384, 32768),
             dims=(768,), batchings=("batch=8",), dtypes=("bfloat16", "float32"), modes=("forward", "train"),
             device="cuda", failures=True, env=None, seed=0) -> Path:
    """Write a plausible run folder (results.csv, env.json) under `folder`; returns the folder.

    With `failures`: hadamard is unsupported off powers of two, attention-naive runs out of memory
    above 8k tokens (all the way), mlp-mixer times out at the longest train length, and linear errors once.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    env = dict(env if env is not None else (GPU_ENV if device == "cuda" else CPU_ENV))
    env.setdefault("command", "mixbench sweep --preset gpu --out results/fake")
    env.setdefault("preset", "gpu" if device == "cuda" else "cpu")
    env.setdefault("started_at", "2025-01-01T10:00:00Z")
    env.setdefault("finished_at", "2025-01-01T11:00:00Z")
    env.setdefault("torch", "2.13.0")
    env.setdefault("python", "3.12.1")
    env.setdefault("git_commit", "2c10cc6")
    env.setdefault("git_dirty", False)
    if device == "cuda":
        env.setdefault("gpu", {"driver": "550.54", "clocks": {"sm_mhz": 1980, "mem_mhz": 2619},
                               "power_limit_w": 700, "temperature_c": 41})
    rng = np.random.default_rng(seed)
    rows = []
    for dtype in dtypes:
        for mode in modes:
            for dim in dims:
                for batching in batchings:
                    kind, value = batching.split("=")
                    for mixer in mixers:
                        for seq_len in seq_lens:
                            batch = int(value) if kind == "batch" else max(1, int(value) // seq_len)
                            args = (mixer, seq_len, dim, batch, batching, dtype, mode, env, rng)
                            if failures and mixer == "hadamard" and seq_len & (seq_len - 1):
                                rows.append(_row(*args, status="unsupported",
                                                 error=f"hadamard needs seq_len a power of two, got {seq_len}"))
                            elif failures and mixer == "attention-naive" and seq_len > 8192:
                                rows.append(_row(*args, status="oom",
                                                 error="CUDA out of memory. Tried to allocate 24.00 GiB"))
                            elif failures and mixer == "mlp-mixer" and mode == "train" and seq_len == max(seq_lens):
                                rows.append(_row(*args, status="timeout", error="no result within 120 s"))
                            elif failures and mixer == "linear" and seq_len == 384 and dtype == "float32":
                                rows.append(_row(*args, status="error",
                                                 error="RuntimeError: <cublas> & \"bad\" state\nsecond line"))
                            else:
                                rows.append(_row(*args))
    with open(folder / "results.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    (folder / "env.json").write_text(json.dumps(env, indent=2))
    return folder


@pytest.fixture
def fake_run(tmp_path):
    """A factory: `fake_run(name="run", **options)` makes a run folder under the test's tmp_path."""

    def make(name="run", **options):
        return make_run(tmp_path / name, **options)

    return make
