"""Property tests: the generators' invariants hold for any size and options a task accepts."""

import numpy as np
import pytest

hypothesis = pytest.importorskip("hypothesis", reason="the property tests need hypothesis")
from hypothesis import assume, given, settings, strategies as st  # noqa: E402

from bench import tasks  # noqa: E402
from bench.tasks import listops  # noqa: E402

SETTINGS = settings(max_examples=30, deadline=None, derandomize=True)
seeds = st.integers(0, 2**63)


@SETTINGS
@given(data=st.data(), seed=seeds, size=st.integers(1, 6))
def test_mqar(invariants, data, seed, size):
    vocab_size = data.draw(st.integers(4, 300), label="vocab_size")
    pairs = data.draw(st.integers(1, min(24, vocab_size // 2 - 1)), label="num_kv_pairs")
    queries = data.draw(st.integers(1, pairs), label="num_queries")
    seq_len = data.draw(st.integers(2 * pairs + 2 * queries, 2 * pairs + 2 * queries + 60), label="seq_len")
    power_a = data.draw(st.floats(0.001, 3.0), label="power_a")
    task = tasks.build("mqar", seq_len, vocab_size=vocab_size, num_kv_pairs=pairs, num_queries=queries,
                       power_a=power_a)
    invariants["mqar"](task, *task.batch(size, seed))


@SETTINGS
@given(seq_len=st.integers(1, 100), symbols=st.integers(2, 12), data=st.data(), seed=seeds, size=st.integers(1, 8))
def test_majority(invariants, seq_len, symbols, data, seed, size):
    margin = data.draw(st.integers(1, seq_len), label="margin")
    task = tasks.build("majority", seq_len, num_symbols=symbols, margin=margin)
    invariants["majority"](task, *task.batch(size, seed))


@SETTINGS
@given(seq_len=st.integers(4, 120), max_depth=st.integers(2, 7), max_args=st.integers(2, 10), data=st.data(),
       seed=seeds, size=st.integers(1, 4))
def test_listops(invariants, seq_len, max_depth, max_args, data, seed, size):
    min_length = data.draw(st.integers(4, seq_len), label="min_length")
    support = tasks.get("listops").supports(seq_len, max_depth=max_depth, max_args=max_args, min_length=min_length)
    assume(support)
    task = tasks.build("listops", seq_len, max_depth=max_depth, max_args=max_args, min_length=min_length)
    try:
        batch = task.batch(size, seed)
    except tasks.TaskOptionError as error:  # possible lengths that are drawn too rarely are refused
        assert "drawn expressions" in str(error)
        hypothesis.event("refused: too rare")
        return
    hypothesis.event("drawn")
    invariants["listops"](task, *batch)


def expressions(max_leaves=40):
    """Nested (operator, [arguments]) trees with digit leaves."""
    digits = st.integers(0, 9)
    return st.recursive(digits, lambda children: st.tuples(st.sampled_from(listops.OPERATORS),
                                                           st.lists(children, min_size=1, max_size=6)),
                        max_leaves=max_leaves)


def tokens_of(tree):
    if isinstance(tree, int):
        return [str(tree)]
    operator, args = tree
    return [operator, *(token for arg in args for token in tokens_of(arg)), listops.END]


def value_of(tree):
    """Reference value with numpy: LRA's int(np.median) and np.sum % 10."""
    if isinstance(tree, int):
        return tree
    operator, args = tree
    values = [value_of(arg) for arg in args]
    return {"[MIN": np.min, "[MAX": np.max, "[MED": lambda v: int(np.median(v)),
            "[SM": lambda v: np.sum(v) % 10}[operator](values)


@settings(max_examples=100, deadline=None, derandomize=True)
@given(tree=expressions())
def test_evaluate_matches_a_recursive_numpy_reference(tree):
    assert listops.evaluate(tokens_of(tree)) == value_of(tree)


@settings(max_examples=100, deadline=None, derandomize=True)
@given(a=st.tuples(st.sampled_from(tasks.SPLITS), st.integers(0, 2**32 - 1), st.integers(0, 2**20)),
       b=st.tuples(st.sampled_from(tasks.SPLITS), st.integers(0, 2**32 - 1), st.integers(0, 2**20)))
def test_split_seeds_differ_and_stay_out_of_the_reserved_seeds(a, b):
    seed = tasks.split_seed(*a)
    assert (seed >> 32) % 4 != 0
    assert (seed == tasks.split_seed(*b)) == (a == b)
