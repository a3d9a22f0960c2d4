"""bench.reporting.compare on hand-made runs: which row a point compares with, the verdicts, and the plot's lines."""

import math

import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure

from bench.reporting import compare, style


@pytest.fixture(autouse=True)
def low_resolution(monkeypatch):
    monkeypatch.setattr(style, "DPI", 20)  # compare() also draws compare.png; its content is checked below


def row(mixer="fft", seq_len=512, time_ms=1.0, status="ok", lo=None, hi=None, rounds=2, p20=None, p80=None,
        peak_mem_mb=1.0, dtype="float32", mode="forward", device_name="cpu", device="cpu", batching="batch=8"):
    return dict(mixer=mixer, seq_len=seq_len, dim=64, batch=8, batching=batching, dtype=dtype, mode=mode,
                device=device, device_name=device_name, status=status, time_ms=time_ms if status == "ok" else None,
                time_ms_lo=lo, time_ms_hi=hi, time_ms_p20=p20, time_ms_p80=p80, rounds=rounds,
                peak_mem_mb=peak_mem_mb if status == "ok" else None, error="" if status == "ok" else status)


def write(folder, rows, env=None):
    folder.mkdir(parents=True)
    pd.DataFrame(rows).to_csv(folder / "results.csv", index=False)
    if env is not None:
        (folder / "env.json").write_text(pd.Series(env).to_json())
    return folder


# --- the rule: the later row of a point is the one compared ------------------------------------------------

def test_an_ok_row_followed_by_an_oom_row_compares_as_oom(tmp_path):
    run_a = write(tmp_path / "a", [row(time_ms=1.0), row(status="oom")])
    run_b = write(tmp_path / "b", [row(time_ms=2.0)])
    point = compare.compare(run_a, run_b, tmp_path / "out").iloc[0]
    assert point["status_a"] == "oom" and point["status_b"] == "ok"
    assert np.isnan(point["time_ratio"]) and pd.isna(point["verdict"])


def test_a_point_measured_again_compares_with_its_newer_row(tmp_path):
    run_a = write(tmp_path / "a", [row(status="timeout"), row(time_ms=4.0, lo=3.9, hi=4.1)])
    run_b = write(tmp_path / "b", [row(time_ms=9.0), row(time_ms=1.0, lo=0.9, hi=1.1)])
    point = compare.compare(run_a, run_b, tmp_path / "out").iloc[0]
    assert (point["status_a"], point["time_ms_a"], point["time_ms_b"]) == ("ok", 4.0, 1.0)
    assert point["time_ratio"] == pytest.approx(0.25) and point["verdict"] == "faster"


def test_the_newer_row_wins_even_where_the_device_label_changed(tmp_path):
    # a row written before the device column existed, then the point measured again: one point, the newer row
    run_a = write(tmp_path / "a", [row(time_ms=4.0, lo=3.9, hi=4.1)])
    run_b = write(tmp_path / "b", [row(time_ms=9.0, lo=8.9, hi=9.1, device=""), row(time_ms=1.0, lo=0.9, hi=1.1)])
    table = compare.compare(run_a, run_b, tmp_path / "out")
    assert len(table) == 1
    assert table.iloc[0]["time_ms_b"] == 1.0 and table.iloc[0]["verdict"] == "faster"


# --- verdicts ------------------------------------------------------------------------------------------------

def verdict_of(a, b, threshold=0.5):
    return compare.match(pd.DataFrame([a]), pd.DataFrame([b]), threshold).iloc[0]["verdict"]


@pytest.mark.parametrize("a, b, expected", [
    (row(time_ms=1.0, lo=0.9, hi=1.1), row(time_ms=2.0, lo=1.9, hi=2.1), "slower"),
    (row(time_ms=2.0, lo=1.9, hi=2.1), row(time_ms=1.0, lo=0.9, hi=1.1), "faster"),
    # twice the time, but B's fastest round is inside A's spread: not called
    (row(time_ms=1.0, lo=0.9, hi=1.1), row(time_ms=2.0, lo=1.05, hi=2.1), "within-noise"),
    (row(time_ms=2.0, lo=1.0, hi=2.1), row(time_ms=1.0, lo=0.9, hi=1.1), "within-noise"),
    # beyond the spreads, but not by more than the threshold (1.4 ≤ 1.5; 1/1.4 ≥ 1/1.5)
    (row(time_ms=1.0, lo=1.0, hi=1.0), row(time_ms=1.4, lo=1.4, hi=1.4), "within-noise"),
    (row(time_ms=1.4, lo=1.4, hi=1.4), row(time_ms=1.0, lo=1.0, hi=1.0), "within-noise"),
    (row(time_ms=1.0, lo=1.0, hi=1.0), row(time_ms=1.5, lo=1.5, hi=1.5), "within-noise"),  # exactly the threshold
    (row(time_ms=1.0, lo=1.0, hi=1.0), row(time_ms=1.51, lo=1.51, hi=1.51), "slower"),
    (row(time_ms=1.5, lo=1.5, hi=1.5), row(time_ms=1.0, lo=1.0, hi=1.0), "within-noise"),  # 1/1.5 exactly
    (row(time_ms=1.51, lo=1.51, hi=1.51), row(time_ms=1.0, lo=1.0, hi=1.0), "faster"),
    # bands that touch are not apart
    (row(time_ms=1.0, lo=0.9, hi=1.6), row(time_ms=2.0, lo=1.6, hi=2.1), "within-noise"),
    (row(time_ms=2.0, lo=1.6, hi=2.1), row(time_ms=1.0, lo=0.9, hi=1.6), "within-noise"),
    # one round: the p20-p80 band of its repeats stands in for the rounds' spread
    (row(time_ms=1.0, rounds=1, p20=0.95, p80=1.05, lo=5.0, hi=5.0), row(time_ms=2.0, rounds=1, p20=1.9, p80=2.2),
     "slower"),
    (row(time_ms=1.0, rounds=1, p20=0.5, p80=1.95), row(time_ms=2.0, rounds=1, p20=1.9, p80=2.2), "within-noise"),
    # no spread recorded at all: the times themselves
    (row(time_ms=1.0, rounds=None), row(time_ms=2.0, rounds=None), "slower"),
    # no rounds count: one round, so its p20-p80 band, not the missing rounds' spread (the times themselves)
    (row(time_ms=1.0, rounds=None, p20=0.5, p80=1.95), row(time_ms=2.0, rounds=None, p20=1.9, p80=2.2),
     "within-noise"),
    (row(time_ms=2.0, rounds=None), row(time_ms=1.0, rounds=None), "faster"),
])
def test_a_change_is_called_only_beyond_the_threshold_and_both_spreads(a, b, expected):
    assert verdict_of(a, b) == expected


def test_the_threshold_is_the_callers():
    a, b = row(time_ms=1.0, lo=1.0, hi=1.0), row(time_ms=1.1, lo=1.1, hi=1.1)
    assert verdict_of(a, b, threshold=0.05) == "slower" and verdict_of(a, b, threshold=0.2) == "within-noise"


def test_the_default_threshold_is_the_gpus_only_when_both_runs_are_on_a_gpu(tmp_path):
    gpu_a = write(tmp_path / "gpu_a", [row(time_ms=1.0, lo=1.0, hi=1.0)], {"device": "cuda"})
    gpu_b = write(tmp_path / "gpu_b", [row(time_ms=1.1, lo=1.1, hi=1.1)], {"device": "cuda"})
    cpu = write(tmp_path / "cpu", [row()], {"device": "cpu"})
    bare = write(tmp_path / "bare", [row()])
    assert compare.default_threshold(gpu_a, gpu_b) == compare.DEFAULT_THRESHOLD["cuda"] == 0.05
    assert compare.default_threshold(gpu_a, cpu) == compare.default_threshold(bare, gpu_b) == 0.5
    # 1.1x is a difference on a GPU (0.05) but not with the threshold given (0.3)
    by_default = compare.compare(gpu_a, gpu_b, tmp_path / "out")
    assert by_default.attrs["threshold"] == 0.05 and by_default.iloc[0]["verdict"] == "slower"
    given = compare.compare(gpu_a, gpu_b, tmp_path / "out", threshold=0.3)
    assert given.attrs["threshold"] == 0.3 and given.iloc[0]["verdict"] == "within-noise"


def test_ratios_of_time_and_memory_and_a_missing_memory_reading():
    oom_with_memory = dict(row(seq_len=4096, status="oom"), peak_mem_mb=3.0)  # the memory it reached before failing
    a = pd.DataFrame([row(time_ms=2.0, peak_mem_mb=4.0), row(seq_len=1024, time_ms=2.0, peak_mem_mb=0.0),
                      row(seq_len=2048, time_ms=2.0, peak_mem_mb=2.0), oom_with_memory])
    b = pd.DataFrame([row(time_ms=3.0, peak_mem_mb=1.0), row(seq_len=1024, time_ms=1.0, peak_mem_mb=2.0),
                      row(seq_len=2048, time_ms=2.0, peak_mem_mb=0.0), row(seq_len=4096, peak_mem_mb=1.0)])
    table = compare.match(a, b).set_index("seq_len")
    assert table.loc[512, "time_ratio"] == pytest.approx(1.5) and table.loc[512, "mem_ratio"] == pytest.approx(0.25)
    assert table.loc[1024, "time_ratio"] == pytest.approx(0.5) and np.isnan(table.loc[1024, "mem_ratio"])
    assert table.loc[2048, "time_ratio"] == 1.0 and np.isnan(table.loc[2048, "mem_ratio"])  # no reading in B
    # a point that did not run in both has neither ratio, whatever memory its failed row reports
    assert np.isnan(table.loc[4096, "time_ratio"]) and np.isnan(table.loc[4096, "mem_ratio"])
    assert list(table["only_in"]) == ["", "", "", ""]


def test_a_point_two_series_share_is_matched_once_preferring_its_own_label_then_a_pair_that_ran():
    # batch=8 and tokens=65536 meet at 8192 tokens; tokens=16384 (batch 2) too
    def point(batching, **options):
        return row(seq_len=8192, batching=batching, **options)

    a = pd.DataFrame([point("tokens=65536", time_ms=2.2), point("batch=8", time_ms=2.0)])
    b = pd.DataFrame([point("batch=8", time_ms=1.0)])
    table = compare.match(a, b)
    assert len(table) == 1 and table.iloc[0]["batching"] == "batch=8"
    assert table.iloc[0]["time_ratio"] == pytest.approx(0.5)

    # no pair with the same label: the pair that ran in both, not the first one
    a = pd.DataFrame([point("batch=8", status="oom"), point("tokens=65536", time_ms=2.0)])
    b = pd.DataFrame([point("tokens=16384", time_ms=1.0)])
    table = compare.match(a, b)
    assert len(table) == 1 and table.iloc[0]["batching"] == "tokens=65536"
    assert (table.iloc[0]["status_a"], table.iloc[0]["time_ratio"]) == ("ok", pytest.approx(0.5))


COLUMNS = ["mixer", "scope", "seq_len", "dim", "layers", "ffn", "vocab", "norm", "batch", "dtype", "mode", "batching",
           "only_in", "status_a", "status_b", "time_ms_a", "time_ms_b", "time_ratio", "verdict", "time_ms_lo_a",
           "time_ms_hi_a", "time_ms_lo_b", "time_ms_hi_b", "rounds_a", "rounds_b", "peak_mem_mb_a", "peak_mem_mb_b",
           "mem_ratio", "device_name_a", "device_name_b"]


def test_points_in_one_run_only_are_listed_and_files_are_written(tmp_path):
    run_a = write(tmp_path / "a", [row("fft", 512, time_ms=3.0), row("dct", 512, time_ms=1.0)])
    run_b = write(tmp_path / "b", [row("fft", 512, time_ms=1.0), row("hadamard", 512, time_ms=1.0)])
    table = compare.compare(run_a, run_b)
    assert dict(zip(table["mixer"], table["only_in"])) == {"fft": "", "dct": "a", "hadamard": "b"}
    assert dict(zip(table["mixer"], table["verdict"].fillna("-"))) == {"fft": "faster", "dct": "-", "hadamard": "-"}
    assert list(table["batching"]) == ["batch=8"] * 3  # a point in one run only keeps that run's label
    assert list(table.columns) == COLUMNS
    out = run_b / "compare-a"
    assert table.attrs == {"run_a": str(run_a), "run_b": str(run_b), "out_dir": str(out), "threshold": 0.5}
    written = pd.read_csv(out / "compare.csv")
    assert list(written.columns) == COLUMNS and list(written["mixer"]) == list(table["mixer"])
    assert written.set_index("mixer").loc["fft", "time_ratio"] == 0.333333  # 1 / 3 to six significant digits
    assert (out / "compare.png").is_file()


def test_the_files_go_to_the_folder_given_and_the_figure_names_both_runs(tmp_path, monkeypatch):
    titles = []
    savefig = Figure.savefig

    def spy(fig, *args, **kwargs):
        titles.append(fig._suptitle.get_text())
        return savefig(fig, *args, **kwargs)

    monkeypatch.setattr(Figure, "savefig", spy)
    run_a = write(tmp_path / "a", [row(time_ms=2.0)])
    run_b = write(tmp_path / "b", [row(time_ms=1.0, device_name="other")])
    out = tmp_path / "not" / "yet" / "there"
    compare.compare(run_a, run_b, out)
    assert (out / "compare.csv").is_file() and (out / "compare.png").is_file()
    assert not (run_b / "compare-a").exists()
    assert len(titles) == 1 and f"A = {run_a} (cpu)" in titles[0] and f"B = {run_b} (other)" in titles[0]


def test_points_and_mixers_are_listed_in_the_usual_order():
    # the table: by scope, dtype, mode, dim, batching, then mixers in the usual order (not alphabetical), then length;
    # the summary: by dtype, mode, then mixer
    keys = [("attention", 512, "float32", "train"), ("attention", 512, "float32", "forward"),
            ("fft", 1024, "float32", "forward"), ("fft", 512, "float32", "train"), ("dct", 512, "float32", "forward"),
            ("fft", 512, "float32", "forward"), ("attention", 512, "bfloat16", "forward"),
            ("fft", 512, "bfloat16", "forward")]
    a = pd.DataFrame([row(mixer, n, dtype=dtype, mode=mode) for mixer, n, dtype, mode in keys])
    table = compare.match(a, a.iloc[::-1])
    assert list(zip(table["mixer"], table["seq_len"], table["dtype"], table["mode"])) == [
        ("fft", 512, "bfloat16", "forward"), ("attention", 512, "bfloat16", "forward"),
        ("fft", 512, "float32", "forward"), ("fft", 1024, "float32", "forward"), ("dct", 512, "float32", "forward"),
        ("attention", 512, "float32", "forward"), ("fft", 512, "float32", "train"),
        ("attention", 512, "float32", "train")]
    summary = compare.summarize(table)
    assert list(zip(summary["mixer"], summary["dtype"], summary["mode"])) == [
        ("fft", "bfloat16", "forward"), ("attention", "bfloat16", "forward"), ("fft", "float32", "forward"),
        ("dct", "float32", "forward"), ("attention", "float32", "forward"), ("fft", "float32", "train"),
        ("attention", "float32", "train")]


# --- per mixer --------------------------------------------------------------------------------------------

def test_a_mixer_is_slower_or_faster_only_where_every_point_says_so():
    fast = dict(time_ms=1.0, lo=1.0, hi=1.0)
    slow = dict(time_ms=4.0, lo=4.0, hi=4.0)
    a = pd.DataFrame([row("fft", 512, **fast), row("fft", 1024, **fast), row("dct", 512, **fast),
                      row("dct", 1024, **fast), row("linear", 512, **slow), row("linear", 1024, **slow),
                      row("hadamard", 512, **fast), row("hadamard", 1024, **fast)])
    b = pd.DataFrame([row("fft", 512, **slow), row("fft", 1024, **slow), row("dct", 512, **slow),
                      row("dct", 1024, **fast), row("linear", 512, **fast), row("linear", 1024, **fast),
                      row("hadamard", 512, time_ms=1.1, lo=1.1, hi=1.1), row("hadamard", 1024, **fast)])
    summary = compare.summarize(compare.match(a, b)).set_index("mixer")
    assert summary.loc["fft", "verdict"] == "slower" and summary.loc["fft", "slower"] == 2
    assert summary.loc["linear", "verdict"] == "faster" and summary.loc["linear", "faster"] == 2
    assert summary.loc["dct", "verdict"] == "mixed"
    assert (summary.loc["dct", "slower"], summary.loc["dct", "within_noise"]) == (1, 1)
    assert summary.loc["hadamard", "verdict"] == "within-noise" and summary.loc["hadamard", "within_noise"] == 2
    assert summary.loc["dct", "time_ratio_geomean"] == pytest.approx(2.0)  # √(4 · 1)
    assert (summary.loc["dct", "time_ratio_min"], summary.loc["dct", "time_ratio_max"]) == (1.0, 4.0)
    assert summary.loc["fft", "points"] == 2 and summary.loc["fft", "mem_ratio_geomean"] == pytest.approx(1.0)
    text = compare.format_table(compare.match(a, b))
    assert "Points: 2 faster, 3 slower, 3 within-noise." in text


# --- the plot ------------------------------------------------------------------------------------------------

def test_the_ratio_figure_draws_one_line_per_mixer_at_its_ratios_and_the_line_of_equal_time():
    a = pd.DataFrame([row("fft", n, time_ms=2.0) for n in (512, 1024, 2048)]
                     + [row("attention", n, time_ms=1.0) for n in (512, 1024)]
                     + [row("fft", 512, time_ms=2.0, mode="train")])
    b = pd.DataFrame([row("fft", 512, time_ms=1.0), row("fft", 1024, time_ms=0.5), row("fft", 2048, status="oom")]
                     + [row("attention", n, time_ms=3.0, device_name="other") for n in (512, 1024)]
                     + [row("fft", 512, time_ms=4.0, mode="train")])
    fig = compare.ratio_figure(compare.match(a, b), "run-a", "run-b")
    forward, train = fig.axes[:2]
    assert forward.get_title() == "float32, forward" and train.get_title() == "float32, train"
    lines = {line.get_label(): line for line in forward.get_lines()}
    assert list(lines["fft"].get_xdata()) == [512, 1024] and list(lines["fft"].get_ydata()) == [0.5, 0.25]
    assert list(lines["attention"].get_ydata()) == [3.0, 3.0]
    equal = [line for line in forward.get_lines() if list(line.get_ydata()) == [1.0, 1.0]]
    assert equal, "the line of equal time is drawn at 1"
    assert forward.get_yscale() == "log" and "below 1: B faster" in forward.get_ylabel()
    assert list(train.get_lines()[0].get_ydata()) == [2.0]
    assert "A = run-a (cpu)" in fig._suptitle.get_text() and "B = run-b (cpu)" in fig._suptitle.get_text()
    legend = [text.get_text() for text in fig.legends[0].get_texts()]
    assert legend[-1] == "equal time" and set(legend[:-1]) == {"fft", "attention"}


def test_the_figure_title_names_no_device_where_the_runs_recorded_none():
    a, b = pd.DataFrame([row(time_ms=2.0, device_name="")]), pd.DataFrame([row(time_ms=1.0, device_name="")])
    title = compare.ratio_figure(compare.match(a, b), "run-a", "run-b")._suptitle.get_text()
    assert title.endswith("A = run-a · B = run-b")


def test_no_figure_without_a_point_that_ran_in_both():
    table = compare.match(pd.DataFrame([row(status="oom")]), pd.DataFrame([row()]))
    assert compare.ratio_figure(table) is None
    assert math.isnan(table.iloc[0]["time_ratio"])


def test_the_summary_of_runs_with_nothing_in_common_is_empty_with_its_columns():
    summary = compare.summarize(compare.match(pd.DataFrame([row(status="oom")]), pd.DataFrame([row()])))
    assert summary.empty and list(summary.columns) == [
        "mixer", "scope", "dtype", "mode", "points", "time_ratio_geomean", "time_ratio_min", "time_ratio_max",
        "mem_ratio_geomean", "slower", "faster", "within_noise", "verdict"]


def test_every_count_and_key_of_a_mixers_summary():
    fast, slow, mid = (dict(time_ms=t, lo=t, hi=t) for t in (1.0, 4.0, 1.1))
    a = pd.DataFrame([row("fft", 512, **fast), row("dct", 512, **slow), row("dct", 1024, **fast),
                      row("linear", 512, **fast), row("hadamard", 512, **fast, mode="train")])
    b = pd.DataFrame([row("fft", 512, **mid), row("dct", 512, **fast), row("dct", 1024, **mid),
                      row("linear", 512, **slow), row("hadamard", 512, **mid, mode="train")])
    summary = compare.summarize(compare.match(a, b))
    got = {r.mixer: (r.scope, r.dtype, r.mode, r.points, r.slower, r.faster, r.within_noise, r.verdict)
           for r in summary.itertuples()}
    assert got == {"fft": ("mixer", "float32", "forward", 1, 0, 0, 1, "within-noise"),  # one point, within noise
                   "dct": ("mixer", "float32", "forward", 2, 0, 1, 1, "mixed"),  # one point faster, one not
                   "linear": ("mixer", "float32", "forward", 1, 1, 0, 0, "slower"),
                   "hadamard": ("mixer", "float32", "train", 1, 0, 0, 1, "within-noise")}
