"""Property tests (Hypothesis) of the reading side: Pareto and speed–accuracy fronts, the scaling fit."""

import math

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("hypothesis", reason="the property tests need hypothesis (pyproject's [test] extra)")
from hypothesis import given, settings, strategies as st  # noqa: E402

from bench.reporting import analysis, quality  # noqa: E402

# Few distinct values, so that ties (equal time, equal memory, equal both) are common.
values = st.sampled_from([0.5, 1.0, 1.5, 2.0, 3.0, 8.0])
# (mixer, seq_len, time_ms, peak_mem_mb, status), one row per mixer and length (as analysis.load_results gives them)
points = st.lists(st.tuples(st.sampled_from("abcdefg"), st.sampled_from([512, 1024]), values, values,
                            st.sampled_from(["ok", "ok", "ok", "oom"])), max_size=14, unique_by=lambda row: row[:2])


def dominates(p, q):
    """p is no worse than q in both and better in one (smaller is better)."""
    return p[0] <= q[0] and p[1] <= q[1] and (p[0] < q[0] or p[1] < q[1])


@settings(max_examples=30, deadline=None)
@given(rows=points)
def test_the_pareto_front_keeps_exactly_the_points_nothing_dominates(rows):
    table = pd.DataFrame([dict(mixer=m, seq_len=n, dim=64, batch=8, batching="batch=8", dtype="float32",
                               mode="forward", device="cpu", status=s, time_ms=t if s == "ok" else None,
                               peak_mem_mb=mem if s == "ok" else None)
                          for m, n, t, mem, s in rows], columns=["mixer", "seq_len", "dim", "batch", "batching",
                                                                "dtype", "mode", "device", "status", "time_ms",
                                                                "peak_mem_mb"])
    front = analysis.pareto_front(table)
    for seq_len in (512, 1024):
        ran = [(t, mem, m) for m, n, t, mem, s in rows if n == seq_len and s == "ok"]
        kept = front[front["seq_len"] == seq_len]
        kept_points = list(zip(kept["time_ms"], kept["peak_mem_mb"], kept["mixer"]))
        for point in kept_points:
            assert not any(dominates(other, point) for other in ran), (point, ran)
        for point in ran:
            if point not in kept_points:
                assert any(dominates(other, point) for other in ran), (point, kept_points)
        assert sorted(kept_points) == sorted(set(p for p in ran if not any(dominates(o, p) for o in ran)))
        assert list(kept["rank"]) == list(range(1, len(kept) + 1))
        assert list(kept["time_ms"]) == sorted(kept["time_ms"])  # fastest first


@settings(max_examples=30, deadline=None)
@given(rows=st.lists(st.tuples(st.sampled_from("abcdef"), values, st.sampled_from([0.2, 0.5, 0.7, 0.9])),
                     min_size=1, max_size=10, unique_by=lambda row: row[0]))
def test_the_speed_accuracy_front_keeps_exactly_the_runs_nothing_beats(rows):
    best = pd.DataFrame([dict(task="mqar", seq_len=64, layout=layout, step_ms=step_ms, accuracy=accuracy)
                         for layout, step_ms, accuracy in rows])
    front = quality.front(best)
    kept = set(front["layout"])
    for layout, step_ms, accuracy in rows:
        # beaten: another run at most as slow and more accurate, or faster and at least as accurate
        beaten = any(o_ms <= step_ms and o_acc > accuracy or o_ms < step_ms and o_acc >= accuracy
                     for o, o_ms, o_acc in rows if o != layout)
        same = [o for o, o_ms, o_acc in rows if (o_ms, o_acc) == (step_ms, accuracy)]
        if beaten:
            assert layout not in kept, (layout, rows)
        elif len(same) == 1:
            assert layout in kept, (layout, rows)
        else:  # identical runs: the front keeps one of them
            assert len(kept & set(same)) == 1
    assert list(front["step_ms"]) == sorted(front["step_ms"]) and list(front["rank"]) == list(range(1, len(front) + 1))
    assert list(front["accuracy"]) == sorted(front["accuracy"])  # slower is only worth it when more accurate


@settings(max_examples=25, deadline=None)
@given(exponent=st.floats(0.0, 3.0), memory_exponent=st.floats(0.1, 2.5), scale=st.floats(1e-6, 1e3),
       lengths=st.lists(st.sampled_from([2 ** k for k in range(4, 18)]), min_size=3, max_size=10, unique=True))
def test_the_scaling_fit_recovers_the_exponent_of_a_power_law(exponent, memory_exponent, scale, lengths):
    table = pd.DataFrame([dict(mixer="m", seq_len=n, dim=64, batch=1, batching="batch=1", dtype="float32",
                               mode="forward", device="cpu", status="ok", time_ms=scale * n ** exponent,
                               peak_mem_mb=n ** memory_exponent) for n in lengths])
    fit = analysis.scaling_exponents(table).iloc[0]
    assert math.isclose(fit["time_exponent"], exponent, abs_tol=1e-6)
    assert math.isclose(fit["mem_exponent"], memory_exponent, abs_tol=1e-6)
    fitted = analysis.fit_range(lengths)
    assert (fit["fit_seq_len_min"], fit["fit_seq_len_max"], fit["n_points"]) == (min(fitted), max(fitted), len(fitted))
    assert len(fitted) == max(3, math.ceil(len(lengths) / 2)) and fitted == sorted(lengths)[-len(fitted):]
    if exponent > 1e-3:
        assert math.isclose(fit["time_r2"], 1.0, abs_tol=1e-9)


@settings(max_examples=25, deadline=None)
@given(exponent=st.floats(0.5, 2.5), noise=st.lists(st.floats(-0.02, 0.02), min_size=8, max_size=8))
def test_a_few_percent_of_noise_moves_the_fitted_exponent_a_little(exponent, noise):
    lengths = [2 ** k for k in range(8, 16)]
    table = pd.DataFrame([dict(mixer="m", seq_len=n, dim=64, batch=1, batching="batch=1", dtype="float32",
                               mode="forward", device="cpu", status="ok", time_ms=1e-4 * n ** exponent * (1 + e),
                               peak_mem_mb=1.0) for n, e in zip(lengths, noise)])
    fit = analysis.scaling_exponents(table).iloc[0]
    # log(1.02) / log(2) over the 3 octaves fitted bounds the slope's error: at most ~0.03
    assert abs(fit["time_exponent"] - exponent) < 0.03 and np.isnan(fit["mem_exponent"])
