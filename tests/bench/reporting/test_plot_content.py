"""What each plot draws (lines, values, labels, scales), checked on the Figure of a hand-made run.

fft's time grows as n and its memory as √n, attention's time as n² and its memory as n^1.5 (attention runs
out of memory at 4k), so every value a plot should show is known: the fitted exponents, who is on the
Pareto front, who is fastest at each length.
"""

import matplotlib.colors
import numpy as np
import pandas as pd
import pytest

from bench.reporting import analysis, plots

LENGTHS = (256, 512, 1024, 2048, 4096)
ENV = {"device": "cuda", "device_name": "Test GPU", "device_memory_mb": 16000, "peak_bandwidth_gbps": 2000.0,
       "peak_tflops": {"float32": 50.0}}


def rows(mode="forward"):
    scale = 3.0 if mode == "train" else 1.0
    records = []
    for n in LENGTHS:
        common = dict(scope="mixer", seq_len=n, dim=64, batch=8, batching="batch=8", dtype="float32", mode=mode,
                      device="cuda", device_name="Test GPU", rounds=1)
        fft = 1e-3 * n * scale  # ms
        records.append(dict(common, mixer="fft", status="ok", time_ms=fft, time_ms_p20=0.9 * fft,
                            time_ms_p80=1.1 * fft, peak_mem_mb=10.0 * n ** 0.5, tokens_per_s=8 * n / (fft / 1e3),
                            flops=1e6 * n, bytes_min=1e4 * n))
        if n < 4096:
            attention = 1e-6 * n * n * scale
            records.append(dict(common, mixer="attention", status="ok", time_ms=attention, time_ms_p20=0.9 * attention,
                                time_ms_p80=1.1 * attention, peak_mem_mb=0.1 * n ** 1.5, tokens_per_s=8 * n / (attention / 1e3),
                                flops=4e3 * n * n, bytes_min=1e4 * n))
        else:
            records.append(dict(common, mixer="attention", status="oom", error="CUDA out of memory"))
    return pd.DataFrame(records)


def group(table):
    """(rows, key, scaling) of the table's only group, as plots.draw hands them to a plot."""
    table = analysis.prepare(table)
    ((values, group_rows),) = table.groupby(analysis.GROUP_KEYS, dropna=False)
    return group_rows, dict(zip(analysis.GROUP_KEYS, values)), analysis.scaling_exponents(table)


def figure(kind, table=None):
    group_rows, key, scaling = group(rows() if table is None else table)
    return plots.figure_of(kind, group_rows, key, ENV, scaling)


def lines_by_label(ax):
    return {line.get_label(): line for line in ax.get_lines()}


def test_the_time_plot_draws_each_mixer_at_its_times_with_its_fitted_exponent():
    fig = figure("time")
    ax = fig.axes[0]
    lines = lines_by_label(ax)
    fft, attention = lines["fft (n$^{1.00}$)"], lines["attention (n$^{2.00}$)"]
    assert list(fft.get_xdata()) == list(LENGTHS) and list(fft.get_ydata()) == pytest.approx([1e-3 * n for n in LENGTHS])
    assert list(attention.get_xdata()) == [256, 512, 1024, 2048]  # the oom length is not a point of the line
    assert list(attention.get_ydata()) == pytest.approx([1e-6 * n * n for n in (256, 512, 1024, 2048)])
    oom = [line for line in ax.get_lines() if line.get_marker() == "x"]
    assert len(oom) == 1 and list(oom[0].get_xdata()) == [4096]  # marked where it ran out of memory
    assert oom[0].get_color() == attention.get_color()
    assert ax.get_xscale() == "log" and ax.get_yscale() == "log" and ax.get_ylabel() == "time per call (ms)"
    assert len(ax.collections) == 2  # a p20-p80 band per mixer
    band = ax.collections[0].get_paths()[0].vertices[:, 1]
    assert band.min() == pytest.approx(0.9 * 0.256) and band.max() == pytest.approx(1.1 * 4.096)
    assert "band: p20–p80 of the repeats (one process)" in [text.get_text() for text in ax.texts]
    title = fig._suptitle.get_text()
    assert title.startswith("Time per call vs sequence length\nTest GPU · ") and "float32, forward" in title


def test_the_memory_plot_switches_to_gb_and_draws_the_devices_memory():
    ax = figure("memory").axes[0]
    lines = lines_by_label(ax)
    assert ax.get_ylabel() == "peak memory (GB)"  # the device's 16 GB is drawn, so the axis is in GB
    assert list(lines["fft (n$^{0.50}$)"].get_ydata()) == pytest.approx([10.0 * n ** 0.5 / 1024 for n in LENGTHS])
    assert list(lines["attention (n$^{1.50}$)"].get_xdata()) == [256, 512, 1024, 2048]
    assert list(lines["device memory (16 GB)"].get_ydata()) == pytest.approx([16000 / 1024] * 2)


def test_the_throughput_plot_draws_tokens_per_second():
    ax = figure("throughput").axes[0]
    fft = lines_by_label(ax)["fft"]
    assert list(fft.get_ydata()) == pytest.approx([8 * n / (1e-3 * n / 1e3) for n in LENGTHS])  # 8e6 tokens/s


def test_the_roofline_plot_draws_achieved_tflops_under_the_measured_roof():
    ax = figure("roofline").axes[0]
    lines = lines_by_label(ax)
    fft, attention = lines["fft"], lines["attention"]
    assert list(fft.get_xdata()) == pytest.approx([100.0] * 5)  # FLOP per byte
    assert list(fft.get_ydata()) == pytest.approx([1.0] * 5)  # 1e6·n FLOPs in 1e-3·n ms: 1 TFLOP/s
    assert list(attention.get_xdata()) == pytest.approx([0.4 * n for n in (256, 512, 1024, 2048)])
    assert list(attention.get_ydata()) == pytest.approx([4.0] * 4)
    roof = lines["measured roof:\n2,000 GB/s, 50 TFLOP/s"]
    x, y = np.asarray(roof.get_xdata()), np.asarray(roof.get_ydata())
    assert y.max() == pytest.approx(50.0) and y == pytest.approx(np.minimum(x * 2.0, 50.0))
    assert ax.get_ylabel() == "achieved TFLOP/s" and ax.get_xscale() == ax.get_yscale() == "log"


def test_the_pareto_plot_marks_the_front_at_each_length():
    fig = figure("pareto")
    panels = {ax.get_title(): ax for ax in fig.axes if ax.get_visible()}
    assert list(panels) == ["256 tokens", "512 tokens", "2k tokens", "4k tokens"]

    def names(ax):
        return {text.get_text(): text.get_fontweight() == "bold" for text in ax.texts}

    # at 512 attention is faster and fft smaller: both on the front; at 2k fft is faster and smaller
    assert names(panels["512 tokens"]) == {"fft": True, "attention": True}
    assert names(panels["2k tokens"]) == {"fft": True, "attention": False}
    assert names(panels["4k tokens"]) == {"fft": True}
    points = {line.get_label(): (line.get_xdata()[0], line.get_ydata()[0]) for line in panels["2k tokens"].get_lines()
              if line.get_label() in ("fft", "attention")}
    assert points["attention"] == pytest.approx((1e-6 * 2048 ** 2, 0.1 * 2048 ** 1.5))  # MB: under 10 GB
    edges = {line.get_label(): line.get_markeredgecolor() for line in panels["2k tokens"].get_lines()}
    assert edges["fft"] == "black" and edges["attention"] != "black"  # the front's markers are outlined


def test_the_pareto_plot_places_each_mixer_by_the_memory_it_holds_plus_its_peak():
    table = rows()
    table["resident_mem_mb"] = np.where(table["mixer"] == "fft", 5000.0, 0.0)  # fft holds 5 GB of tables
    fig = figure("pareto", table)
    panels = {ax.get_title(): ax for ax in fig.axes if ax.get_visible()}
    at_512 = panels["512 tokens"]
    # at 512 attention is faster, and now also smaller: fft loses its place on the front
    assert {text.get_text(): text.get_fontweight() == "bold" for text in at_512.texts} == {"fft": False,
                                                                                         "attention": True}
    points = {line.get_label(): line.get_ydata()[0] for line in at_512.get_lines()}
    assert points["fft"] == pytest.approx(10.0 * 512 ** 0.5 + 5000.0)
    assert at_512.get_ylabel() == "memory held + peak (MB)"
    assert "time vs memory held + peak" in fig._suptitle.get_text()


def test_the_winners_plot_gives_each_length_its_fastest_and_the_others_ratio():
    ax = figure("winners").axes[0]
    assert [label.get_text() for label in ax.get_yticklabels()] == ["fft", "attention"]
    assert [label.get_text() for label in ax.get_xticklabels()] == ["256", "512", "1k", "2k", "4k"]
    cells = {(round(text.get_position()[0]), round(text.get_position()[1])): text for text in ax.texts}
    # 256 and 512: attention (row 1) is fastest; from 1k fft (row 0)
    assert cells[(0, 1)].get_text() == "1" and cells[(0, 1)].get_fontweight() == "bold"
    assert cells[(0, 0)].get_text() == f"{0.256 / 0.065536:.1f}"  # 3.9
    assert cells[(2, 0)].get_text() == "1" and cells[(2, 1)].get_text() == "1.0"  # 1.049 / 1.024 ms
    assert cells[(3, 0)].get_text() == "1" and cells[(3, 1)].get_text() == "2.0"
    assert cells[(4, 1)].get_text() == "OOM" and cells[(4, 0)].get_text() == "1"
    data = ax.get_images()[0].get_array()
    assert data[1, 0] == 1.0 and data[0, 3] == 1.0 and np.ma.is_masked(data[1, 4])


def test_the_modes_plot_puts_forward_and_train_side_by_side():
    table = pd.concat([rows("forward"), rows("train")])
    prepared = analysis.prepare(table)
    keys = [column for column in analysis.GROUP_KEYS if column != "mode"]
    ((values, group_rows),) = prepared.groupby(keys, dropna=False)
    fig = plots.figure_of("modes", group_rows, dict(zip(keys, values)), ENV, analysis.scaling_exponents(prepared))
    forward, train = fig.axes
    assert (forward.get_title(), train.get_title()) == ("forward", "train (forward + backward)")
    assert list(lines_by_label(train)["fft"].get_ydata()) == pytest.approx([3e-3 * n for n in LENGTHS])
    assert list(lines_by_label(forward)["fft"].get_ydata()) == pytest.approx([1e-3 * n for n in LENGTHS])
    assert forward.get_shared_y_axes().joined(forward, train)


def test_a_mixer_keeps_its_colour_across_plots():
    colours = set()
    for kind in ("time", "throughput", "roofline"):
        colours.add(matplotlib.colors.to_hex(lines_by_label(figure(kind).axes[0])
                                             .get("fft", lines_by_label(figure(kind).axes[0]).get("fft (n$^{1.00}$)"))
                                             .get_color()))
    assert len(colours) == 1
