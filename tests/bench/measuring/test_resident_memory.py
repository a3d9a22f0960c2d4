"""resident_mem_mb counts every tensor a mixer keeps between calls: parameters, buffers and the constant tables it
caches on its first call, measured through `timing.measure_point` as a sweep measures a point.

The expected sizes are worked out here from the math each transform needs, not read from the mixers: a float32
element is 4 bytes, complex64 8, an int32 index 4.
"""

import gc
import weakref

import pandas as pd
import pytest
import torch

import mixers
from bench.measuring import measure, timing
from bench.measuring.points import Point, mixer_point
from bench.reporting import analysis

CUDA = pytest.param("cuda", marks=[pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(),
                                                                        reason="needs a CUDA GPU")])
POLICY = measure.TimingPolicy(warmup_calls=1, warmup_s=0.0, min_reps=3, budget_s=0.02)
MiB = 2**20
F32, C64, I32 = 4, 8, 4


def dft_matrix(n, d):
    # Re(F_n X F_d) by two real products: cos and sin of F_d (d × d each), cos and sin of F_n (n × n each)
    return F32 * (2 * d * d + 2 * n * n)


def dft_monarch(n, d, n1, n2, d1, d2):
    # F_k = (F_k1 ⊗ I)·twiddles·(I ⊗ F_k2) per axis: cos and sin of the two small DFTs and of the k1 × k2 twiddles;
    # the complex stage of the d axis takes [[C, −S], [S, C]] (4 blocks of d2 × d2), the others two blocks each
    assert n1 * n2 == n and d1 * d2 == d
    n_axis = 2 * n1 * n1 + 2 * n1 * n2 + 2 * n2 * n2
    d_axis = 2 * d1 * d1 + 2 * d1 * d2 + 4 * d2 * d2
    return F32 * (n_axis + d_axis)


def dct_matmul(n, d):
    # C_n (n × n) and C_d (d × d)
    return F32 * (n * n + d * d)


def dct_fft_forward(n, d):
    # Makhoul's reordering of the input (one index per element), the row negation (n) and the unfold (d) indices;
    # the twiddles applied to the half spectrum (2 × n × (d/2 + 1), complex)
    return I32 * (n * d + n + d) + C64 * 2 * n * (d // 2 + 1)


def dct_fft_backward(n, d):
    # the fold index ((d/2 + 1) pairs), the inverse reordering (one per element), the inverse twiddles (complex)
    return I32 * (2 * (d // 2 + 1) + n * d) + C64 * 2 * n * (d // 2 + 1)


# (mixer, seq_len, dim, mode, bytes of the tables the point's calls build)
CASES = [
    ("dft-matrix", 2048, 128, "forward", dft_matrix(2048, 128)),  # 32.1 MiB: the 1 MiB that issue 23 saw
    ("dft-matrix", 512, 64, "train", dft_matrix(512, 64)),
    ("dft-monarch", 1024, 128, "forward", dft_monarch(1024, 128, n1=32, n2=32, d1=16, d2=8)),
    ("dft-monarch", 384, 192, "forward", dft_monarch(384, 192, n1=16, n2=24, d1=16, d2=12)),
    ("dct", 128, 64, "forward", dct_matmul(128, 64)),  # n + d ≤ 192: the matmul path
    ("dct", 2048, 128, "forward", dct_fft_forward(2048, 128)),
    ("dct", 2048, 128, "train", dct_fft_forward(2048, 128) + dct_fft_backward(2048, 128)),
]


@pytest.mark.parametrize("device", ["cpu", CUDA])
@pytest.mark.parametrize("mixer, seq_len, dim, mode, tables", CASES,
                         ids=[f"{c[0]}-{c[1]}x{c[2]}-{c[3]}" for c in CASES])
def test_resident_memory_counts_the_tables_a_first_call_caches(monkeypatch, mixer, seq_len, dim, mode, tables,
                                                                device):
    batch = 2
    cached_before_the_memory_pass = []
    real_peak_memory = measure.peak_memory

    def peak_memory(fn, device):
        cached_before_the_memory_pass.append(sum(t.untyped_storage().nbytes() for t in mixers.cached_tensors()))
        return real_peak_memory(fn, device)

    monkeypatch.setattr(measure, "peak_memory", peak_memory)
    reply = timing.measure_point(mixer_point(mixer, seq_len, dim, batch, "float32", mode, device), POLICY, "test")
    row = reply.row
    assert row["status"] == "ok", row["error"]
    # no parameters: the tables, and the input (and the gradient fed back in train mode) the point keeps
    io = F32 * batch * seq_len * dim * (1 if mode == "forward" else 2)
    assert row["resident_mem_mb"] * MiB == tables + io
    # built by the warm-up, before the memory pass, which counts only what its own call allocates: not in the peak
    assert cached_before_the_memory_pass == [tables]
    total = analysis.total_mem_mb(pd.DataFrame([row]))[0]
    assert total == pytest.approx(row["peak_mem_mb"] + (tables + io) / MiB)
    assert mixers.cached_tensors() == []  # freed after the point


def test_the_dft_matrix_point_of_issue_23_reports_its_32_mib_on_the_cost_frontier():
    reply = timing.measure_point(mixer_point("dft-matrix", 2048, 128, 1, "float32", "forward", "cpu"), POLICY, "t")
    assert reply.row["resident_mem_mb"] == pytest.approx(33_685_504 / MiB + 1.0)  # tables + the 1 MiB input
    assert 33.0 < analysis.total_mem_mb(pd.DataFrame([reply.row]))[0] < 40.0


@pytest.mark.parametrize("device", ["cpu", CUDA])
def test_a_point_counts_only_its_own_tables(device):
    mixers.get("dft-matrix")(64, 8).to(device)(torch.randn(1, 64, 8, device=device))  # left over from elsewhere
    assert mixers.cached_tensors()
    reply = timing.measure_point(mixer_point("linear", 256, 32, 1, "float32", "forward", device), POLICY, "t")
    assert reply.row["resident_mem_mb"] * MiB == F32 * (256 * 256 + 32 * 32) + F32 * 256 * 32  # W_n, W_d, x


def test_a_storage_named_twice_counts_once():
    weight = torch.zeros(1024, 256)  # 1 MiB
    assert measure.resident_mb(weight, [weight[:10], weight.T], (weight,)) == 1.0
    assert measure.resident_mb([weight, torch.zeros(256, 1024)]) == 2.0


POINTS = [mixer_point("dft-matrix", 64, 64, 2, "float32", "forward", "cpu"),
          mixer_point("attention", 64, 64, 2, "float32", "train", "cpu"),
          mixer_point("mlp-mixer", 64, 64, 2, "float32", "train", "cpu"),
          Point("fft", "block", 64, 64, None, 128, None, "post", 2, "batch=2", "float32", "train", "cpu"),
          Point("dft-matrix+attention:1", "encoder", 64, 64, 2, 128, 100, "pre", 2, "batch=2", "float32", "train",
                "cpu")]


@pytest.mark.parametrize("point", POINTS, ids=[f"{p.mixer}-{p.scope}-{p.mode}" for p in POINTS])
def test_a_points_module_and_optimizer_are_freed_without_a_garbage_collection(monkeypatch, point):
    """measure_point collects garbage only after a failure: an ok point must leave no reference cycle behind."""
    timing.measure_point(point, POLICY, "t")  # once first: torch's first AdamW imports torch._dynamo, whose import
    # keeps that one optimizer's frames (a cycle of a process's first optimizer only, freed by the next collection)
    built = []
    real_prepare = timing.prepare_call

    def prepare_call(point):
        prepared = real_prepare(point)
        built.extend(weakref.ref(holder) for holder in prepared.holders)
        return prepared

    monkeypatch.setattr(timing, "prepare_call", prepare_call)
    gc.collect()
    collected = []
    monkeypatch.setattr(timing.gc, "collect", lambda *a: collected.append(1))
    gc.disable()
    try:
        reply = timing.measure_point(point, POLICY, "t")
        assert reply.row["status"] == "ok", reply.row["error"]
        assert built and [ref() for ref in built] == [None] * len(built)
    finally:
        gc.enable()
    assert collected == []


def test_a_failed_point_collects_garbage(monkeypatch):
    collected = []
    monkeypatch.setattr(timing.gc, "collect", lambda *a: collected.append(1))
    monkeypatch.setattr(timing, "prepare_call", lambda point: (_ for _ in ()).throw(RuntimeError("boom")))
    reply = timing.measure_point(mixer_point("fft", 64, 32, 2, "float32", "forward", "cpu"), POLICY, "t")
    assert reply.row["status"] == "error" and collected == [1]
