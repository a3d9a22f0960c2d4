"""majority: the most frequent symbol, unique by construction, with uniformly distributed labels."""

import numpy as np
import pytest

from bench import tasks


@pytest.mark.parametrize("seq_len, options", [(64, {}), (64, {"margin": 3}), (7, {"margin": 7}),
                                              (1, {}), (200, {"num_symbols": 2}), (16, {"num_symbols": 30})])
def test_invariants(invariants, seq_len, options):
    task = tasks.build("majority", seq_len, **options)
    for seed in range(3):
        invariants["majority"](task, *task.batch(256, seed))


def test_defaults():
    task = tasks.build("majority")
    assert task.seq_len == 64 and not task.per_position
    assert task.options == {"num_symbols": 8, "margin": 1}
    assert task.num_classes == len(task.vocab) == 8 and task.baseline == 1 / 8


@pytest.mark.parametrize("options", [{}, {"margin": 4}])
def test_labels_are_uniform_so_the_baseline_is_both_chance_and_majority(options):
    task = tasks.build("majority", **options)
    labels = task.batch(8192, 0)[1].numpy()
    shares = np.bincount(labels, minlength=8) / len(labels)
    assert np.abs(shares - task.baseline).max() < 0.02  # 5 standard errors at n = 8192


def test_a_tie_costs_one_moved_token():
    # margin 1: a tied draw (1 in 5 at 64 tokens over 8 symbols) moves one token to the winner, an
    # untied one is kept; so the winner's mean count exceeds a plain uniform draw's maximum by the tie share
    examples = 4096
    inputs, labels, _ = tasks.build("majority").batch(examples, 1)
    counts = np.stack([np.bincount(row, minlength=8) for row in inputs.numpy()])
    winner_count = counts[np.arange(examples), labels.numpy()].mean()
    plain = np.stack([np.bincount(row, minlength=8) for row in np.random.default_rng(2).integers(0, 8, (examples, 64))])
    ordered = np.sort(plain, axis=1)
    tie_share = (ordered[:, -1] == ordered[:, -2]).mean()
    assert 0.15 < tie_share < 0.25
    assert abs(winner_count - ordered[:, -1].mean() - tie_share) < 0.12  # 3 standard errors


@pytest.mark.parametrize("seq_len, options, words", [
    (64, {"num_symbols": 1}, ["num_symbols=1", ">= 2"]),
    (64, {"margin": 0}, ["margin=0", "[1, 64]"]),
    (8, {"margin": 9}, ["margin=9", "[1, 8]"]),
])
def test_bad_options_are_one_line(seq_len, options, words):
    support = tasks.get("majority").supports(seq_len, **options)
    assert not support
    with pytest.raises(tasks.TaskOptionError) as error:
        tasks.build("majority", seq_len, **options)
    message = str(error.value)
    assert message == support.reason and "\n" not in message and message.startswith("majority: ")
    assert all(word in message for word in words), message
