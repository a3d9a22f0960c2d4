"""Rounds: a point's row pools the timed calls of every round; the spread between rounds is kept."""

import pytest

from bench.measuring.rounds import combine_rounds, weighted_quantile
from bench.measuring.points import mixer_point

POINT = mixer_point("fft", 64, 32, 1, "float32", "forward", "cpu")
PEAKS = {"peak_bandwidth_gbps": 10.0, "peak_tflops": {"float32": 0.1}}


def record(round_, samples, status="ok", error="", reps=None, **row):
    ordered = sorted(samples)
    median = ordered[len(ordered) // 2] if ordered else None
    return {"round": round_, "device_index": 0, "samples": ordered,
            "row": {"status": status, "error": error, "time_ms": median, "reps": reps or len(ordered),
                    "peak_mem_mb": row.get("peak_mem_mb", 1.0), "load_avg": row.get("load_avg", 0.5),
                    "source_hash": "abc", **row}}


def test_weighted_quantile_is_the_first_value_reaching_the_share():
    values = [(3.0, 1.0), (1.0, 1.0), (2.0, 2.0)]
    assert weighted_quantile(values, 0.5) == 2.0  # weights 1 (1.0), 2 (2.0), 1 (3.0): half reached at 2.0
    assert weighted_quantile(values, 0.2) == 1.0
    assert weighted_quantile(values, 1.0) == 3.0


def test_two_rounds_pool_their_samples_and_keep_the_round_medians_as_the_spread():
    fast = record(1, [1.0, 1.0, 1.1, 1.2, 1.0])
    slow = record(2, [2.0, 2.1, 2.0, 2.2, 2.0, 2.1, 2.0])
    row = combine_rounds(POINT, [slow, fast], 2, PEAKS)
    assert row["status"] == "ok" and row["rounds"] == 2 and row["reps"] == 12
    assert row["time_ms_lo"] == fast["row"]["time_ms"] and row["time_ms_hi"] == slow["row"]["time_ms"]
    assert row["time_ms"] == 2.0  # 12 calls, 5 near 1 ms and 7 near 2 ms: the median call took 2 ms
    assert row["time_ms_p20"] == 1.0 and row["time_ms_p80"] == 2.1
    assert row["tokens_per_s"] == pytest.approx(64 / 2.0e-3)  # rates follow the pooled median


def test_a_round_summarised_by_its_order_statistics_weighs_as_many_calls_as_it_timed():
    few = record(1, [1.0, 1.0, 1.0])  # 3 calls
    many = record(2, [5.0, 5.0, 5.0], reps=300)  # 300 calls, summarised by 3 order statistics
    assert combine_rounds(POINT, [few, many], 2, PEAKS)["time_ms"] == 5.0


def test_a_failed_round_fails_the_point_and_names_the_round():
    row = combine_rounds(POINT, [record(1, [1.0, 1.1]), record(2, [], status="timeout", error="no result")],
                                2, PEAKS)
    assert row["status"] == "timeout" and row["error"] == "round 2 of 2: no result"
    assert row["rounds"] == 2 and row["time_ms"] == record(1, [1.0, 1.1])["row"]["time_ms"]


def test_a_point_refused_in_its_first_round_says_so_without_a_round_number():
    row = combine_rounds(POINT, [record(1, [], status="unsupported", error="needs powers of two")], 2, PEAKS)
    assert row["status"] == "unsupported" and row["error"] == "needs powers of two" and row["rounds"] == 1


def test_memory_and_load_take_the_worst_round():
    row = combine_rounds(POINT, [record(1, [1.0], peak_mem_mb=3.0, load_avg=0.1),
                                        record(2, [1.0], peak_mem_mb=2.0, load_avg=4.0)], 2, PEAKS)
    assert row["peak_mem_mb"] == 3.0 and row["load_avg"] == 4.0


def test_the_row_is_the_last_ok_rounds_with_the_rounds_pooled_over_it():
    first = record(1, [1.0, 1.0, 1.0], measured_at="first", compute_dtype="float32")
    second = record(2, [2.0, 2.0, 2.0], measured_at="second", compute_dtype="float32")
    row = combine_rounds(POINT, [second, first], 2, PEAKS)
    assert row["measured_at"] == "second" and row["rounds"] == 2
    failed = record(3, [], status="error", error="boom", measured_at="third")
    row = combine_rounds(POINT, [first, failed], 3, PEAKS)
    assert row["measured_at"] == "first" and row["status"] == "error"  # the ok round's numbers, the failure's status
    only_failed = combine_rounds(POINT, [failed], 3, PEAKS)
    assert only_failed["measured_at"] == "third" and "time_ms_lo" not in only_failed


def test_energy_is_the_mean_of_the_rounds_that_measured_it_and_memory_the_largest():
    rounds = [record(1, [1.0], energy_mj=2.0, reserved_mem_mb=5.0, resident_mem_mb=1.0),
              record(2, [1.0], energy_mj=4.0, reserved_mem_mb=3.0, resident_mem_mb=7.0),
              record(3, [1.0], energy_mj=None)]
    row = combine_rounds(POINT, rounds, 3, PEAKS)
    assert row["energy_mj"] == 3.0 and row["reserved_mem_mb"] == 5.0 and row["resident_mem_mb"] == 7.0
    assert combine_rounds(POINT, [record(1, [1.0]), record(2, [1.0])], 2, PEAKS)["energy_mj"] is None


def test_the_row_names_the_devices_its_rounds_ran_on():
    a, b = record(1, [1.0]), record(2, [1.0])
    b["device_index"] = 1
    assert combine_rounds(POINT, [a, b], 2, PEAKS)["device_index"] == "0+1"
    b["device_index"] = 0
    assert combine_rounds(POINT, [a, b], 2, PEAKS)["device_index"] == "0"
    a["device_index"] = b["device_index"] = None
    assert combine_rounds(POINT, [a, b], 2, PEAKS)["device_index"] == ""


def test_a_quantile_past_the_whole_weight_is_the_largest_value():
    assert weighted_quantile([(2.0, 1.0), (1.0, 1.0)], 1.5) == 2.0
    assert weighted_quantile([(2.0, 1.0), (1.0, 3.0)], 0.75) == 1.0  # reached exactly at 1.0


def test_the_worst_load_is_kept_even_from_an_earlier_round_and_missing_readings_count_as_zero():
    row = combine_rounds(POINT, [record(1, [1.0], load_avg=4.0), record(2, [1.0], load_avg=0.1)], 2, PEAKS)
    assert row["load_avg"] == 4.0
    assert row["reserved_mem_mb"] == 0.0 and row["resident_mem_mb"] == 0.0  # no round measured them (a CPU)


def test_a_failure_without_a_reason_keeps_an_empty_one():
    first = record(1, [], status="error")
    del first["row"]["error"]
    assert combine_rounds(POINT, [first], 2, PEAKS)["error"] == ""
    second = record(2, [], status="oom")
    del second["row"]["error"]
    assert combine_rounds(POINT, [record(1, [1.0]), second], 2, PEAKS)["error"] == "round 2 of 2: "


def test_a_quantile_past_the_whole_weight_of_three_values_is_the_largest():
    assert weighted_quantile([(3.0, 1.0), (1.0, 1.0), (2.0, 1.0)], 1.5) == 3.0
