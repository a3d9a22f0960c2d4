"""Published anchors beside our runs, and MAD's score in the report, from a synthetic quality.csv."""

import pandas as pd
import pytest

from bench.measuring import store
from bench.reporting import anchors, quality, render, style


def row(task, layout, accuracy, seq_len=64, dim=32, options="", lr=1e-3, weight_decay=0.1, seed=0, baseline=0.1,
        step_ms=2.0):
    values = dict(task=task, task_options=options, layout=layout, seq_len=seq_len, dim=dim, layers=2, ffn=4 * dim,
                  norm="peri", shift=True, batch=32, steps=800, lr=lr, weight_decay=weight_decay, seed=seed,
                  dtype="float32", device="cpu", device_name="test cpu", status="ok", accuracy=accuracy,
                  val_accuracy=accuracy, train_accuracy=accuracy, loss=1.0, baseline=baseline, params=1000,
                  train_s=1.0, step_ms=step_ms, tokens_per_s=1.0, threads=1, error="")
    return {column: values.get(column, "") for column in store.QUALITY_COLUMNS}


MAD_LEVELS = {"attention": 0.9, "mamba": 0.6, "hyena": 0.7, "pool": 0.3}


def synthetic_rows():
    rows = [row("mqar-causal", "attention", 0.97, 64, 32, "vocab_size=256,num_kv_pairs=4"),
            row("mqar-causal", "attention", 0.55, 128, 64, "vocab_size=256,num_kv_pairs=8", step_ms=4.0),
            row("mqar-causal", "hyena", 0.60, 64, 32, "vocab_size=256,num_kv_pairs=4", step_ms=1.0),
            row("mqar-causal", "hyena", 0.25, 512, 512, "vocab_size=8192,num_kv_pairs=64", step_ms=9.0)]
    for layout, level in MAD_LEVELS.items():
        for task in quality.MAD_TASKS:
            for lr, wd, bump in ((1e-3, 0.0, 0.0), (1e-4, 0.1, -0.2)):
                rows.append(row(task, layout, level + bump, 128, 64, "vocab_size=16", lr=lr, weight_decay=wd))
    return rows


@pytest.fixture
def quality_table():
    return quality.prepare(pd.DataFrame(synthetic_rows()))


def test_every_anchor_states_its_figure_setting_and_source():
    assert anchors.FAR == 0.2
    for anchor in anchors.ANCHORS:
        assert 0 <= anchor.value <= 1 and anchor.setting and anchor.source
    mad = {a.model: a.value for a in anchors.ANCHORS if a.task == anchors.MAD}
    assert mad == {"Transformer": 0.745, "multi-head Hyena": 0.732, "Mamba": 0.693, "Hyena": 0.660, "GLA": 0.600}
    assert anchors.published_ranks()["Transformer"] == 1 and anchors.published_ranks()["GLA"] == 5
    assert anchors.published_mad()["mamba"] == ("Mamba", 0.693, 3)


def test_zoology_anchors_meet_our_runs_only_where_the_figure_holds(quality_table):
    compared = anchors.compare(quality.best_runs(quality_table), quality_table)
    zoo = compared[compared["task"] == "mqar-causal"]
    attention = zoo[zoo["layout"] == "attention"]
    assert list(attention["ours"]) == [0.97, 0.55] and list(attention["far"]) == [False, True]
    assert "64 tokens, width 32" in attention.iloc[0]["our_setting"]
    hyena = zoo[zoo["model"] == "Hyena"]
    at_512 = hyena[hyena["published"] == 0.18].iloc[0]
    assert at_512["ours"] == 0.25 and not at_512["far"] and "512 tokens" in at_512["our_setting"]
    below = hyena[hyena["published"] == 0.0].iloc[0]  # widths 64-256 at 512 tokens: not run here
    assert pd.isna(below["ours"]) and "none of them" in below["note"]
    assert set(zoo[zoo["layout"] == ""]["model"]) == {"BaseConv", "H3"}


def test_mad_anchors_hold_our_mad_mean_and_far_ones_are_said_in_words(quality_table):
    compared = anchors.compare(quality.best_runs(quality_table), quality_table)
    mad = compared[compared["task"] == anchors.MAD].set_index("model")
    assert mad.loc["Transformer", "ours"] == pytest.approx(0.9) and not mad.loc["Transformer", "far"]
    assert mad.loc["Mamba", "ours"] == pytest.approx(0.6) and not mad.loc["Mamba", "far"]
    assert "6 of 6 tasks" in mad.loc["Mamba", "our_setting"]
    assert pd.isna(mad.loc["GLA", "ours"]) and mad.loc["GLA", "note"] == "no layout here is this model"
    words = anchors.sentences(compared)
    assert any(text.startswith("attention on mqar-causal: ours 0.55 is 0.45 below Attention's published 1.00")
               for text in words)
    assert not any("Mamba" in text for text in words)


def test_our_mad_order_is_compared_with_the_published_one(quality_table):
    scores = quality.mad_scores(quality_table)
    assert list(scores["layout"]) == ["attention", "hyena", "mamba", "pool"]
    text = anchors.mad_order(scores)
    assert text.startswith("Our MAD order (attention > hyena > mamba) differs from the published one "
                           "(attention (Transformer) > mamba (Mamba) > hyena (Hyena))")
    agreeing = scores.set_index("layout").loc[["attention", "mamba", "hyena"]].reset_index()
    assert "matches the published one" in anchors.mad_order(agreeing)


def test_a_run_with_no_anchored_task_has_no_anchors():
    table = quality.prepare(pd.DataFrame([row("majority", "fft", 0.8)]))
    assert anchors.compare(quality.best_runs(table), table).empty


def test_the_report_ranks_mad_scores_beside_published_ones_and_shows_the_anchors(tmp_path, monkeypatch):
    monkeypatch.setattr(style, "DPI", 30)
    pd.DataFrame(synthetic_rows()).to_csv(tmp_path / "quality.csv", index=False)
    page = render.render_run(tmp_path).page.read_text()
    assert "MAD score per layout" in page and "Our figures beside published ones" in page
    mad = page[page.index("MAD score per layout"):page.index("Our figures beside published ones")]
    assert mad.index("<td>attention</td>") < mad.index("<td>hyena</td>") < mad.index("<td>mamba</td>")
    assert "Transformer" in mad and "74.5%" in mad and "Our MAD order" in mad
    assert "ours 0.55 is 0.45 below" in page  # a far anchor is said in words
