"""mqar: Zoology's multi-query associative recall, with no answer at or after its query."""

import numpy as np
import pytest

from bench import tasks
from bench.tasks.mqar import random_prefix


@pytest.mark.parametrize("seq_len, options", [
    (64, {}),
    (32, {}),  # the shortest the defaults allow: 2*8 + 2*8
    (100, {"vocab_size": 101, "num_kv_pairs": 5, "num_queries": 3, "power_a": 1.0}),
    (8, {"vocab_size": 4, "num_kv_pairs": 1}),
    (256, {"vocab_size": 1024, "num_kv_pairs": 32, "power_a": 0.5}),
])
def test_invariants(invariants, seq_len, options):
    task = tasks.build("mqar", seq_len, **options)
    for seed in range(3):
        invariants["mqar"](task, *task.batch(128, seed))


def test_the_check_catches_an_answer_after_its_query(invariants):
    # the invariant check itself can fail: plant the answer right after a query
    task = tasks.build("mqar")
    inputs, targets, mask = task.batch(4, 0)
    position = int(np.flatnonzero(mask[0].numpy())[0])
    inputs[0, position + 1] = targets[0, position]
    with pytest.raises(AssertionError, match="at or after its query"):
        invariants["mqar"](task, inputs, targets, mask)


def test_defaults():
    task = tasks.build("mqar")
    assert task.seq_len == 64 and task.per_position
    assert task.options == {"vocab_size": 256, "num_kv_pairs": 8, "num_queries": 8, "power_a": 0.01}
    assert task.num_classes == len(task.vocab) == 256
    assert task.baseline == 1 / 8
    assert task.vocab[0] == "f0" and task.vocab[1] == "k1" and task.vocab[128] == "v128"


def slot_inclusion(positions, block, slots):
    """Share of examples that put a query in each slot (position = block + 2*slot)."""
    chosen = np.zeros(slots)
    for row in positions:
        chosen[(row - block) // 2] += 1
    return chosen / len(positions)


@pytest.mark.parametrize("power_a", [0.01, 0.3, 1.0])
def test_query_slots_follow_zoologys_power_law(power_a):
    # reference: Zoology's own draw, np.random.choice without replacement with p ∝ i^(a-1)
    task = tasks.build("mqar", 64, power_a=power_a)
    block, slots, queries, examples = 16, 24, 8, 3000
    p = power_a * np.arange(1, slots + 1) ** (power_a - 1)
    p /= p.sum()
    rng = np.random.default_rng(0)
    reference = [block + 2 * rng.choice(slots, size=queries, replace=False, p=p) for _ in range(examples)]
    mask = task.batch(examples, 1)[2].numpy()
    ours = [np.flatnonzero(row) for row in mask]
    difference = slot_inclusion(ours, block, slots) - slot_inclusion(reference, block, slots)
    assert np.abs(difference).max() < 0.05


def test_query_order_says_nothing_about_block_order():
    # the first query asks the first pair of the block in 1 of 8 examples, not more (Zoology: more)
    task = tasks.build("mqar")
    inputs, _, mask = task.batch(4000, 2)
    inputs, mask = inputs.numpy(), mask.numpy()
    first_query = inputs[np.arange(len(inputs)), mask.argmax(axis=1)]
    share = (first_query == inputs[:, 0]).mean()
    assert abs(share - 1 / 8) < 0.025


def test_filler_covers_every_id_but_this_examples_values():
    task = tasks.build("mqar")
    inputs, _, mask = task.batch(512, 3)
    inputs, mask = inputs.numpy(), mask.numpy()
    filler = inputs[:, 16:][~mask[:, 16:]]
    counts = np.bincount(filler, minlength=256)
    # 512 rows x 40 filler tokens over 256 ids: 80 each on average (values a little less)
    assert counts.min() > 40 and counts.max() < 130


def test_random_prefix_is_a_uniform_random_ordered_subset():
    rng = np.random.default_rng(0)
    picks = random_prefix(rng, 20000, 5, 2)
    assert ((picks >= 0) & (picks < 5)).all() and (picks[:, 0] != picks[:, 1]).all()
    pairs = np.bincount(picks[:, 0] * 5 + picks[:, 1], minlength=25).reshape(5, 5)
    off_diagonal = pairs[~np.eye(5, dtype=bool)] / 20000
    assert np.abs(off_diagonal - 1 / 20).max() < 0.01  # each of the 20 ordered pairs


@pytest.mark.parametrize("seq_len, options, words", [
    (30, {}, ["seq_len=30", "32"]),
    (64, {"num_kv_pairs": 128}, ["num_kv_pairs=128", "127"]),
    (64, {"num_queries": 9}, ["num_queries=9", "[1, 8]"]),
    (64, {"num_queries": 0}, ["num_queries=0"]),
    (64, {"power_a": 0}, ["power_a=0", "> 0"]),
    (64, {"power_a": float("nan")}, ["power_a"]),
    (64, {"vocab_size": 3}, ["vocab_size=3", ">= 4"]),
    (64, {"vocab_size": 256.0}, ["vocab_size", "integer"]),
])
def test_bad_options_are_one_line(seq_len, options, words):
    support = tasks.get("mqar").supports(seq_len, **options)
    assert not support
    with pytest.raises(tasks.TaskOptionError) as error:
        tasks.build("mqar", seq_len, **options)
    message = str(error.value)
    assert message == support.reason and "\n" not in message and message.startswith("mqar: ")
    assert all(word in message for word in words), message


def test_the_asked_slots_are_each_rows_highest_gumbel_scores():
    """generate()'s draws replayed by hand: each row asks exactly its `num_queries` highest-scored slots (the Gumbel
    top-k form of Zoology's draw without replacement), whatever order they are asked in."""
    task = tasks.build("mqar", 64, power_a=0.3)  # vocab 256, 8 pairs, 8 queries
    size, block, slots, queries = 50, 16, 24, 8
    mask = task.generate(size, 7)[2].numpy()
    rng = np.random.default_rng(7)
    random_prefix(rng, size, 127, 8)  # keys
    random_prefix(rng, size, 128, 8)  # values
    rng.integers(0, 256 - 8, size=(size, 64))  # filler
    scores = (0.3 - 1.0) * np.log(np.arange(1, slots + 1)) + rng.gumbel(size=(size, slots))
    highest = np.argsort(-scores, axis=1)[:, :queries]
    for row, chosen in zip(mask, highest):
        assert set(np.flatnonzero(row)) == set(block + 2 * chosen)


def test_the_vocabulary_is_filler_then_keys_below_half_then_values():
    assert tasks.build("mqar", 64, vocab_size=10, num_kv_pairs=2).vocab == [
        "f0", "k1", "k2", "k3", "k4", "v5", "v6", "v7", "v8", "v9"]


@pytest.mark.parametrize("options, message", [
    (dict(num_kv_pairs=0), "mqar: num_kv_pairs=0 is out of range (allowed: >= 1)"),
    (dict(vocab_size=101, num_kv_pairs=50), "mqar: num_kv_pairs=50 is more than the 49 keys of vocab_size=101 "
     "(allowed: num_kv_pairs <= vocab_size//2 - 1; keys come from [1, vocab_size//2))"),
])
def test_too_few_or_too_many_pairs_are_refused_saying_how_many_fit(options, message):
    with pytest.raises(tasks.TaskOptionError) as refused:
        tasks.build("mqar", 256, **options)
    assert str(refused.value) == message
