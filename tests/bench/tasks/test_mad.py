"""MAD's six tasks (athms/mad-lab): structure by hand, each scored target recovered from the inputs before it."""

import numpy as np
import pytest
import torch

from bench import tasks

MAD = ["in-context-recall", "noisy-recall", "fuzzy-recall", "selective-copying", "compression", "memorization"]


@pytest.mark.parametrize("name, seq_len, options, baseline", [
    ("in-context-recall", 128, {"vocab_size": 16, "noise_vocab_size": 0, "frac_noise": 0.0}, 1 / 8),
    ("noisy-recall", 128, {"vocab_size": 32, "noise_vocab_size": 16, "frac_noise": 0.2}, 1 / 8),
    ("fuzzy-recall", 128, {"vocab_size": 16, "k_motif_size": 3, "v_motif_size": 3, "noise_vocab_size": 0,
                           "frac_noise": 0.0, "fixed_key_size": False}, 1 / 8),
    ("selective-copying", 256, {"vocab_size": 16, "num_tokens_to_copy": 16}, 1 / 14),
    ("compression", 64, {"vocab_size": 16}, (31 / 15 + 1) / 32),
    ("memorization", 32, {"vocab_size": 256, "map_seed": 12345}, 1 / 127),
])
def test_defaults_are_mads_baseline_settings(name, seq_len, options, baseline):
    task = tasks.build(name)
    assert task.causal and task.per_position and tasks.get(name).causal
    assert task.seq_len == seq_len and task.options == options
    assert task.baseline == pytest.approx(baseline)
    assert task.num_classes == options["vocab_size"] == len(task.vocab)


def test_the_bidirectional_tasks_stay_non_causal():
    assert not tasks.get("mqar").causal and not tasks.get("majority").causal and tasks.get("mqar-causal").causal


@pytest.mark.parametrize("name", MAD + ["mqar-causal"])
def test_deterministic_per_seed(name):
    task = tasks.build(name)
    first, again, other = task.batch(6, 4), tasks.build(name).batch(6, 4), task.batch(6, 5)
    assert all(np.array_equal(a.numpy(), b.numpy()) for a, b in zip(first, again))
    assert not np.array_equal(first[0].numpy(), other[0].numpy())
    assert first[0].dtype == first[1].dtype == torch.int64 and first[2].dtype == torch.bool


def arrays(task, size, seed):
    return [part.numpy() for part in task.batch(size, seed)]


@pytest.mark.parametrize("name, options", [("in-context-recall", {}), ("noisy-recall", {}),
                                           ("in-context-recall", {"vocab_size": 12, "noise_vocab_size": 4,
                                                                  "frac_noise": 0.5})])
@pytest.mark.parametrize("seq_len", [8, 128])
def test_recall_targets_are_the_value_that_followed_the_same_key(name, options, seq_len):
    task = tasks.build(name, seq_len, **options)
    x, y, m = arrays(task, 64, 1)
    symbols = task.options["vocab_size"] - task.options["noise_vocab_size"]
    keys = symbols // 2
    for row in range(len(x)):
        scored = np.flatnonzero(m[row])
        assert seq_len - 2 in scored and (scored % 2 == 0).all()  # key positions, the final query among them
        for position in range(0, seq_len, 2):
            key = x[row, position]
            if key >= symbols:  # a noise pair: both tokens noise, never scored
                assert symbols <= x[row, position + 1] < task.options["vocab_size"] and not m[row, position]
                continue
            assert key < keys and keys <= x[row, position + 1] < symbols
            earlier = [p for p in range(0, position, 2) if x[row, p] == key]
            assert m[row, position] == bool(earlier)
            if earlier:  # the map holds within the example, and the target is the value seen before
                assert y[row, position] == x[row, earlier[0] + 1] == x[row, position + 1]


def test_noisy_recall_draws_about_a_fifth_of_pairs_as_noise():
    x = arrays(tasks.build("noisy-recall"), 400, 2)[0]
    noise_pairs = (x[:, 0:126:2] >= 16).mean()
    assert abs(noise_pairs - 0.2 * 62 / 63) < 0.01
    assert x[x >= 16].max() < 32


def runs(tokens, keys, values):
    """Maximal runs of (kind, tokens) with kind 'k', 'v' or 'n' (noise / padding)."""
    out = []
    for token in tokens:
        kind = "k" if token < keys else "v" if token < values else "n"
        if out and out[-1][0] == kind:
            out[-1][1].append(token)
        else:
            out.append((kind, [token]))
    return out


@pytest.mark.parametrize("options", [{}, {"fixed_key_size": True},
                                     {"vocab_size": 24, "noise_vocab_size": 7, "frac_noise": 0.3}])
def test_fuzzy_recall_targets_are_the_value_run_that_followed_the_same_key_run(options):
    task = tasks.build("fuzzy-recall", **options)
    x, y, m = arrays(task, 48, 3)
    symbols = task.options["vocab_size"] - 1 - task.options["noise_vocab_size"]
    keys = symbols // 2
    for row in range(len(x)):
        assert m[row, -1], "the last position predicts the query's last value token"
        stream = list(x[row]) + [y[row, -1]]
        scored = np.flatnonzero(m[row])
        assert (y[row, scored] == np.asarray(stream)[scored + 1]).all(), "next-token targets"
        # which stream positions lie in a value run of a key run seen before, with that same value run
        expected, position, seen = set(), 0, {}
        parsed = runs(stream, keys, symbols)
        for index, (kind, tokens) in enumerate(parsed):
            if kind == "k":
                assert len(tokens) <= task.options["k_motif_size"] and len(set(tokens)) == len(tokens)
                if task.options["fixed_key_size"]:
                    assert len(tokens) == task.options["k_motif_size"]
                value = parsed[index + 1][1]
                assert parsed[index + 1][0] == "v" and len(value) <= task.options["v_motif_size"]
                key = tuple(tokens)
                if key in seen:
                    assert seen[key] == value
                    expected.update(range(position + len(tokens), position + len(tokens) + len(value)))
                seen[key] = value
            position += len(tokens)
        assert set((scored + 1).tolist()) <= expected
        assert position == len(stream)


def test_fuzzy_recall_pads_on_the_left_only():
    x = arrays(tasks.build("fuzzy-recall"), 64, 4)[0]
    for row in x:
        padded = np.flatnonzero(row == 15)
        assert len(padded) >= 1 and (padded == np.arange(len(padded))).all()


@pytest.mark.parametrize("seq_len, options", [(256, {}), (12, {"vocab_size": 5, "num_tokens_to_copy": 3})])
def test_selective_copying_targets_are_the_non_blank_tokens_in_order(seq_len, options):
    task = tasks.build("selective-copying", seq_len, **options)
    vocab_size, copies = task.options["vocab_size"], task.options["num_tokens_to_copy"]
    x, y, m = arrays(task, 64, 5)
    assert (m[:, -copies:]).all() and not m[:, :-copies].any()
    assert (x[:, seq_len - copies - 1] == vocab_size - 1).all() and (x[:, -copies:] == vocab_size - 2).all()
    for row in range(len(x)):
        before = x[row, :seq_len - copies - 1]
        data = before[before != vocab_size - 2]
        assert (data < vocab_size - 2).all() and len(data) == copies
        assert y[row, -copies:].tolist() == data.tolist()
        assert before[-1] != vocab_size - 2, "the last data token comes right before the copy token, as in MAD"


def test_selective_copying_spreads_blanks_over_the_gaps_uniformly():
    x = arrays(tasks.build("selective-copying"), 300, 6)[0]
    first_data = np.argmax(x != 14, axis=1)  # blanks before the first data token: Binomial(223, 1/16)
    assert abs(first_data.mean() - 223 / 16) < 1.0


def test_compression_asks_for_the_first_half_again():
    task = tasks.build("compression")
    x, y, m = arrays(task, 32, 7)
    assert (x[:, 31:] == 15).all() and (x[:, :31] < 15).all()
    assert m[:, 32:].all() and not m[:, :32].any()
    assert (y[:, 32:] == x[:, :32]).all()


def test_memorization_map_is_fixed_per_task_and_one_to_one():
    task = tasks.build("memorization")
    pairs = {}
    for seed in range(5):
        x, y, m = arrays(tasks.build("memorization"), 64, seed)
        assert (x[:, 1::2] == 255).all() and (m[:, 1::2]).all() and not m[:, 0::2].any()
        assert (x[:, 0::2] < 127).all()
        for key, value in zip(x[:, 0::2].ravel(), y[:, 1::2].ravel()):
            assert pairs.setdefault(int(key), int(value)) == value, "one key, one value across seeds"
    assert len(pairs) == 127 and len(set(pairs.values())) == 127
    assert min(pairs.values()) >= 127 and max(pairs.values()) < 255
    assert np.array_equal(task.value_of, tasks.build("memorization").value_of)
    assert not np.array_equal(task.value_of, tasks.build("memorization", map_seed=1).value_of)


def test_mqar_causal_asks_the_block_keys_and_labels_their_values():
    task = tasks.build("mqar-causal", 64, num_queries=5)
    x, y, m = arrays(task, 64, 8)
    for row in range(len(x)):
        answer = dict(zip(x[row, 0:16:2].tolist(), x[row, 1:16:2].tolist()))
        positions = np.flatnonzero(m[row])
        assert len(positions) == 5 and (positions >= 16).all() and ((positions - 16) % 2 == 0).all()
        assert sorted(x[row, positions].tolist()) == sorted(x[row, 0:10:2].tolist()), "the first 5 keys are asked"
        assert y[row, positions].tolist() == [answer[key] for key in x[row, positions].tolist()]


def test_mqar_causal_filler_covers_the_whole_vocabulary_and_mqar_is_unchanged():
    x, _, m = arrays(tasks.build("mqar-causal"), 512, 9)
    filler = x[:, 16:][~m[:, 16:]]
    assert np.bincount(filler, minlength=256).min() > 30  # values too, unlike mqar's filler
    x, _, m = arrays(tasks.build("mqar"), 64, 9)
    causal = arrays(tasks.build("mqar-causal"), 64, 9)[0]
    assert not np.array_equal(x, causal)


@pytest.mark.parametrize("name, seq_len, options, words", [
    ("in-context-recall", 127, {}, ["seq_len=127", "even"]),
    ("in-context-recall", 128, {"frac_noise": 0.2}, ["frac_noise=0.2", "noise_vocab_size >= 1"]),
    ("noisy-recall", 128, {"frac_noise": 1.0}, ["frac_noise=1.0", "[0, 1)"]),
    ("noisy-recall", 128, {"vocab_size": 17}, ["vocab_size=17", "at least 2"]),
    ("fuzzy-recall", 12, {}, ["seq_len=12", "12"]),
    ("fuzzy-recall", 128, {"k_motif_size": 8}, ["k_motif_size=8", "7 key"]),
    ("fuzzy-recall", 128, {"fixed_key_size": 1}, ["fixed_key_size", "True or False"]),
    ("selective-copying", 33, {}, ["seq_len=33", "33"]),
    ("selective-copying", 256, {"vocab_size": 3}, ["vocab_size=3", ">= 4"]),
    ("compression", 63, {}, ["seq_len=63", "even"]),
    ("memorization", 31, {}, ["seq_len=31", "even"]),
    ("memorization", 32, {"map_seed": -1}, ["map_seed=-1"]),
])
def test_bad_options_are_one_line(name, seq_len, options, words):
    support = tasks.get(name).supports(seq_len, **options)
    assert not support
    with pytest.raises(tasks.TaskOptionError) as error:
        tasks.build(name, seq_len, **options)
    message = str(error.value)
    assert message == support.reason and "\n" not in message and message.startswith(f"{name}: ")
    assert all(word in message for word in words), message
