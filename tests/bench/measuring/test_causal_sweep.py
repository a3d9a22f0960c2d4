"""Causal sweeps: `--causal` points build every mixer's causal form, carry a `causal` column and key, and a mixer
without a causal form is an `unsupported` row with its reason."""

import dataclasses

import pandas as pd
import pytest

import mixers
from bench import api
from bench.measuring import store, timing
from bench.measuring.points import Point
from bench.reporting import analysis


def point(mixer="attention", scope="mixer", causal=True, mode="forward"):
    shape = dict(layers=None, ffn=None, vocab=None, norm=None)
    if scope == "block":
        shape = dict(layers=1, ffn=128, vocab=None, norm="pre")
    if scope == "encoder":
        shape = dict(layers=2, ffn=128, vocab=32, norm="pre")
    return Point(mixer, scope, 16, 64, batch=2, batching="batch=2", dtype="float32", mode=mode, device="cpu",
                 causal=causal, **shape)


def test_the_plan_makes_causal_points_with_their_own_key(tmp_path):
    options = dict(layouts="attention,fft", seq_lens="16", dims="64", batches="1", device="cpu")
    causal = api.plan_sweep(causal=True, out=tmp_path / "causal", **options)
    plain = api.plan_sweep(out=tmp_path / "plain", **options)
    assert causal.axes.causal and all(p.causal for p in causal.points)
    assert not any(p.causal for p in plain.points)
    assert {dataclasses.replace(p, causal=False).key for p in causal.points} == {p.key for p in plain.points}
    assert not {p.key for p in causal.points} & {p.key for p in plain.points}


def test_a_row_round_trips_and_an_old_row_reads_as_not_causal():
    causal = point()
    row = {key: store.cell(value) for key, value in causal.as_dict().items()}
    assert "causal" in store.COLUMNS and row["causal"] == "True"
    assert Point.from_row(row) == causal
    row.pop("causal")
    assert not Point.from_row(row).causal


@pytest.mark.parametrize("scope", ["mixer", "block", "encoder"])
def test_a_causal_point_builds_causal_mixers(scope):
    prepared = timing.prepare_call(point(scope=scope))
    found = [module for module in prepared.module.modules() if isinstance(module, mixers.TokenMixer)]
    assert found and all(module.causal for module in found)
    prepared.step()


def test_without_a_causal_form_the_point_is_refused_with_the_reason():
    assert timing.refusal(point("fft")) == mixers.get("fft").causal_refusal()
    assert timing.refusal(point("fft", causal=False)) is None
    assert timing.refusal(point("attention")) is None


def test_the_causal_cost_counts_only_the_scores_a_causal_kernel_needs():
    causal = sum(part.flops for part in timing.cost_parts(point()))
    plain = sum(part.flops for part in timing.cost_parts(point(causal=False)))
    assert 0 < causal < plain
    # hyena's causal form has one filter direction: fewer parameters
    hyena = [timing.cost_parts(point("hyena", causal=flag))[0].params for flag in (True, False)]
    assert hyena[0] < hyena[1]


def test_reports_name_a_causal_series_apart():
    table = pd.DataFrame([{**point(causal=flag).as_dict(), "causal": str(flag), "status": "ok", "time_ms": 1.0}
                          for flag in (True, False)])
    names = analysis.prepare(table)["mixer"].tolist()
    assert names == ["attention (causal)", "attention"]
    assert analysis.prepare(analysis.prepare(table))["mixer"].tolist() == names  # named once
