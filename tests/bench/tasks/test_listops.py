"""listops: LRA's ListOps generator and evaluator, checked against hand-worked expressions,
numpy's median, and a direct transcription of LRA's rejection sampler."""

import itertools
import random

import numpy as np
import pytest

from bench import tasks
from bench.tasks import listops


@pytest.mark.parametrize("expression, value", [
    ("[MAX 2 9 [MIN 4 7 ] 0 ]", 9),  # LRA's example
    ("[MIN 3 1 4 ]", 1),
    ("[MAX 0 0 ]", 0),
    ("[MED 5 1 3 ]", 3),
    ("[MED 1 2 ]", 1),  # int(np.median([1, 2])) = int(1.5)
    ("[MED 3 9 ]", 6),
    ("[MED 1 2 3 4 ]", 2),  # int(2.5)
    ("[MED 9 8 ]", 8),  # int(8.5)
    ("[SM 9 9 ]", 8),
    ("[SM 5 5 ]", 0),
    ("[SM [MIN 3 4 ] [MAX 1 7 ] 9 ]", 9),  # 3 + 7 + 9 = 19
    ("[MED [SM 9 9 ] 0 [MAX 2 3 ] 7 ]", 5),  # median of 8 0 3 7 = int(5.0)
    ("[MIN [MAX [MED 1 2 3 ] [SM 4 4 ] ] 6 ]", 6),  # min(max(2, 8), 6)
    ("[SM [SM [SM 9 9 ] 9 ] 9 ]", 6),  # 18 -> 8; 8 + 9 = 17 -> 7; 7 + 9 = 16 -> 6
])
def test_evaluate_hand_worked_expressions(expression, value):
    assert listops.evaluate(expression.split()) == value
    assert listops.evaluate(expression.split() + [listops.PAD] * 3) == value  # trailing padding


ALLOWED = "(allowed: <pad> 0 1 2 3 4 5 6 7 8 9 [MIN [MAX [MED [SM ]"


@pytest.mark.parametrize("expression, message", [
    ("[MIN 1 2", "incomplete expression: 1 list(s) left open"), ("", "incomplete expression: 0 list(s) left open"),
    ("1 2 ]", "token '2' after the end of the expression"),
    ("[MIN 1 2 ] 3", "token '3' after the end of the expression"),
    ("]", "']' closes no list"), ("[MAX ]", "[MAX has no arguments"),
    ("[MIN 1 x ]", f"unknown ListOps token 'x' {ALLOWED})"), ("[MIN 1 10 ]", f"unknown ListOps token '10' {ALLOWED})"),
    ("[AVG 1 2 ]", f"unknown ListOps token '[AVG' {ALLOWED})"),
])
def test_evaluate_refuses_malformed_expressions_saying_why(expression, message):
    with pytest.raises(ValueError) as refused:
        listops.evaluate(expression.split())
    assert str(refused.value) == message


def test_evaluate_skips_padding_anywhere():
    assert listops.evaluate(["[MAX", "2", listops.PAD, "9", listops.PAD, "]", listops.PAD]) == 9


def test_med_is_lras_int_numpy_median_and_sm_is_the_sum_mod_10():
    rng = random.Random(0)
    lists = [list(args) for length in (1, 2, 3) for args in itertools.product(range(10), repeat=length)]
    lists += [[rng.randrange(10) for _ in range(rng.randint(4, 12))] for _ in range(2000)]
    for args in lists:
        assert listops.reduce("[MED", args) == int(np.median(args)), args
        assert listops.reduce("[SM", args) == int(np.sum(args)) % 10
        assert listops.reduce("[MIN", args) == min(args) and listops.reduce("[MAX", args) == max(args)


def test_defaults_and_vocabulary():
    task = tasks.build("listops")
    assert task.seq_len == 128 and not task.per_position and task.num_classes == 10
    assert task.options == {"max_depth": 6, "max_args": 10, "min_length": 32}
    assert task.vocab == ["<pad>", *"0123456789", "[MIN", "[MAX", "[MED", "[SM", "]"]
    assert tasks.build("listops", 2000).options == {"max_depth": 10, "max_args": 10, "min_length": 500}  # LRA's
    assert tasks.build("listops", 1024).options["max_depth"] == 8


@pytest.mark.parametrize("seq_len, options", [(128, {}), (32, {}), (64, {"max_depth": 3, "max_args": 4}),
                                              (48, {"min_length": 40}), (512, {})])
def test_invariants(invariants, seq_len, options):
    task = tasks.build("listops", seq_len, **options)
    invariants["listops"](task, *task.batch(64, 0))


def lra_expression(rng, max_depth, max_args):
    """LRA's generate_tree transcribed to token lists (root drawn like any node), with its value."""
    def node(depth):
        if depth >= max_depth or rng.random() > listops.VALUE_P:
            digit = rng.randrange(10)
            return [str(digit)], digit
        tokens, values = [], []
        for _ in range(rng.randint(2, max_args)):
            child_tokens, child_value = node(depth + 1)
            tokens += child_tokens
            values.append(child_value)
        operator = rng.choice(listops.OPERATORS)
        return [operator, *tokens, listops.END], listops.reduce(operator, values)
    return node(1)


def test_kept_expressions_are_distributed_as_lras():
    # LRA draws the root like any node and rejects by length; we force an operator root and stop
    # an expression once it outgrows seq_len: the kept ones must be distributed alike
    seq_len, min_length, max_depth, max_args, examples = 40, 10, 5, 6, 2000
    rng = random.Random(0)
    reference = []
    while len(reference) < examples:
        tokens, value = lra_expression(rng, max_depth, max_args)
        if min_length <= len(tokens) <= seq_len:
            reference.append((len(tokens), value))
    task = tasks.build("listops", seq_len, max_depth=max_depth, max_args=max_args, min_length=min_length)
    inputs, targets, _ = task.batch(examples, 7)
    lengths = (inputs != 0).sum(dim=1).numpy()
    ref_lengths = np.array([length for length, _ in reference])
    standard_error = np.sqrt(2 * ref_lengths.var() / examples)
    assert abs(lengths.mean() - ref_lengths.mean()) < 4 * standard_error
    grid = np.arange(seq_len + 1)
    cdf_gap = np.abs((lengths[:, None] <= grid).mean(0) - (ref_lengths[:, None] <= grid).mean(0)).max()
    assert cdf_gap < 0.06  # two-sample Kolmogorov-Smirnov: the 1% critical value at n = 2000 is 0.052
    ours = np.bincount(targets.numpy(), minlength=10) / examples
    theirs = np.bincount([value for _, value in reference], minlength=10) / examples
    assert np.abs(ours - theirs).max() < 0.04


def test_baseline_is_the_majority_share_of_an_independent_sample():
    task = tasks.build("listops", 64)
    targets = np.concatenate([task.batch(512, tasks.split_seed("test", index))[1].numpy() for index in range(4)])
    shares = np.bincount(targets, minlength=10) / len(targets)
    assert abs(task.baseline - shares.max()) < 0.03
    assert (shares > 0).all(), "every value occurs"
    assert tasks.build("listops", 64).baseline == task.baseline  # cached, the same number


@pytest.mark.parametrize("seq_len, options, words", [
    (3, {}, ["seq_len=3", ">= 4"]),
    (128, {"max_depth": 2, "max_args": 5}, ["at most 7 tokens", "min_length=32"]),
    (128, {"min_length": 129}, ["min_length=129", "[4, 128]"]),
    (128, {"max_args": 1}, ["max_args=1", ">= 2"]),
    (128, {"max_depth": 1}, ["max_depth=1", "[2, 64]"]),
    (128, {"max_depth": "6"}, ["max_depth", "integer"]),
])
def test_bad_options_are_one_line(seq_len, options, words):
    support = tasks.get("listops").supports(seq_len, **options)
    assert not support
    with pytest.raises(tasks.TaskOptionError) as error:
        tasks.build("listops", seq_len, **options)
    message = str(error.value)
    assert message == support.reason and "\n" not in message and message.startswith("listops: ")
    assert all(word in message for word in words), message


def test_options_that_almost_never_reach_the_length_range_are_refused_when_drawing():
    # depth 4 with 5 arguments can reach 187 tokens, but almost never 64
    task = tasks.build("listops", 256, max_depth=4, max_args=5)
    with pytest.raises(tasks.TaskOptionError, match="drawn expressions") as error:
        task.batch(1, 0)
    assert "\n" not in str(error.value)


def test_max_length_is_the_full_tree():
    assert listops.max_length(2, 5) == 5 + 2  # one operator, five digits
    assert listops.max_length(3, 2) == 4 + 2 * 3
    assert listops.max_length(4, 5) == 125 + 2 * 31


@pytest.mark.parametrize("seq_len, depth, min_length", [(4, 6, 4), (16, 6, 4), (512, 6, 128), (513, 8, 128),
                                                        (1024, 8, 256), (1025, 10, 256)])
def test_depth_and_shortest_expression_follow_the_length(seq_len, depth, min_length):
    options = tasks.build("listops", seq_len).options
    assert (options["max_depth"], options["min_length"]) == (depth, min_length)


def test_an_unknown_operator_and_a_too_short_length_are_refused_saying_why():
    with pytest.raises(ValueError) as refused:
        listops.reduce("[AVG", [1])
    assert str(refused.value) == "unknown ListOps operator '[AVG' (allowed: [MIN, [MAX, [MED, [SM)"
    with pytest.raises(tasks.TaskOptionError) as refused:
        tasks.build("listops", 3)
    assert str(refused.value) == "listops: seq_len=3 is too short (allowed: >= 4, the shortest expression '[MIN 1 2 ]')"


class TokenDraws(random.Random):
    """A Random that counts the draws that choose a token (a digit's randrange(10), an operator's
    randrange(4)); randint(2, max_args) reaches randrange with two bounds and is not counted."""

    def __init__(self, seed):
        super().__init__(seed)
        self.tokens = 0

    def randrange(self, *bounds):
        self.tokens += bounds in ((10,), (len(listops.OPERATORS),))
        return super().randrange(*bounds)


def committed_lengths(ids):
    """For each drawn token of a whole expression (digits and operators, not `]`), the tokens it commits
    the expression to: those written so far plus a `]` for every list still open, its own included."""
    committed, open_lists = [], 0
    for index, token in enumerate(ids):
        if token == listops.END_ID:
            open_lists -= 1
            continue
        open_lists += token >= listops.OPERATOR_ID
        committed.append(index + 1 + open_lists)
    return committed


@pytest.mark.parametrize("seed", range(40))
def test_a_draw_stops_at_the_token_that_outgrows_the_limit(seed):
    # the module's promise: drawing stops as soon as an expression outgrows its limit, and one that fits
    # exactly (its last `]` the limit's last token) is kept whole
    ids, value = listops.draw_expression(random.Random(seed), 4, 4, 10_000)
    committed = committed_lengths(ids)
    assert committed == sorted(committed) and committed[-1] == len(ids)
    assert listops.draw_expression(random.Random(seed), 4, 4, len(ids)) == (ids, value)
    for limit in range(1, len(ids)):
        rng = TokenDraws(seed)
        with pytest.raises(listops._TooLong):
            listops.draw_expression(rng, 4, 4, limit)
        first_over = next(ordinal for ordinal, length in enumerate(committed, 1) if length > limit)
        assert rng.tokens == first_over, (limit, committed)


def test_the_generator_gives_up_after_its_budget_of_draws_saying_how_many_it_kept():
    # 20 examples: 100 draws each plus 1000 = 3000 draws; count what they keep with the same seed by hand
    task = tasks.build("listops", 256, max_depth=4, max_args=5, min_length=45)
    rng, kept = random.Random(3), 0
    for _ in range(3000):
        try:
            ids, _ = listops.draw_expression(rng, 4, 5, 256)
        except listops._TooLong:
            continue
        kept += len(ids) >= 45
    assert 0 < kept < 20, "the options keep some expressions, too few for the batch"
    with pytest.raises(tasks.TaskOptionError) as refused:
        task.batch(20, 3)  # batch() draws with the seed it is given
    assert str(refused.value) == (
        f"listops: only {kept} of 3000 drawn expressions had 45..256 tokens with max_depth=4, max_args=5 "
        "(allowed: options that keep at least 1 in 100; change max_depth or max_args, or lower min_length)")


def test_options_whose_largest_expression_is_just_long_enough_are_accepted():
    # max_depth 2 with 5 arguments: at most [OP d d d d d ] = 7 tokens, exactly min_length
    task = tasks.build("listops", 16, max_depth=2, max_args=5, min_length=7)
    inputs, _, _ = task.batch(8, 0)
    assert ((inputs != 0).sum(dim=1) == 7).all()
