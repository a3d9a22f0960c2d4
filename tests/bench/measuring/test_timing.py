"""One timing point -> its reply, in process: statuses, the raw measurements and the columns derived from them
(`rounds.combine_rounds`), the source hash, and a clean slate after each point."""

import subprocess
import sys
from pathlib import Path

import pytest
import torch

import mixers
from bench.measuring import measure, rows, timing
from bench.measuring.points import Point, mixer_point
from bench.measuring.rounds import combine_rounds
from bench.measuring.store import COLUMNS
from mixers import _spectral

ROOT = Path(__file__).resolve().parents[3]

POLICY = measure.TimingPolicy(warmup_calls=1, warmup_s=0.0, min_reps=3, budget_s=0.02)
PEAKS = {"peak_bandwidth_gbps": 10.0, "peak_tflops": {"float32": 0.1}}


def measured(point) -> dict:
    """The results row of `point` measured in one round: the reply, then the columns the parent derives."""
    reply = timing.measure_point(point, POLICY, "test cpu")
    assert set(reply.row) <= set(COLUMNS)  # nothing private rides in the row
    return combine_rounds(point, [{"round": 1, "row": reply.row, "samples": reply.samples}], 1, PEAKS)


def point(mixer="fft", seq_len=64, mode="forward", dtype="float32"):
    return mixer_point(mixer, seq_len, 32, 2, dtype, mode, "cpu")


@pytest.mark.parametrize("mode", ["forward", "train"])
def test_an_ok_row_has_every_column_and_consistent_rates(mode):
    reply = timing.measure_point(point(mode=mode), POLICY, "test cpu")
    assert reply.samples and not reply.fatal and "roofline_frac" not in reply.row  # raw: the parent derives rates
    row = measured(point(mode=mode))
    assert row["status"] == "ok" and not row["error"]
    assert set(row) <= set(COLUMNS) and {"time_ms", "peak_mem_mb", "roofline_frac"} <= set(row)
    seconds = row["time_ms"] / 1e3
    cost = mixers.get("fft").cost(64, 32, 2, torch.float32, mode)
    assert row["flops"] == cost.flops and row["bytes_min"] == cost.bytes_min
    assert row["tokens_per_s"] == pytest.approx(2 * 64 / seconds)
    floor = max(cost.flops / 0.1e12, cost.bytes_min / 10e9)
    assert row["roofline_frac"] == pytest.approx(floor / seconds)
    assert row["bound"] == ("flops" if cost.flops / 0.1e12 > cost.bytes_min / 10e9 else "bytes")
    assert row["peak_mem_mb"] > 0 and row["time_ms_p20"] <= row["time_ms"] <= row["time_ms_p80"]


def test_a_refused_point_is_unsupported_with_the_mixers_reason():
    row = measured(point("hadamard", seq_len=48))
    reason = mixers.get("hadamard").supports(48, 32, torch.float32, "cpu").reason
    assert row["status"] == "unsupported" and row["error"] == reason and "48" in reason


def test_cached_matrices_are_freed_after_each_point():
    row = measured(point("dft-matrix"))
    assert row["status"] == "ok"
    assert mixers.cached_tensors() == []


def test_rows_record_the_dtype_that_computes_and_the_source_hash(monkeypatch):
    row = timing.base_row(point("fft"), "test cpu")
    assert row["compute_dtype"] == "float32" and len(row["source_hash"]) == 12
    assert rows.source_hash(mixers.get("fft")) != rows.source_hash(mixers.get("attention"))
    # an edit to a private helper module the mixer uses changes its hash
    rows.source_hash.cache_clear()  # the hash is computed once per class and process
    real_getsource = rows.inspect.getsource
    monkeypatch.setattr(rows.inspect, "getsource", lambda obj: real_getsource(obj) + (
        "# edited" if obj is _spectral else ""))
    assert rows.source_hash(mixers.get("fft")) != row["source_hash"]
    rows.source_hash.cache_clear()


@pytest.mark.parametrize("mixer, helper", [("fft", "mixers._cache"), ("hartley", "mixers.fft"),
                                           ("hartley", "mixers._spectral"), ("dft-matrix", "mixers._cost")])
def test_the_source_hash_sees_helpers_used_through_another_module(monkeypatch, mixer, helper):
    # fft reaches the cache only through _spectral's mirror; hartley inherits fft's forward
    rows.source_hash.cache_clear()
    before = rows.source_hash(mixers.get(mixer))
    rows.source_hash.cache_clear()
    real_getsource = rows.inspect.getsource
    monkeypatch.setattr(rows.inspect, "getsource", lambda obj: real_getsource(obj) + (
        "# edited" if obj.__name__ == helper else ""))
    assert rows.source_hash(mixers.get(mixer)) != before
    rows.source_hash.cache_clear()


def test_a_tokens_series_shorter_than_the_length_is_a_row_that_says_so():
    from bench.measuring.plan import Axes, expand

    points = expand(Axes(mixers=("fft",), seq_lens=(64, 128), dims=(32,), batches=(), tokens=(96,),
                         modes=("forward",)), "cpu")
    assert [(p.seq_len, p.batch) for p in points] == [(64, 1), (128, 0)]
    row = measured(points[1])
    assert row["status"] == "unsupported" and "tokens=96 per batch is fewer than one sequence of 128" in row["error"]
    assert measured(points[0])["status"] == "ok"


def model_point(scope, mixer="fft", mode="forward", vocab=50):
    layers, ffn = (1, 64) if scope == "block" else (2, 64)
    return Point(mixer, scope, 16, 64, layers, ffn, vocab if scope == "encoder" else None, "post", 2, "batch=2",
                 "float32", mode, "cpu")


@pytest.mark.parametrize("scope", ["block", "encoder"])
@pytest.mark.parametrize("mode", ["forward", "train"])
def test_block_and_encoder_points_are_measured_and_costed_as_the_sum_of_their_parts(scope, mode):
    from bench import models

    point = model_point(scope, "fft+attention:1" if scope == "encoder" else "attention", mode)
    row = measured(point)
    assert row["status"] == "ok", row["error"]
    parts = models.parts(scope, point.mixer, 16, 64, 2, torch.float32, mode, "cpu", layers=point.layers, ffn=64,
                         vocab=point.vocab, norm="post", head="mlm" if point.vocab else "none")
    assert row["flops"] == sum(p.flops for p in parts) and row["bytes_min"] == sum(p.bytes_min for p in parts)
    assert row["resident_mem_mb"] > 0  # parameters (and in train, AdamW's state) held across calls
    floor = sum(max(p.flops / 0.1e12, p.bytes_min / 10e9) for p in parts)
    assert row["roofline_frac"] == pytest.approx(floor / (row["time_ms"] / 1e3))
    if mode == "train":  # AdamW's moments are allocated by the first step and held: more resident than forward
        forward = measured(model_point(scope, point.mixer, "forward"))
        assert row["resident_mem_mb"] > 2.5 * forward["resident_mem_mb"]


def test_a_layout_below_encoder_scope_is_unsupported_with_the_reason():
    row = measured(model_point("block", "fft+attention:1"))
    assert row["status"] == "unsupported" and "arranges an encoder's layers" in row["error"]


def test_an_encoder_without_a_vocabulary_takes_vectors_and_has_no_head():
    row = measured(model_point("encoder", vocab=0))
    assert row["status"] == "ok" and row["tokens_per_s"] > 0


def test_the_source_hash_of_a_model_point_covers_the_model_code(monkeypatch):
    mixer_row = timing.base_row(mixers_point := model_point("block"), "cpu")
    assert mixer_row["source_hash"] != rows.source_hash(mixers.get("fft"))
    rows.package_hash.cache_clear()
    real_getsource = rows.inspect.getsource
    monkeypatch.setattr(rows.inspect, "getsource", lambda obj: real_getsource(obj) + (
        "# edited" if getattr(obj, "__name__", "") == "bench.models.blocks" else ""))
    assert timing.base_row(mixers_point, "cpu")["source_hash"] != mixer_row["source_hash"]
    rows.package_hash.cache_clear()


def test_the_ceilings_are_the_fastest_repetition_not_the_median(monkeypatch):
    """A ceiling is what the device did at its best: the median of a busy CPU's product would put mixers above 1.0."""
    monkeypatch.setattr(timing, "_MiB", 1)  # a tiny copy: the timings below are planted anyway
    monkeypatch.setattr(measure, "time_call", lambda fn, device, policy: measure.Timing(
        median_ms=2.0, p20_ms=1.5, p80_ms=3.0, reps=3, samples_ms=(1.0, 2.0, 3.0)))
    found = timing.calibrate("cpu", ["float32"])
    assert found["peak_tflops"]["float32"] == pytest.approx(2 * 2048**3 / 1e-3 / 1e12)
    assert found["peak_bandwidth_gbps"] == pytest.approx(2 * 32 * 4 / 1e-3 / 1e9)
    assert "fastest" in found["calibration"]


def test_the_model_hash_does_not_depend_on_what_a_process_imported_first():
    """bench.models loads its torch modules lazily: a worker that touched only some of them hashes the same."""
    code = ("import sys; from bench.measuring import rows; {first}"
            "print(rows.package_hash('bench.models'), rows.package_hash('bench.measuring.train'))")
    hashes = {subprocess.run([sys.executable, "-c", code.format(first=first)], capture_output=True, text=True,
                             check=True, cwd=ROOT).stdout.strip()
              for first in ("", "import bench.models.cost; ", "import bench.models.encoder; import bench.tasks; ")}
    assert len(hashes) == 1 and len(hashes.pop().split()) == 2
