"""Checks of each built-in task's invariants on a batch, shared by the task tests and the property tests.

`invariants[name](task, inputs, targets, mask)` asserts everything the task promises about one batch;
each check recomputes the answer its own way (token counts, a stack parse, a key -> value map).
"""

from __future__ import annotations

import numpy as np
import pytest

from bench import tasks
from bench.tasks import listops


def check_mqar(task, inputs, targets, mask):
    """Block of distinct keys and values, queries after it, targets = paired values, no answer at or after its query."""
    vocab_size, pairs, queries = (task.options[key] for key in ("vocab_size", "num_kv_pairs", "num_queries"))
    half, block = vocab_size // 2, 2 * pairs
    x, y, m = inputs.numpy(), targets.numpy(), mask.numpy()
    assert x.min() >= 0 and x.max() < vocab_size
    keys, values = x[:, 0:block:2], x[:, 1:block:2]
    assert ((keys >= 1) & (keys < half)).all(), "keys come from [1, V/2)"
    assert ((values >= half) & (values < vocab_size)).all(), "values come from [V/2, V)"
    for row in range(len(x)):
        assert len(set(keys[row])) == pairs and len(set(values[row])) == pairs
        answer = dict(zip(keys[row].tolist(), values[row].tolist()))
        positions = np.flatnonzero(m[row])
        assert len(positions) == queries
        assert (positions >= block).all() and ((positions - block) % 2 == 0).all()
        asked = x[row, positions].tolist()
        assert len(set(asked)) == queries and set(asked) <= set(answer)
        assert y[row, positions].tolist() == [answer[key] for key in asked]
        assert (y[row, ~m[row]] == tasks.IGNORE_INDEX).all()
        for position in positions:
            assert y[row, position] not in x[row, position:], "the answer appears at or after its query"
        # stronger: this example's values appear nowhere but the block
        assert not set(x[row, block:].tolist()) & set(answer.values())


def listops_structure(tokens):
    """(depth, argument counts) of an expression, parsed with a stack of argument counters."""
    counts, open_counts, depth = [], [], 0
    for token in tokens:
        if token in listops.OPERATORS:
            if open_counts:
                open_counts[-1] += 1
            open_counts.append(0)
            depth = max(depth, len(open_counts))
        elif token == listops.END:
            counts.append(open_counts.pop())
        else:
            assert token.isdigit() and open_counts, f"stray token {token!r}"
            open_counts[-1] += 1
            depth = max(depth, len(open_counts) + 1)
    assert not open_counts
    return depth, counts


def check_listops(task, inputs, targets, mask):
    """Padding only at the end, length and tree shape within the options, target = the expression's value."""
    assert mask is None
    max_depth, max_args, min_length = (task.options[key] for key in ("max_depth", "max_args", "min_length"))
    for row, target in zip(inputs, targets.tolist()):
        tokens = task.decode(row)
        length = sum(token != listops.PAD for token in tokens)
        assert all(token == listops.PAD for token in tokens[length:]), "padding only at the end"
        assert min_length <= length <= task.seq_len
        assert tokens[0] in listops.OPERATORS
        depth, counts = listops_structure(tokens[:length])
        assert depth <= max_depth
        assert all(2 <= count <= max_args for count in counts)
        assert listops.evaluate(tokens) == target


def check_majority(task, inputs, targets, mask):
    """The target is the most frequent symbol, ahead of every other by at least `margin`."""
    assert mask is None
    symbols, margin = task.options["num_symbols"], task.options["margin"]
    x = inputs.numpy()
    assert x.min() >= 0 and x.max() < symbols
    for row, winner in zip(x, targets.tolist()):
        counts = np.bincount(row, minlength=symbols)
        others = np.delete(counts, winner)
        assert counts[winner] - others.max() >= margin


INVARIANTS = {"mqar": check_mqar, "listops": check_listops, "majority": check_majority}


@pytest.fixture(scope="session")
def invariants():
    """name -> check(task, inputs, targets, mask) for the built-in tasks."""
    return INVARIANTS
