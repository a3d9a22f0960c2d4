"""bench.reporting.analysis on hand-made tables whose answers are known."""

import json
import math

import numpy as np
import pandas as pd
import pytest

from bench.reporting import analysis

GROUP = dict(dim=64, batching="batch=8", dtype="float32", mode="forward", device="cuda")


def table(rows):
    """A results table from (mixer, seq_len, time_ms, peak_mem_mb[, status]) tuples in one group."""
    records = []
    for row in rows:
        mixer, seq_len, time_ms, peak_mem_mb, *rest = row
        status = rest[0] if rest else "ok"
        records.append(dict(GROUP, mixer=mixer, seq_len=seq_len, batch=8, status=status, time_ms=time_ms,
                            peak_mem_mb=peak_mem_mb, error="" if status == "ok" else f"{status} at {seq_len}"))
    return pd.DataFrame(records)


# -- Pareto -------------------------------------------------------------------------------------------

def test_pareto_front_is_exactly_the_non_dominated_points():
    rows = table([
        ("fast", 512, 1.0, 10.0),
        ("twin", 512, 1.0, 10.0),       # equal in both to `fast`: neither dominates, both kept
        ("lean", 512, 2.0, 5.0),
        ("dominated", 512, 3.0, 6.0),   # slower and bigger than `lean`
        ("same-time", 512, 1.0, 12.0),  # as fast as `fast` but bigger: dominated
        ("crashed", 512, np.nan, np.nan, "oom"),
        ("failed-with-time", 512, 0.1, 0.1, "error"),  # a failed row never counts, whatever it holds
        ("fast", 1024, 4.0, 40.0),      # another length is another frontier
        ("lean", 1024, 3.0, 20.0),
    ])
    front = analysis.pareto_front(rows)
    at_512 = front[front["seq_len"] == 512]
    assert list(at_512["mixer"]) == ["fast", "twin", "lean"]
    assert list(at_512["rank"]) == [1, 2, 3]
    assert list(front[front["seq_len"] == 1024]["mixer"]) == ["lean"]


def test_pareto_front_separates_groups_and_skips_rows_without_memory():
    rows = table([("a", 512, 1.0, 10.0), ("b", 512, 2.0, np.nan)])
    other = table([("b", 512, 2.0, 5.0)]).assign(dtype="bfloat16")
    front = analysis.pareto_front(pd.concat([rows, other]))
    assert sorted(zip(front["dtype"], front["mixer"])) == [("bfloat16", "b"), ("float32", "a")]


def test_pareto_front_of_nothing_has_the_columns():
    front = analysis.pareto_front(table([("a", 512, np.nan, np.nan, "oom")]))
    assert front.empty and {"mixer", "seq_len", "time_ms", "peak_mem_mb"} <= set(front.columns)


# -- scaling ------------------------------------------------------------------------------------------

def test_quadratic_time_has_exponent_two_fitted_on_the_upper_half():
    lengths = [128, 256, 512, 1024, 2048, 4096]
    rows = table([("quad", n, 1e-6 * n * n, 1e-3 * n) for n in lengths])
    fit = analysis.scaling_exponents(rows).iloc[0]
    assert fit["time_exponent"] == pytest.approx(2.0, abs=1e-9)
    assert fit["mem_exponent"] == pytest.approx(1.0, abs=1e-9)
    assert (fit["fit_seq_len_min"], fit["fit_seq_len_max"], fit["n_points"]) == (1024, 4096, 3)
    assert fit["time_r2"] == pytest.approx(1.0)


def test_n_log_n_time_has_exponent_a_little_above_one():
    rows = table([("fft", n, 1e-5 * n * math.log2(n), 1.0 + 0.001 * n) for n in (512, 1024, 2048, 4096)])
    fit = analysis.scaling_exponents(rows).iloc[0]
    assert 1.1 <= fit["time_exponent"] <= 1.2
    # four lengths: the upper half is two, so the rule's floor of three points applies
    assert (fit["fit_seq_len_min"], fit["fit_seq_len_max"], fit["n_points"]) == (1024, 4096, 3)


def test_launch_overhead_at_short_lengths_does_not_bend_the_fit():
    lengths = [2 ** k for k in range(6, 16)]
    rows = table([("quad", n, 0.05 + 1e-6 * n * n, 1.0) for n in lengths])  # overhead rules below ~256
    fit = analysis.scaling_exponents(rows).iloc[0]
    assert fit["time_exponent"] == pytest.approx(2.0, abs=0.02)
    everything = np.polyfit(np.log(lengths), np.log(rows["time_ms"]), 1)[0]
    assert everything < 1.9  # a fit over every length would be bent by the overhead
    assert fit["fit_seq_len_min"] == 2048 and fit["n_points"] == 5


def test_memory_exponent_is_nan_when_memory_is_constant_zero_or_missing():
    lengths = [256, 512, 1024, 2048]
    rows = pd.concat([table([("constant", n, 1e-3 * n, 4.0) for n in lengths]),
                      table([("zero", n, 1e-3 * n, 0.0) for n in lengths]),
                      table([("missing", n, 1e-3 * n, np.nan) for n in lengths])])
    fits = analysis.scaling_exponents(rows).set_index("mixer")
    assert fits["mem_exponent"].isna().all()
    assert fits["time_exponent"].notna().all()


def test_too_few_points_give_nan_exponents_and_failed_lengths_are_not_fitted():
    rows = table([("short", 512, 1.0, 1.0), ("short", 1024, 2.0, 2.0), ("short", 2048, np.nan, np.nan, "oom")])
    fit = analysis.scaling_exponents(rows).iloc[0]
    assert math.isnan(fit["time_exponent"]) and math.isnan(fit["mem_exponent"])
    assert (fit["fit_seq_len_max"], fit["n_points"]) == (1024, 2)


# -- crossovers and winners ---------------------------------------------------------------------------

def test_crossover_of_a_linear_and_a_quadratic_curve_is_where_they_meet():
    lengths = [256, 512, 1024, 2048]
    # n / 1000 = n^2 / 1e6 at n = 1000: the quadratic one is faster below, the linear one above
    rows = table([("linear", n, n / 1e3, 1.0) for n in lengths] + [("quadratic", n, n * n / 1e6, 1.0) for n in lengths])
    cross = analysis.crossovers(rows)
    assert len(cross) == 1
    row = cross.iloc[0]
    assert (row["mixer_a"], row["mixer_b"]) == ("linear", "quadratic")
    assert (row["seq_len_low"], row["seq_len_high"]) == (512, 1024)
    assert row["crossover_seq_len"] == pytest.approx(1000.0, rel=1e-9)
    assert (row["faster_below"], row["faster_above"]) == ("quadratic", "linear")


def test_crossovers_count_every_change_and_ignore_lengths_only_one_ran():
    rows = table([("a", 256, 1.0, 1), ("a", 512, 3.0, 1), ("a", 1024, 5.0, 1), ("a", 2048, 9.0, 1),
                  ("b", 256, 2.0, 1), ("b", 512, 2.0, 1), ("b", 1024, np.nan, np.nan, "oom"), ("b", 2048, 10.0, 1),
                  ("c", 256, 100.0, 1)])
    cross = analysis.crossovers(rows).sort_values("seq_len_low")
    assert list(zip(cross["seq_len_low"], cross["seq_len_high"])) == [(256, 512), (512, 2048)]
    assert list(cross["faster_above"]) == ["b", "a"]


def test_winners_name_the_fastest_and_its_margins():
    rows = table([("fft", 512, 1.0, 1), ("dct", 512, 1.5, 1), ("attention", 512, 3.0, 1),
                  ("fft", 1024, 4.0, 1), ("attention", 1024, 2.0, 1),
                  ("fft", 2048, 8.0, 1), ("dct", 2048, 10.0, 1), ("attention", 2048, np.nan, np.nan, "oom")])
    best = analysis.winners(rows).set_index("seq_len")
    assert list(best["mixer"]) == ["fft", "attention", "fft"]
    assert best.loc[512, "runner_up"] == "dct"
    assert best.loc[512, "margin"] == pytest.approx(1.5)
    assert best.loc[512, "speedup_vs_attention"] == pytest.approx(3.0)
    assert best.loc[1024, "speedup_vs_attention"] == pytest.approx(1.0)
    assert math.isnan(best.loc[2048, "speedup_vs_attention"])
    assert best.loc[2048, "n_mixers"] == 2


def test_summary_says_who_wins_by_how_much_and_where_it_changes():
    rows = table([("fft", 256, 2.0, 1), ("attention", 256, 1.0, 1),
                  ("fft", 512, 1.0, 1), ("attention", 512, 3.1, 1),
                  ("fft", 2048, 4.0, 1), ("hadamard", 2048, 2.0, 1), ("attention", 2048, 40.0, 1),
                  ("attention", 4096, np.nan, np.nan, "oom")]).assign(batching="batch=8", dtype="bfloat16")
    (sentence,) = analysis.summary(rows)
    assert sentence.startswith("At 512 tokens (bfloat16, forward, d=64, batch 8): fft is fastest")
    assert "3.1× faster than attention" in sentence
    assert "attention at 256, fft at 512, hadamard at 2k" in sentence
    assert "attention runs out of memory from 4k" in sentence


def test_summary_flags_noisy_timings():
    rows = table([("fft", 512, 1.0, 1), ("dct", 512, 1.1, 1), ("fft", 1024, 2.0, 1)])
    rows["time_ms_p20"], rows["time_ms_p80"] = rows["time_ms"] * 0.9, rows["time_ms"] * [3.0, 1.1, 1.1]
    (sentence,) = analysis.summary(rows)
    assert sentence.endswith("Noisy: 1 of 3 points (see the table of noisy points).")
    rows["time_ms_p80"] = rows["time_ms"] * 1.1
    assert "Noisy" not in analysis.summary(rows)[0]


def test_with_rounds_noise_is_the_disagreement_between_rounds_not_within_one():
    rows = table([("fft", 512, 1.0, 1), ("dct", 512, 1.1, 1), ("fft", 1024, 2.0, 1)])
    rows["rounds"] = 2
    rows["time_ms_p20"], rows["time_ms_p80"] = rows["time_ms"] * 0.5, rows["time_ms"] * 3.0  # wide, but one process
    rows["time_ms_lo"], rows["time_ms_hi"] = rows["time_ms"] * 0.95, rows["time_ms"] * [1.0, 1.5, 1.1]
    assert list(analysis.noisy(analysis.prepare(rows))) == [False, True, False]  # dct's rounds differ by 58%
    assert analysis.summary(rows)[0].endswith("Noisy: 1 of 3 points (see the table of noisy points).")


def test_loaded_points_are_those_measured_above_the_cores():
    rows = analysis.prepare(table([("fft", 512, 1.0, 1), ("dct", 512, 1.1, 1)]).assign(load_avg=[1.9, 3.2]))
    assert list(analysis.loaded(rows, 2)) == [False, True]
    assert not analysis.loaded(rows, None).any()


# -- roofline, failures, files -------------------------------------------------------------------------

def test_roofline_summary_gives_median_max_and_the_usual_bound():
    rows = table([("fft", n, 1.0, 1.0) for n in (256, 512, 1024)])
    rows["roofline_frac"] = [0.1, 0.2, 0.6]
    rows["bound"] = ["bytes", "bytes", "flops"]
    summary = analysis.roofline_summary(rows).iloc[0]
    assert summary["roofline_frac_median"] == pytest.approx(0.2)
    assert summary["roofline_frac_max"] == pytest.approx(0.6)
    assert summary["bound"] == "bytes" and summary["bound_share"] == pytest.approx(2 / 3)


def test_failures_merge_reasons_that_differ_only_in_numbers():
    rows = table([("hadamard", 384, np.nan, np.nan, "unsupported"), ("hadamard", 1536, np.nan, np.nan, "unsupported"),
                  ("attention", 8192, np.nan, np.nan, "oom")])
    lost = analysis.failures(rows).set_index("mixer")
    assert lost.loc["hadamard", "seq_lens"] == "384, 1.5k"
    assert lost.loc["hadamard", "error"] == "unsupported at 384"
    assert lost.loc["attention", "first_seq_len"] == 8192


def test_format_seq_len():
    assert [analysis.format_seq_len(n) for n in (128, 1000, 1024, 1536, 32768, 1 << 20)] == \
        ["128", "1000", "1k", "1.5k", "32k", "1M"]


def test_load_results_types_columns_and_keeps_the_later_duplicate(tmp_path):
    rows = table([("fft", 512, 2.0, 1.0), ("fft", 512, 1.0, 1.0)])
    rows.drop(columns=["batching"]).to_csv(tmp_path / "results.csv", index=False)
    loaded = analysis.load_results(tmp_path)
    assert len(loaded) == 1 and loaded["time_ms"].iloc[0] == 1.0
    assert loaded["batching"].iloc[0] == "batch=8"  # derived from the batch when the label is missing
    assert {"flops", "roofline_frac", "bound"} <= set(loaded.columns)
    assert analysis.load_env(tmp_path) == {}
    (tmp_path / "env.json").write_text(json.dumps({"device": "cuda"}))
    assert analysis.load_env(tmp_path) == {"device": "cuda"}


def test_load_results_of_an_empty_file(tmp_path):
    (tmp_path / "results.csv").write_text("mixer,seq_len,status,time_ms\n")
    assert analysis.load_results(tmp_path).empty
    paths = analysis.write_tables(tmp_path)
    assert [path.name for path in paths] == ["pareto.csv", "scaling.csv", "crossovers.csv", "winners.csv"]


def test_write_tables_on_a_fake_run(fake_run):
    run = fake_run(mixers=("fft", "attention", "dft-matrix"), seq_lens=(128, 256, 512, 1024, 2048),
                   dtypes=("float32",), modes=("forward",))
    for path in analysis.write_tables(run):
        written = pd.read_csv(path)
        assert not written.empty, path.name
    scaling = pd.read_csv(run / "scaling.csv")
    assert {"fit_seq_len_min", "fit_seq_len_max", "n_points", "time_exponent", "mem_exponent"} <= set(scaling.columns)
