"""Property tests (Hypothesis) of the measuring side's pure functions: the plan's parsers, and how rounds pool."""

import pytest

pytest.importorskip("hypothesis", reason="the property tests need hypothesis (pyproject's [test] extra)")
from hypothesis import assume, given, settings, strategies as st  # noqa: E402

import mixers  # noqa: E402
from bench.measuring import plan, points, rounds  # noqa: E402
from bench.measuring.points import PlanError, mixer_point  # noqa: E402

# --- the plan's parsers ---------------------------------------------------------------------------------------

def spelled(value: int, style: int) -> str:
    """`value` as a user may write it: 512, or 1k / 2K for multiples of 1024, with stray spaces."""
    if value % 1024 == 0 and style % 3:
        return f" {value // 1024}{'k' if style % 3 == 1 else 'K'}"
    return str(value) if style % 2 else f"{value} "


@given(values=st.lists(st.tuples(st.integers(1, 10 ** 6) | st.integers(1, 64).map(lambda k: 1024 * k),
                                 st.integers(0, 5)), min_size=1, max_size=8))
def test_parse_ints_reads_back_every_spelling_sorted_and_unique(values):
    text = ",".join(spelled(value, style) for value, style in values)
    assert points.parse_ints(text, "seq-lens") == tuple(sorted({value for value, _ in values}))
    assert points.parse_ints([value for value, _ in values], "dims") == tuple(sorted({value for value, _ in values}))


@given(bad=st.sampled_from(["0", "-1", "1.5", "k", "1m", "", " ", "0k", "1e3", "x1", "1,,2", "½"]),
       good=st.lists(st.integers(1, 4096), max_size=3))
def test_parse_ints_refuses_any_list_with_a_bad_item_naming_the_option(bad, good):
    with pytest.raises(PlanError, match="--seq-lens") as error:
        points.parse_ints(",".join([*map(str, good), bad]), "seq-lens")
    assert "\n" not in str(error.value)


@given(zero=st.just("0"), rest=st.lists(st.integers(1, 100), max_size=3))
def test_parse_ints_takes_zero_only_where_allowed(zero, rest):
    text = ",".join([zero, *map(str, rest)])
    assert points.parse_ints(text, "vocab", allow_zero=True) == tuple(sorted({0, *rest}))
    with pytest.raises(PlanError, match="positive integers"):
        points.parse_ints(text, "vocab")


ALLOWED = list(points.DTYPE_NAMES)
SPELLINGS = ALLOWED + list(points.DTYPE_ALIASES)


@given(names=st.lists(st.sampled_from(SPELLINGS), min_size=1, max_size=6))
def test_parse_names_resolves_aliases_keeps_the_first_order_and_drops_repeats(names):
    resolved = [points.DTYPE_ALIASES.get(name, name) for name in names]
    expected = tuple(dict.fromkeys(resolved))
    assert points.parse_names(",".join(names), "dtypes", ALLOWED, points.DTYPE_ALIASES) == expected
    assert points.parse_names(names, "dtypes", ALLOWED, points.DTYPE_ALIASES) == expected


@given(names=st.lists(st.sampled_from(SPELLINGS), max_size=3), unknown=st.text("abcxyz0123_", min_size=1, max_size=8))
def test_parse_names_refuses_an_unknown_name_and_lists_the_allowed(names, unknown):
    assume(unknown not in SPELLINGS)
    with pytest.raises(PlanError) as error:
        points.parse_names(",".join([*names, unknown]), "dtypes", ALLOWED, points.DTYPE_ALIASES)
    assert repr(unknown) in str(error.value) and "allowed: float32, float64, bfloat16, float16" in str(error.value)


NAMES = mixers.available()
layouts = st.one_of(st.sampled_from(NAMES), st.tuples(st.sampled_from(NAMES), st.sampled_from(NAMES),
                                                        st.integers(1, 24))
                    .filter(lambda t: t[0] != t[1]).map(lambda t: f"{t[0]}+{t[1]}:{t[2]}"))


@given(chosen=st.lists(layouts, min_size=1, max_size=5))
def test_parse_layouts_round_trips_names_and_layouts_in_order_without_repeats(chosen):
    assert plan.parse_layouts(",".join(chosen)) == tuple(dict.fromkeys(chosen))
    assert plan.parse_layouts(" , ".join(chosen)) == tuple(dict.fromkeys(chosen))


@given(chosen=st.lists(st.sampled_from(NAMES), max_size=2), unknown=st.text("qwz-", min_size=1, max_size=6))
def test_parse_layouts_refuses_an_unknown_mixer_in_one_line(chosen, unknown):
    with pytest.raises(PlanError) as error:
        plan.parse_layouts(",".join([*chosen, unknown]), "mixers")
    assert repr(unknown) in str(error.value) and "\n" not in str(error.value) and "--mixers" in str(error.value)


@given(base=st.sampled_from(NAMES), top_layers=st.integers(-3, 0) | st.just("x"))
def test_parse_layouts_refuses_a_layout_whose_k_is_not_a_positive_integer(base, top_layers):
    other = next(name for name in NAMES if name != base)
    with pytest.raises(PlanError, match="in --mixers"):
        plan.parse_layouts(f"{base}+{other}:{top_layers}")


# --- rounds ---------------------------------------------------------------------------------------------------

samples = st.lists(st.integers(1, 50).map(lambda v: v / 10), min_size=1, max_size=9)


@given(values=st.lists(st.tuples(st.integers(1, 50), st.integers(1, 5)), min_size=1, max_size=12),
       q=st.sampled_from([0.0, 0.1, 0.2, 0.25, 0.5, 0.8, 0.9, 1.0]))
def test_weighted_quantile_is_the_smallest_value_whose_weight_reaches_the_share(values, q):
    total = sum(weight for _, weight in values)
    result = rounds.weighted_quantile(values, q)
    at_or_below = sum(weight for value, weight in values if value <= result)
    below = sum(weight for value, weight in values if value < result)
    assert result in {value for value, _ in values}
    assert at_or_below >= q * total and (below < q * total or q == 0 and below == 0)
    assert rounds.weighted_quantile(values, 0.5) <= rounds.weighted_quantile(values, 0.8)
    assert rounds.weighted_quantile(list(reversed(values)), q) == result  # order does not matter


def round_record(round_, values, reps):
    """A round as the runner logs it: its order statistics, its repetitions, its own median."""
    ordered = sorted(values)
    median = rounds.weighted_quantile([(v, 1.0) for v in ordered], 0.5)
    return {"round": round_, "device_index": 0, "samples": ordered,
            "row": {"status": "ok", "error": "", "time_ms": median, "reps": reps, "peak_mem_mb": 1.0,
                    "source_hash": "h"}}


POINT = mixer_point("fft", 64, 32, 1, "float32", "forward", "cpu")
PEAKS = {"peak_bandwidth_gbps": 10.0, "peak_tflops": {"float32": 0.1}}


@settings(deadline=None)
@given(measured=st.lists(st.tuples(samples, st.integers(1, 400)), min_size=1, max_size=4))
def test_the_pooled_median_lies_between_the_rounds_medians(measured):
    records = [round_record(i + 1, values, max(reps, len(values))) for i, (values, reps) in enumerate(measured)]
    row = rounds.combine_rounds(POINT, records, len(records), PEAKS)
    medians = [record["row"]["time_ms"] for record in records]
    assert row["time_ms_lo"] == min(medians) and row["time_ms_hi"] == max(medians)
    assert row["time_ms_lo"] <= row["time_ms"] <= row["time_ms_hi"]
    assert row["rounds"] == len(records) and row["reps"] == sum(record["row"]["reps"] for record in records)
    assert row["tokens_per_s"] == pytest.approx(64 / (row["time_ms"] / 1e3))  # from the pooled time, however many
    if len(records) > 1:
        assert row["time_ms_p20"] <= row["time_ms"] <= row["time_ms_p80"]
    else:  # one round: its own row stands, and its spread is nil
        assert row["time_ms"] == row["time_ms_lo"] == row["time_ms_hi"] == medians[0]


@given(order=st.permutations([1, 2, 3]), failing=st.sampled_from([None, 1, 2, 3]),
       status=st.sampled_from(["oom", "timeout", "error"]))
def test_any_failed_round_fails_the_point_with_the_first_failure(order, failing, status):
    records = [round_record(r, [float(r)], 1) for r in (1, 2, 3)]
    if failing is not None:
        records[failing - 1]["row"].update(status=status, error="why")
    row = rounds.combine_rounds(POINT, [records[i - 1] for i in order], 3, PEAKS)
    if failing is None:
        assert row["status"] == "ok" and (row["time_ms_lo"], row["time_ms_hi"]) == (1.0, 3.0)
    else:
        assert row["status"] == status
        assert row["error"] == ("why" if failing == 1 else f"round {failing} of 3: why")
