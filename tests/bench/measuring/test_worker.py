"""One point -> one row, in process: statuses, derived columns, and a clean slate after each point."""

import pytest
import torch

import mixers
from bench.measuring import measure
from bench.measuring import worker
from bench.measuring.plan import mixer_point
from bench.measuring.store import COLUMNS
from mixers import _spectral

POLICY = measure.TimingPolicy(warmup_calls=1, warmup_s=0.0, min_reps=3, budget_s=0.02)
PEAKS = {"peak_bandwidth_gbps": 10.0, "peak_tflops": {"float32": 0.1}}


def point(mixer="fft", seq_len=64, mode="forward", dtype="float32"):
    return mixer_point(mixer, seq_len, 32, 2, dtype, mode, "cpu")


@pytest.mark.parametrize("mode", ["forward", "train"])
def test_an_ok_row_has_every_column_and_consistent_rates(mode):
    row = worker.measure_point(point(mode=mode), POLICY, PEAKS, "test cpu")
    assert row["status"] == "ok" and not row["error"]
    assert set(row) - {"_fatal", "_samples"} <= set(COLUMNS) and {"time_ms", "peak_mem_mb", "roofline_frac"} <= set(row)
    seconds = row["time_ms"] / 1e3
    cost = mixers.get("fft").cost(64, 32, 2, torch.float32, mode)
    assert row["flops"] == cost.flops and row["bytes_min"] == cost.bytes_min
    assert row["tokens_per_s"] == pytest.approx(2 * 64 / seconds)
    floor = max(cost.flops / 0.1e12, cost.bytes_min / 10e9)
    assert row["roofline_frac"] == pytest.approx(floor / seconds)
    assert row["bound"] == ("flops" if cost.flops / 0.1e12 > cost.bytes_min / 10e9 else "bytes")
    assert row["peak_mem_mb"] > 0 and row["time_ms_p20"] <= row["time_ms"] <= row["time_ms_p80"]


def test_a_refused_point_is_unsupported_with_the_mixers_reason():
    row = worker.measure_point(point("hadamard", seq_len=48), POLICY, PEAKS, "test cpu")
    reason = mixers.get("hadamard").supports(48, 32, torch.float32, "cpu").reason
    assert row["status"] == "unsupported" and row["error"] == reason and "48" in reason


def test_cached_matrices_are_freed_after_each_point():
    row = worker.measure_point(point("dft-matrix"), POLICY, PEAKS, "test cpu")
    assert row["status"] == "ok"
    assert all(cached.cache_info().currsize == 0 for cached in _spectral._CACHES)


def test_rows_record_the_dtype_that_computes_and_the_source_hash(monkeypatch):
    row = worker.base_row(point("fft"), "test cpu")
    assert row["compute_dtype"] == "float32" and len(row["source_hash"]) == 12
    assert worker.source_hash(mixers.get("fft")) != worker.source_hash(mixers.get("attention"))
    # an edit to a private helper module the mixer uses changes its hash
    worker.source_hash.cache_clear()  # the hash is computed once per class and process
    real_getsource = worker.inspect.getsource
    monkeypatch.setattr(worker.inspect, "getsource", lambda obj: real_getsource(obj) + (
        "# edited" if obj is _spectral else ""))
    assert worker.source_hash(mixers.get("fft")) != row["source_hash"]
    worker.source_hash.cache_clear()
