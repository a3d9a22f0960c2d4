"""timing.metrics: rates in their units and the roofline floor, each part at the peak of the dtype it computes in.

Every expected number is worked out by hand from the point's analytic cost (tests/mixers/test_cost.py
checks those costs) and the peaks given; nothing is measured.
"""

import pytest
import torch

from bench import models
from bench.measuring import timing
from bench.measuring.points import Point, mixer_point

# An H100-like device where bfloat16 matmuls are 10x float32's: the dtype the roofline takes matters.
PEAKS = {"peak_tflops": {"bfloat16": 400.0, "float32": 40.0}, "peak_bandwidth_gbps": 20000.0}


def test_rates_are_in_tflops_gbps_and_tokens_per_second():
    point = mixer_point("fft", 16, 32, 3, "float32", "forward", "cpu")
    flops = 3 * (16 * 2.5 * 32 * 5 + 17 * 5 * 16 * 4)  # 35520: rfft2 of (16, 32), three samples
    nbytes = 2 * 3 * 16 * 32 * 4  # input read and output written, float32
    row = timing.metrics(point, 2.0, {"peak_tflops": {"float32": 0.1}, "peak_bandwidth_gbps": 10.0})
    assert row["flops"] == flops and row["bytes_min"] == nbytes
    assert row["tflops"] == pytest.approx(35520 / 2e-3 / 1e12, rel=1e-12)  # 1.776e-05 TFLOP/s
    assert row["gbps"] == pytest.approx(12288 / 2e-3 / 1e9, rel=1e-12)  # 6.144e-03 GB/s
    assert row["tokens_per_s"] == pytest.approx(3 * 16 / 2e-3, rel=1e-12)  # 24,000 tokens/s
    # floor: max(35520 / 0.1e12, 12288 / 10e9) = 1.2288e-6 s of bytes, against 2 ms measured
    assert row["roofline_frac"] == pytest.approx(1.2288e-6 / 2e-3, rel=1e-12) and row["bound"] == "bytes"


def test_a_bf16_fft_point_takes_the_float32_peak_it_computes_in():
    point = mixer_point("fft", 1024, 1024, 8, "bfloat16", "forward", "cuda")
    assert timing.compute_dtype_name(point) == "float32"  # cuFFT has no bfloat16
    flops = 8 * (2.5 * 1024 * 1024 * 10 + 5 * 1024 * 513 * 10)  # 419,840,000
    nbytes = 2 * 8 * 1024 * 1024 * 2  # bfloat16 in and out: 33,554,432
    row = timing.metrics(point, 0.05, PEAKS)
    assert row["flops"] == flops and row["bytes_min"] == nbytes
    # float32: 419.84e6 / 40e12 = 10.496 µs of FLOPs beats 33.55e6 / 20e12 = 1.678 µs of bytes
    # (at bfloat16's peak the FLOPs would take 1.05 µs and the bytes would bound it)
    assert row["bound"] == "flops"
    assert row["roofline_frac"] == pytest.approx(10.496e-6 / 50e-6, rel=1e-9)
    assert row["tflops"] == pytest.approx(419.84e6 / 50e-6 / 1e12, rel=1e-12)
    assert row["gbps"] == pytest.approx(33554432 / 50e-6 / 1e9, rel=1e-12)


def test_a_bf16_matmul_point_takes_the_bf16_peak():
    point = mixer_point("dct", 64, 64, 8, "bfloat16", "forward", "cuda")  # n + d ≤ 192: matrix products
    assert timing.compute_dtype_name(point) == "bfloat16"
    flops = 8 * 2 * 64 * 64 * 128  # 8,388,608
    nbytes = (2 * 8 * 64 * 64 + 64 * 64 + 64 * 64) * 2  # with C_n and C_d read: 147,456
    row = timing.metrics(point, 0.01, PEAKS)
    assert (row["flops"], row["bytes_min"]) == (flops, nbytes)
    # 8.388608e6 / 400e12 = 20.97 ns of FLOPs against 147456 / 20e12 = 7.37 ns of bytes
    assert row["bound"] == "flops" and row["roofline_frac"] == pytest.approx(flops / 400e12 / 1e-5, rel=1e-9)


def test_a_model_point_sums_each_parts_floor_at_its_own_dtypes_peak():
    point = Point("fft", "block", 1024, 256, 1, 1024, None, "post", 8, "batch=8", "bfloat16", "train", "cuda")
    parts = models.parts("block", "fft", 1024, 256, 8, torch.bfloat16, "train", "cuda", ffn=1024, norm="post",
                         head="none")
    dtypes = {part.name: part.compute_dtype for part in parts}
    assert dtypes["mixer:fft"] == torch.float32 and dtypes["ffn"] == torch.bfloat16
    peak = {torch.float32: 40e12, torch.bfloat16: 400e12}
    floors = [max(part.flops / peak[part.compute_dtype], part.bytes_min / 20e12) for part in parts]
    row = timing.metrics(point, 1.0, PEAKS)
    assert row["flops"] == sum(part.flops for part in parts)
    assert row["roofline_frac"] == pytest.approx(sum(floors) / 1e-3, rel=1e-12)
    flops_bound = sum(f for f, part in zip(floors, parts) if part.flops / peak[part.compute_dtype] >= f)
    assert row["bound"] == ("flops" if flops_bound > sum(floors) - flops_bound else "bytes")


def test_without_a_peak_for_the_dtype_the_floor_is_the_bytes_alone():
    point = mixer_point("fft", 1024, 1024, 8, "bfloat16", "forward", "cuda")
    row = timing.metrics(point, 0.05, {"peak_tflops": {"bfloat16": 400.0}, "peak_bandwidth_gbps": 20000.0})
    assert row["bound"] == "bytes" and row["roofline_frac"] == pytest.approx(33554432 / 20e12 / 50e-6, rel=1e-9)


def test_without_ceilings_there_is_no_roofline_but_the_rates_stand():
    row = timing.metrics(mixer_point("fft", 16, 32, 3, "float32", "forward", "cpu"), 2.0, {})
    assert row["roofline_frac"] is None and row["bound"] == ""
    assert row["tflops"] == pytest.approx(35520 / 2e-3 / 1e12) and row["gbps"] == pytest.approx(12288 / 2e-3 / 1e9)


# --- the floor and the bound, on hand-made parts (flops and bytes in units of one second at the peaks below) ---

UNIT_PEAKS = {"peak_tflops": {"float32": 1e-12}, "peak_bandwidth_gbps": 1e-9}  # 1 FLOP/s and 1 byte/s


def metrics_of(monkeypatch, *parts, time_ms=1000.0):
    """metrics() of a point made of `parts`, (flops, bytes) pairs: each takes that many seconds at the peaks."""
    monkeypatch.setattr(timing, "cost_parts", lambda point: [
        models.Part(f"part{i}", flops, nbytes, 0, torch.float32) for i, (flops, nbytes) in enumerate(parts)])
    return timing.metrics(mixer_point("fft", 16, 32, 1, "float32", "forward", "cpu"), time_ms, UNIT_PEAKS)


@pytest.mark.parametrize("parts, floor_s, bound", [
    ([(3, 1), (1, 2)], 5, "flops"),  # one flops-bound part (3 s), one bytes-bound (2 s)
    ([(2, 3), (2.5, 0)], 5.5, "bytes"),  # 3 s of bytes against 2.5 s of FLOPs; the first part's FLOPs do not count
    ([(1, 1)], 1, "flops"),  # a tie within a part counts as FLOPs
    ([(1, 1), (0, 0.5)], 1.5, "flops"),  # ... and only as FLOPs: 1 s of FLOPs, 0.5 s of bytes
    ([(1.5, 0), (0, 1), (0, 1)], 3.5, "bytes"),  # bytes-bound parts add up
    ([(1, 0), (0, 2)], 3, "bytes"),
    ([(3, 1), (0, 3)], 6, "bytes"),  # a tie between the sums: bytes
])
def test_the_floor_sums_each_parts_larger_term_and_the_bound_is_the_larger_sum(monkeypatch, parts, floor_s, bound):
    row = metrics_of(monkeypatch, *parts)
    assert row["roofline_frac"] == pytest.approx(floor_s / 1.0, rel=1e-12) and row["bound"] == bound
    assert row["flops"] == sum(flops for flops, _ in parts) and row["bytes_min"] == sum(nbytes for _, nbytes in parts)


def test_a_point_without_flops_has_no_tflops_and_is_bytes_bound(monkeypatch):
    row = metrics_of(monkeypatch, (0, 2))
    assert row["tflops"] is None and row["bound"] == "bytes" and row["roofline_frac"] == pytest.approx(2.0)
    nothing = metrics_of(monkeypatch, (0, 0))
    assert nothing["roofline_frac"] is None and nothing["bound"] == "" and nothing["gbps"] == 0.0
