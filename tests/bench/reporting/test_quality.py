"""bench.reporting.quality on hand-made quality tables: best rate on validation, spread over seeds, the front."""

import pandas as pd
import pytest

from bench.reporting import quality, quality_plots, style

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def run(layout, lr, seed, accuracy, val, step_ms, task="mqar", dim=64, baseline=0.125, status="ok", params=1000):
    return dict(task=task, layout=layout, seq_len=64, dim=dim, layers=2, ffn=4 * dim, norm="pre", shift="True",
                batch=32, steps=100, lr=lr, seed=seed, dtype="float32", device="cpu", device_name="test cpu",
                status=status, accuracy=accuracy, val_accuracy=val, train_accuracy=accuracy, loss=1.0,
                baseline=baseline, params=params, train_s=1.0, step_ms=step_ms, tokens_per_s=1.0, error="")


def table(*rows):
    return quality.prepare(pd.DataFrame(list(rows)))


def test_the_best_rate_is_chosen_on_validation_and_reported_on_test_over_seeds():
    best = quality.best_runs(table(
        run("attention", 1e-3, 0, accuracy=0.50, val=0.60, step_ms=10),
        run("attention", 1e-3, 1, accuracy=0.70, val=0.60, step_ms=12),
        run("attention", 3e-3, 0, accuracy=0.99, val=0.40, step_ms=10),  # best on test, worse on validation
        run("attention", 3e-3, 1, accuracy=0.98, val=0.40, step_ms=10),
    )).iloc[0]
    assert best["lr"] == 1e-3 and best["seeds"] == 2 and best["lrs_tried"] == 2
    assert best["accuracy"] == pytest.approx(0.6)
    assert best["accuracy_min"] == 0.5 and best["accuracy_max"] == 0.7
    assert best["step_ms"] == pytest.approx(11)


def test_failed_runs_are_counted_not_averaged():
    best = quality.best_runs(table(run("fft", 1e-3, 0, 0.3, 0.3, 5), run("fft", 1e-3, 1, None, None, None,
                                                                        status="timeout")))
    assert best.iloc[0]["seeds"] == 1 and best.iloc[0]["failed"] == 1 and best.iloc[0]["accuracy"] == 0.3


def test_the_front_keeps_exactly_the_runs_nothing_beats_in_both_speed_and_accuracy():
    best = quality.best_runs(table(run("fft", 1e-3, 0, 0.30, 0.3, 1.0), run("linear", 1e-3, 0, 0.25, 0.3, 2.0),
                                   run("hybrid", 1e-3, 0, 0.60, 0.6, 3.0), run("attention", 1e-3, 0, 0.95, 0.9, 8.0),
                                   run("slow", 1e-3, 0, 0.90, 0.9, 9.0)))
    front = quality.front(best)
    assert list(front["layout"]) == ["fft", "hybrid", "attention"] and list(front["rank"]) == [1, 2, 3]
    lines = quality.summary(best)
    assert lines[0].startswith("mqar at 64 tokens (baseline 12%): attention is most accurate (95%")
    assert "The fastest on the front, fft, reaches 32% of that at 8.0× the speed" in lines[0]


def test_a_task_nobody_learned_says_so_and_draws_no_frontier(tmp_path):
    best = quality.best_runs(table(run("fft", 1e-3, 0, 0.13, 0.13, 1.0), run("attention", 1e-3, 0, 0.20, 0.2, 5.0)))
    assert not quality.learned(best).any()
    assert "no layout learned it within this budget" in quality.summary(best)[0]
    assert quality_plots.frontier_plot(best, "mqar", 64, "cpu", tmp_path / "q.png") is None


def test_the_frontier_plot_draws_every_layout_the_baseline_and_the_front(tmp_path, monkeypatch):
    monkeypatch.setattr(style, "DPI", 30)
    best = quality.best_runs(table(*(run(layout, 1e-3, seed, acc + 0.01 * seed, acc, ms, dim=dim)
                                     for layout, acc, ms in (("fft", 0.3, 1.0), ("attention", 0.95, 6.0))
                                     for dim in (32, 64) for seed in (0, 1))))
    fig = quality_plots.frontier_figure(best, "mqar", 64, "test cpu")
    speed, size = fig.axes[:2]
    labels = [text.get_text() for text in fig.legends[0].get_texts()]
    assert labels[:2] == ["fft", "attention"] and labels[2] == "baseline (12%)"
    baseline = [line for line in speed.get_lines() if list(line.get_ydata()) == [0.125, 0.125]]
    assert baseline, "the baseline is drawn at the task's chance level"
    assert [text.get_text() for text in speed.texts] == ["fft", "attention"]  # the front, fastest first
    assert speed.get_xscale() == "log" and size.get_xlabel() == "parameters"
    path = quality_plots.frontier_plot(best, "mqar", 64, "test cpu", tmp_path / "q.png")
    assert path.read_bytes()[:8] == PNG_MAGIC
