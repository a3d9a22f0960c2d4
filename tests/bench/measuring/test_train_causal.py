"""Causal tasks train causal models: every mixer in its causal form; a mixer without one is an `unsupported` row."""

import pytest
import torch

import mixers
from bench import tasks
from bench.measuring import train
from bench.measuring.points import TrainingRun

MQAR = "vocab_size=16,num_kv_pairs=2"


def run_of(layout, task="mqar-causal", options=MQAR, steps=6):
    return TrainingRun(task, options, layout, 16, 32, 2, 64, "peri", True, 8, steps, 3e-3, 0, "float32", "cpu")


@pytest.mark.parametrize("task, options", [("mqar-causal", MQAR), ("mqar", MQAR)])
def test_the_model_is_causal_exactly_for_a_causal_task(task, options):
    run = run_of("attention+linear-attention:1", task, options)
    built = train.build_task(run)
    model = train.build(run, built)
    assert built.causal == tasks.get(task).causal
    assert model.causal == built.causal
    assert all(block.mixer.causal == built.causal for block in model.blocks)


@pytest.mark.parametrize("layout, refused", [("fft", "fft"), ("hadamard+attention:1", "hadamard")])
def test_a_mixer_without_a_causal_form_gives_an_unsupported_row(layout, refused):
    run = run_of(layout)
    reason = mixers.get(refused).causal_refusal()
    assert train.refusal(run) == reason
    row = train.train_run(run, "test cpu").row
    assert row["status"] == "unsupported" and row["error"] == reason
    assert row["task"] == "mqar-causal" and row["layout"] == layout


def test_the_same_mixer_runs_on_the_bidirectional_task():
    assert train.refusal(run_of("fft", "mqar")) is None


def test_a_causal_run_trains():
    row = train.train_run(run_of("attention"), "test cpu").row
    assert row["status"] == "ok", row["error"]
    assert 0 <= row["accuracy"] <= 1 and row["loss"] > 0


def test_causal_training_logits_ignore_later_tokens():
    run = run_of("mamba")
    task = train.build_task(run)
    torch.manual_seed(0)
    model = train.build(run, task).eval()
    inputs, _, _ = task.batch(4, 7)
    changed = inputs.clone()
    changed[:, 9:] = (changed[:, 9:] + 1) % len(task.vocab)
    with torch.no_grad():
        torch.testing.assert_close(model(changed)[:, :9], model(inputs)[:, :9])
