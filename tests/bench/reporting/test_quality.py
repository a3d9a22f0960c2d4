"""bench.reporting.quality on hand-made quality tables: best rate on validation, spread over seeds, the front."""

import pandas as pd
import pytest

from bench.reporting import quality, quality_plots, style

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def run(layout, lr, seed, accuracy, val, step_ms, task="mqar", dim=64, baseline=0.125, status="ok", params=1000,
        weight_decay=0.1, seq_len=64, options=""):
    return dict(task=task, task_options=options, layout=layout, seq_len=seq_len, dim=dim, layers=2, ffn=4 * dim,
                norm="pre", shift="True", batch=32, steps=100, lr=lr, weight_decay=weight_decay, seed=seed,
                dtype="float32", device="cpu", device_name="test cpu",
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
    assert "No faster layout comes within 5 points of it" in lines[0]
    assert "the fastest that learned it at all, fft, reaches 30% at 8.0× the speed" in lines[0]


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
    assert [text.get_text() for text in speed.texts] == ["fft d=32", "attention d=32"]  # the front, fastest first
    assert speed.get_xscale() == "log" and size.get_xlabel() == "parameters"
    path = quality_plots.frontier_plot(best, "mqar", 64, "test cpu", tmp_path / "q.png")
    assert path.read_bytes()[:8] == PNG_MAGIC


def test_the_best_point_of_the_rate_by_weight_decay_grid_is_chosen_on_validation():
    best = quality.best_runs(table(
        run("attention", 1e-3, 0, accuracy=0.50, val=0.50, step_ms=10, weight_decay=0.0),
        run("attention", 1e-3, 0, accuracy=0.80, val=0.70, step_ms=10, weight_decay=0.1),
        run("attention", 3e-3, 0, accuracy=0.99, val=0.60, step_ms=10, weight_decay=0.0),
        run("attention", 3e-3, 0, accuracy=0.40, val=0.40, step_ms=10, weight_decay=0.1),
    )).iloc[0]
    assert (best["lr"], best["weight_decay"]) == (1e-3, 0.1) and best["accuracy"] == pytest.approx(0.8)
    assert best["lrs_tried"] == 2  # rates tried (each at two weight decays)


def test_a_table_without_a_weight_decay_column_still_has_a_best_rate():
    rows = [run("fft", 1e-3, 0, 0.3, 0.3, 5.0), run("fft", 3e-3, 0, 0.5, 0.5, 5.0)]
    for row in rows:
        del row["weight_decay"]
    best = quality.best_runs(table(*rows)).iloc[0]
    assert best["lr"] == 3e-3 and pd.isna(best["weight_decay"])


def test_a_run_at_its_baseline_is_never_on_the_front_however_fast():
    best = quality.best_runs(table(run("pool", 1e-3, 0, 0.03, 0.03, 0.5), run("dct", 1e-3, 0, 0.13, 0.13, 0.7),
                                   run("fft", 1e-3, 0, 0.40, 0.4, 1.0), run("attention", 1e-3, 0, 0.95, 0.9, 8.0)))
    assert list(quality.front(best)["layout"]) == ["fft", "attention"]


def test_the_answer_names_the_fastest_layout_within_five_points_of_the_best():
    best = quality.best_runs(table(run("fft", 1e-3, 0, 0.40, 0.4, 1.0), run("mamba", 1e-3, 0, 0.92, 0.9, 2.0),
                                   run("attention", 1e-3, 0, 0.95, 0.9, 8.0)))
    line = quality.summary(best)[0]
    assert quality.NEAR_BEST == 0.05
    assert "The fastest layout within 5 points of the best accuracy is mamba (92%, 4.0× the speed of attention)" in line
    assert "the fastest that learned it at all, fft, reaches 40% at 8.0× the speed" in line
    assert quality.near_best(best)["layout"] == "mamba"


def test_with_several_widths_the_answer_names_the_width_and_the_front_spans_them():
    best = quality.best_runs(table(run("attention", 1e-3, 0, 0.95, 0.9, 8.0, dim=64),
                                   run("attention", 1e-3, 0, 0.94, 0.9, 3.0, dim=32),
                                   run("fft", 1e-3, 0, 0.30, 0.3, 1.0, dim=32), run("fft", 1e-3, 0, 0.35, 0.3, 2.0, dim=64)))
    front = quality.front(best)
    assert list(zip(front["layout"], front["dim"])) == [("fft", 32), ("fft", 64), ("attention", 32), ("attention", 64)]
    assert "within 5 points of the best accuracy is attention (d=32)" in quality.summary(best)[0]


def mad_table():
    """Two layouts on two MAD tasks; in-context-recall at two settings, a 2 x 2 grid of rate and weight decay."""
    rows = []
    for layout, base in (("attention", 0.9), ("hyena", 0.5)):
        for options, shift in (("vocab_size=16", 0.0), ("vocab_size=32", -0.2)):
            for lr, wd, bump in ((1e-4, 0.0, -0.3), (1e-3, 0.0, 0.0), (1e-4, 0.1, -0.2), (1e-3, 0.1, -0.1)):
                for seed, noise in ((0, 0.02), (1, -0.02)):
                    rows.append(run(layout, lr, seed, base + shift + bump + noise, 0.0, 1.0, task="in-context-recall",
                                    weight_decay=wd, options=options, seq_len=128))
        rows.append(run(layout, 1e-3, 0, base - 0.4, 0.0, 1.0, task="compression", seq_len=64))
    rows.append(run("mlp", 1e-3, 0, 0.99, 0.99, 1.0))  # not a MAD task: not scored
    return table(*rows)


def test_mad_score_is_the_best_grid_point_per_setting_then_the_mean_over_settings():
    settings = quality.mad_settings(mad_table())
    attention = settings[(settings["layout"] == "attention") & (settings["task"] == "in-context-recall")]
    assert sorted(attention["score"].round(6)) == [0.7, 0.9]  # the mean over seeds at lr 1e-3, wd 0
    assert set(attention["grid_points"]) == {4}
    scores = quality.mad_scores(mad_table())
    assert list(scores["layout"]) == ["attention", "hyena"] and list(scores["rank"]) == [1, 2]
    top = scores.iloc[0]
    assert top["in-context-recall"] == pytest.approx(0.8) and top["compression"] == pytest.approx(0.5)
    assert top[quality.MAD_MEAN] == pytest.approx(0.65) and top["tasks"] == 2 and top["settings"] == 3
    assert "mqar" not in scores.columns and "mlp" not in set(scores["layout"])


def test_no_mad_task_no_mad_score():
    assert quality.mad_scores(table(run("fft", 1e-3, 0, 0.3, 0.3, 1.0))).empty


def test_a_task_at_several_settings_has_a_front_and_a_plot_per_setting(tmp_path, monkeypatch):
    monkeypatch.setattr(style, "DPI", 30)
    rows = [run(layout, 1e-3, 0, acc, acc, ms, task="in-context-recall", options=options, seq_len=128)
            for options, scale in (("vocab_size=16", 1.0), ("vocab_size=64", 0.5))
            for layout, acc, ms in (("pool", 0.5 * scale, 1.0), ("attention", 0.95 * scale, 4.0))]
    best = quality.best_runs(table(*rows))
    front = quality.front(best)
    assert sorted(zip(front["task_options"], front["layout"])) == [  # one front would drop both vocab_size=64 runs
        ("vocab_size=16", "attention"), ("vocab_size=16", "pool"), ("vocab_size=64", "attention"),
        ("vocab_size=64", "pool")]
    lines = quality.summary(best)
    assert len(lines) == 2 and lines[0].startswith("in-context-recall [vocab_size=16] at 128 tokens")
    manifest = quality_plots.draw(table(*rows), tmp_path)
    assert sorted(path.name for path in manifest.values()) == [
        "quality__in-context-recall_n128_vocab_size-16.png", "quality__in-context-recall_n128_vocab_size-64.png"]
