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


def test_the_front_counts_held_memory_so_a_small_peak_over_big_tables_loses_its_place():
    # `tables` has the smallest peak but holds 50 MB between calls (like dft-matrix's matrices); `plain` holds none
    rows = table([("tables", 512, 2.0, 1.0), ("plain", 512, 1.0, 5.0)]).assign(resident_mem_mb=[50.0, 0.0])
    assert sorted(analysis.pareto_front(rows.drop(columns="resident_mem_mb"))["mixer"]) == ["plain", "tables"]
    front = analysis.pareto_front(rows)
    assert list(front["mixer"]) == ["plain"]
    assert list(front["total_mem_mb"]) == [5.0] and list(front["peak_mem_mb"]) == [5.0]
    # held memory alone can also win a place: `tables` holding less than `plain` is on the front again
    front = analysis.pareto_front(rows.assign(resident_mem_mb=[1.0, 10.0]))
    assert list(front["mixer"]) == ["plain", "tables"] and list(front["total_mem_mb"]) == [15.0, 2.0]


def test_total_memory_is_held_plus_peak_and_the_peak_alone_where_no_held_memory_was_recorded():
    rows = analysis.prepare(table([("a", 512, 1.0, 4.0), ("b", 512, 1.0, 4.0), ("c", 512, 1.0, np.nan)])
                            .assign(resident_mem_mb=[3.0, np.nan, 3.0]))
    assert analysis.total_mem_mb(rows).tolist()[:2] == [7.0, 4.0] and np.isnan(analysis.total_mem_mb(rows).iloc[2])
    old = table([("a", 512, 1.0, 4.0)])  # a run folder from before resident_mem_mb
    assert analysis.total_mem_mb(old).tolist() == [4.0]


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
    assert math.isnan(fit["time_r2"]) and math.isnan(fit["mem_r2"])
    assert (fit["fit_seq_len_max"], fit["n_points"]) == (1024, 2)


def test_a_point_measured_twice_is_fitted_once_and_memory_at_the_floor_still_counts():
    rows = table([("lin", 512, 1.0, 0.01), ("lin", 1024, 2.0, 0.02), ("lin", 2048, 9.0, 0.09),
                  ("lin", 2048, 4.0, 0.04)])  # 2048 measured again, with memory exactly MIN_MEM_MB at 512
    fit = analysis.scaling_exponents(rows).iloc[0]
    assert fit["n_points"] == 3
    assert fit["time_exponent"] == pytest.approx(1.0) and fit["mem_exponent"] == pytest.approx(1.0)


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
    assert sentence.startswith("At 512 tokens") and sentence.endswith("Noisy: 1 of 3 points (see the table of noisy points).")
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


# -- edges: reading a folder ---------------------------------------------------------------------------

def test_prepare_reads_numbers_text_and_status_leniently():
    rows = table([("fft", 512, 1.0, 1.0), ("dct", 384, 2.0, 1.0), ("zero", 512, 0.0, 1.0)])
    rows = rows.drop(columns=["batching", "device"]).assign(status=["OK", " ok ", "ok"], batch=[3, np.nan, 8],
                                                           energy_mj=["n/a", "1.5", ""])
    ready = analysis.prepare(rows)
    assert list(ready["status"]) == ["ok", "ok", "ok"]  # case and spaces as a hand-edited table may have them
    assert list(ready["batching"]) == ["batch=3", "", "batch=8"]  # no batch, no label to derive
    assert list(ready["device"]) == ["", "", ""] and list(ready["bound"]) == ["", "", ""]
    assert ready["energy_mj"].iloc[1] == 1.5 and ready["energy_mj"].drop(1).isna().all()
    for column in ("seq_len", "batch", "dim"):
        assert ready[column].dtype.kind == "i", column  # whole numbers stay whole (384 and 3 are not even)
    assert ready["time_ms"].dtype == float
    assert list(analysis.ok_rows(rows)["mixer"]) == ["fft", "dct"]  # a time of 0 is no measurement


def test_tables_list_series_and_groups_in_key_order_whatever_the_input_order():
    lengths = (256, 512, 1024)
    rows = pd.concat([table([("zeta", n, 1e-3 * n, 1.0) for n in lengths]).assign(dtype="float64"),
                      table([("alpha", n, 2e-3 * n, 1.0) for n in lengths]).assign(dtype="float64"),
                      table([("zeta", n, 1e-3 * n, 1.0) for n in lengths])])
    fits = analysis.scaling_exponents(rows)
    assert list(zip(fits["mixer"], fits["dtype"])) == [("alpha", "float64"), ("zeta", "float32"), ("zeta", "float64")]
    assert all(fits[column].dtype.kind == "i" for column in ("fit_seq_len_min", "fit_seq_len_max", "n_points"))
    assert [line.split(": ")[1][:4] for line in analysis.summary(rows)] == ["zeta", "zeta"]
    assert [key["dtype"] for key, _ in analysis.group_summaries(rows)] == ["float32", "float64"]


def test_load_results_keeps_text_as_written_and_reads_a_missing_or_empty_file_as_no_rows(tmp_path):
    rows = table([("fft", 512, 1.0, 1.0), ("fft", 1024, np.nan, np.nan, "error")])
    # a git hash of digits, nvidia-smi's "N/A", an exception whose message is "None": text, not numbers or NaN
    rows = rows.assign(source_hash="0123456", device_name="N/A", error=["", "None"])
    rows.to_csv(tmp_path / "results.csv", index=False)
    loaded = analysis.load_results(tmp_path)
    assert list(loaded["source_hash"]) == ["0123456", "0123456"]
    assert list(loaded["device_name"]) == ["N/A", "N/A"] and list(loaded["error"]) == ["", "None"]
    assert "index" not in loaded.columns and list(loaded.index) == [0, 1]
    (tmp_path / "results.csv").write_text("")  # a sweep that was stopped before its first row
    assert analysis.load_results(tmp_path).empty
    assert analysis.load_results(tmp_path / "nowhere").empty
    (tmp_path / "env.json").write_text("[1, 2]")  # JSON, but not an object
    assert analysis.load_env(tmp_path) == {}
    (tmp_path / "env.json").write_text("{not json")
    assert analysis.load_env(tmp_path) == {}


def test_write_tables_writes_the_tables_columns_without_an_index_and_six_significant_digits(tmp_path):
    rows = table([("fft", 512, 1.23456789, 2.0), ("attention", 512, 2.0, 1.0)]).assign(tokens_per_s=1234567890.0)
    rows.to_csv(tmp_path / "results.csv", index=False)
    paths = analysis.write_tables(tmp_path)
    loaded = analysis.load_results(tmp_path)
    expected = {"pareto.csv": analysis.pareto_front(loaded), "scaling.csv": analysis.scaling_exponents(loaded),
                "crossovers.csv": analysis.crossovers(loaded), "winners.csv": analysis.winners(loaded)}
    assert [path.name for path in paths] == list(expected)
    for path in paths:
        assert list(pd.read_csv(path).columns) == list(expected[path.name].columns), path.name
    text = (tmp_path / "pareto.csv").read_text()
    assert ",1.23457," in text and ",1.23457e+09," in text and "1.2345678" not in text


def test_write_tables_adds_the_quality_tables_when_the_folder_has_a_quality_run(tmp_path):
    common = dict(task="mqar", seq_len=64, dim=32, layers=2, batch=16, steps=100, dtype="float32", device="cpu",
                  status="ok", lr=1e-3, seed=0)
    pd.DataFrame([dict(common, layout="attention", accuracy=0.9, val_accuracy=0.9, step_ms=4.0),
                  dict(common, layout="fft", accuracy=0.6, val_accuracy=0.6, step_ms=2.0),
                  dict(common, layout="linear", accuracy=0.5, val_accuracy=0.5, step_ms=3.0)]
                 ).to_csv(tmp_path / "quality.csv", index=False)
    paths = analysis.write_tables(tmp_path)  # no results.csv: only the quality tables
    assert [path.name for path in paths] == ["quality_best.csv", "quality_front.csv"]
    assert sorted(pd.read_csv(tmp_path / "quality_best.csv")["layout"]) == ["attention", "fft", "linear"]
    front = pd.read_csv(tmp_path / "quality_front.csv")
    assert list(front["layout"]) == ["fft", "attention"] and list(front["rank"]) == [1, 2]


# -- edges: fronts, fits, crossovers, winners ----------------------------------------------------------

def test_pareto_front_has_exactly_its_documented_columns():
    front = analysis.pareto_front(table([("a", 512, 1.0, 2.0), ("b", 512, 2.0, 1.0)]))
    assert list(front.columns) == [*analysis.POINT_GROUP_KEYS, "mixer", "batch", "time_ms", "time_ms_p20",
                                   "time_ms_p80", "peak_mem_mb", "tokens_per_s", "rank", "total_mem_mb"]
    assert list(front.index) == [0, 1]


def test_r2_says_how_well_the_power_law_fits():
    lengths = [512, 1024, 2048, 4096]  # the upper three are fitted
    rows = table([("bumpy", n, 1e-3 * n * f, 1e-2 * n * g) for n, f, g in zip(lengths, (1, 1, 1.5, 1), (1, 1, 0.6, 1))])
    fit = analysis.scaling_exponents(rows).iloc[0]
    x = np.log([1024, 2048, 4096])
    for values, exponent, r2 in ((1e-3 * np.array([1024, 3072, 4096]), "time_exponent", "time_r2"),
                                 (1e-2 * np.array([1024, 2048 * 0.6, 4096]), "mem_exponent", "mem_r2")):
        slope = np.polyfit(x, np.log(values), 1)[0]
        assert fit[exponent] == pytest.approx(slope)
        assert fit[r2] == pytest.approx(np.corrcoef(x, np.log(values))[0, 1] ** 2)  # r² of a line fit
        assert 0.5 < fit[r2] < 0.99
    flat = analysis.scaling_exponents(table([("flat", n, 2.0, 1e-2 * n) for n in lengths])).iloc[0]
    assert flat["time_exponent"] == pytest.approx(0.0, abs=1e-12)
    assert math.isnan(flat["time_r2"])  # nothing varies, so nothing is explained


def test_crossover_edges_ties_group_keys_the_faster_side_and_a_remeasured_point():
    # a and b tie at 512: the change from 256 to 1024 is still one crossover, across the tie
    rows = table([("a", 256, 1.0, 1), ("a", 512, 2.0, 1), ("a", 1024, 4.0, 1),
                  ("b", 256, 2.0, 1), ("b", 512, 2.0, 1), ("b", 1024, 2.0, 1)]).assign(dtype="bfloat16")
    (row,) = analysis.crossovers(rows).to_dict("records")
    assert (row["seq_len_low"], row["seq_len_high"]) == (256, 1024)
    assert row["crossover_seq_len"] == pytest.approx(512.0)
    assert (row["faster_below"], row["faster_above"]) == ("a", "b")
    assert {key: row[key] for key in ("scope", "dim", "batching", "dtype", "mode", "device")} == \
        dict(scope="mixer", dim=64, batching="batch=8", dtype="bfloat16", mode="forward", device="cuda")
    # a point measured again: the later row is the one that counts (as load_results keeps it)
    again = pd.concat([table([("a", 256, 1.0, 1), ("a", 512, 3.0, 1), ("b", 256, 2.0, 1), ("b", 512, 2.0, 1)]),
                       table([("a", 512, 1.5, 1)])])
    assert analysis.crossovers(again).empty


def test_winners_count_each_mixer_once_and_give_the_runner_up_time():
    rows = table([("fft", 512, 2.0, 1), ("fft", 512, 2.4, 1), ("dct", 512, 3.0, 1),  # fft measured twice
                  ("dct", 1024, 4.0, 1)])
    best = analysis.winners(rows)
    assert list(best.columns) == [*analysis.POINT_GROUP_KEYS, "mixer", "time_ms", "runner_up", "runner_up_time_ms",
                                  "margin", "attention_time_ms", "speedup_vs_attention", "n_mixers"]
    assert list(best.index) == [0, 1] and best["seq_len"].dtype.kind == "i"
    at_512, alone = best.to_dict("records")
    assert (at_512["mixer"], at_512["runner_up"], at_512["runner_up_time_ms"]) == ("fft", "dct", 3.0)
    assert at_512["n_mixers"] == 2 and at_512["margin"] == pytest.approx(1.5)
    assert (alone["mixer"], alone["runner_up"], alone["n_mixers"]) == ("dct", "", 1)
    assert math.isnan(alone["runner_up_time_ms"]) and math.isnan(alone["margin"])
    assert analysis.winners(table([("fft", 512, np.nan, np.nan, "oom")]))["seq_len"].dtype.kind == "i"  # none ran


# -- edges: roofline, failures ---------------------------------------------------------------------------

def test_roofline_summary_counts_points_medians_and_ignores_unknown_bounds():
    rows = table([("fft", n, 1.0, 1.0) for n in (256, 512, 1024)] + [("dct", n, 1.0, 1.0) for n in (256, 512)])
    rows["roofline_frac"], rows["tflops"], rows["gbps"] = 0.1, [1.0, 2.0, 9.0, 3.0, 5.0], [10.0, 30.0, 20.0, 7.0, 9.0]
    rows["bound"] = ["", "", "flops", "", ""]  # a point whose roofline term is unknown says nothing about it
    summary = analysis.roofline_summary(rows).set_index("mixer")
    assert summary.loc["fft", "n_points"] == 3 and summary.loc["dct", "n_points"] == 2
    assert summary.loc["fft", "bound"] == "flops" and summary.loc["fft", "bound_share"] == 1.0
    assert summary.loc["dct", "bound"] == "" and math.isnan(summary.loc["dct", "bound_share"])
    assert (summary.loc["fft", "tflops_median"], summary.loc["fft", "gbps_median"]) == (2.0, 20.0)
    assert (summary.loc["dct", "tflops_median"], summary.loc["dct", "gbps_median"]) == (4.0, 8.0)
    nothing = analysis.roofline_summary(table([("fft", 512, np.nan, np.nan, "oom")]))
    assert nothing.empty and {"mixer", "n_points", "roofline_frac_median", "bound"} <= set(nothing.columns)


def test_failures_list_only_failed_rows_with_the_first_line_of_their_own_reason():
    rows = table([("fft", 512, 1.0, 1.0), ("fft", 4096, np.nan, np.nan, "oom"), ("fft", 1024, np.nan, np.nan, "error"),
                  ("dct", 2048, np.nan, np.nan, "timeout"), ("dct", 8192, np.nan, np.nan, "oom"),
                  ("dct", 16384, np.nan, np.nan, "oom"), ("dct", 32768, np.nan, np.nan, "error")])
    rows["error"] = ["", "CUDA out of memory at 4096", "RuntimeError: bad shape\n  at line 2", "no result within 120 s",
                     "CUDA out of memory", "host out of memory", ""]
    lost = analysis.failures(rows)
    assert "ok" not in set(lost["status"]) and len(lost) == 6
    by = {(m, s, e): n for m, s, e, n in zip(lost["mixer"], lost["status"], lost["error"], lost["seq_lens"])}
    # rows are sorted by length before the reasons are attached: each reason stays with its own row
    assert by == {("fft", "oom", "CUDA out of memory at 4096"): "4k", ("fft", "error", "RuntimeError: bad shape"): "1k",
                  ("dct", "timeout", "no result within 120 s"): "2k", ("dct", "oom", "CUDA out of memory"): "8k",
                  ("dct", "oom", "host out of memory"): "16k",  # a different reason, not merged
                  ("dct", "error", ""): "32k"}  # no reason given


def test_failures_cut_a_long_reason_and_accept_a_row_without_a_length():
    rows = table([("fft", 512, np.nan, np.nan, "error"), ("dct", 512, np.nan, np.nan, "error")])
    rows["error"] = ["x" * 400, "worker lost"]
    rows.loc[1, "seq_len"] = np.nan  # a failure before any length was tried
    lost = analysis.failures(rows).set_index("mixer")
    assert lost.loc["fft", "error"] == "x" * 300
    assert lost.loc["dct", "seq_lens"] == "" and math.isnan(lost.loc["dct", "first_seq_len"])


# -- edges: the written answer, noise, load ----------------------------------------------------------------

def test_summary_margins_just_above_or_below_ten_percent():
    assert "1.1× faster than dct" in analysis.summary(table([("fft", 512, 1.0, 1), ("dct", 512, 1.1, 1)]))[0]
    assert "9% faster than dct" in analysis.summary(table([("fft", 512, 1.0, 1), ("dct", 512, 1.0945, 1)]))[0]


def test_summary_defaults_answer_at_512_against_attention_and_a_lone_mixer_has_no_margin():
    # 256 and 1024 are one octave from 512 each: the shorter one is the answer
    rows = table([("fft", 256, 1.0, 1), ("fft", 1024, 3.0, 1)])
    assert analysis.summary(rows)[0].startswith("At 256 tokens")
    assert analysis.group_summaries(rows)[0][1].startswith("At 256 tokens")
    (sentence,) = analysis.summary(table([("fft", 512, 1.0, 1), ("dct", 512, 2.0, 1), ("attention", 512, 4.0, 1)]))
    assert "fft is fastest (1 ms), 2.0× faster than dct (runner-up) and 4.0× faster than attention." in sentence
    (sentence,) = analysis.summary(table([("fft", 512, 1.0, 1), ("linear", 512, 2.0, 1), ("dct", 512, 3.0, 1)]),
                                   baseline="dct")
    assert "2.0× faster than linear (runner-up) and 3.0× faster than dct." in sentence
    (sentence,) = analysis.summary(table([("fft", 512, 1.0, 1)]))
    assert "fft is fastest (1 ms). It is fastest at every measured length (512)." in sentence


def test_summary_names_each_kind_of_failure_in_its_own_group_only():
    rows = pd.concat([
        table([("fft", 512, 1.0, 1), ("fft", 1024, 2.0, 1), ("slow", 512, 3.0, 1),
               ("slow", 1024, np.nan, np.nan, "timeout"), ("slow", 2048, np.nan, np.nan, "timeout"),
               ("broken", 2048, np.nan, np.nan, "error"), ("odd", 1536, np.nan, np.nan, "unsupported")]),
        table([("fft", 512, 1.0, 1), ("dct", 512, 2.0, 1)]).assign(dtype="float64")])
    first, second = analysis.summary(rows)
    assert first.endswith(" broken fails from 2k; slow times out from 1k.")  # unsupported is no failure to report
    assert second.endswith("It is fastest at every measured length (512).")


def test_noise_and_load_thresholds_are_exceeded_not_reached():
    rows = analysis.prepare(table([("fft", 512, 1.0, 1), ("dct", 512, 1.0, 1), ("fft", 1024, 1.0, 1),
                                   ("dct", 1024, 1.0, 1)]))
    rows["rounds"] = [2, 2, 1, 1]
    rows["time_ms_lo"], rows["time_ms_hi"] = 1.0, [1.25, 1.26, 1.0, 1.0]  # rounds 25% apart: not yet noisy
    rows["time_ms_p20"], rows["time_ms_p80"] = 1.0, [1.0, 1.0, 2.0, 2.01]  # p80 / p20 of 2: not yet noisy
    assert list(analysis.noisy(rows)) == [False, True, False, True]
    rows["load_avg"] = [2.5, 2.51, np.nan, 0.5]  # 2 cores and the half a core of slack
    busy = analysis.loaded(rows, 2)
    assert list(busy) == [False, True, False, False]
    assert list(rows[busy]["seq_len"]) == [512]  # usable as a row mask
    assert list(analysis.loaded(rows, None)) == [False] * 4 and analysis.loaded(rows, 0).dtype == bool


def test_the_scaling_fit_uses_the_later_of_two_measurements_of_a_point():
    lengths = [2 ** k for k in range(6, 16)]  # over 16 rows per series: pandas' default sort is not stable there
    first = table([("quad", n, 3e-6 * n * n * (1 + 0.3 * (i % 3)), 1e-3 * n) for i, n in enumerate(lengths)])
    again = table([("quad", n, 1e-6 * n * n, 1e-3 * n) for n in lengths])
    fit = analysis.scaling_exponents(pd.concat([first, again])).iloc[0]
    assert fit["time_exponent"] == pytest.approx(2.0, abs=1e-9) and fit["n_points"] == 5
