"""Every registered task, present and future, keeps the batch contract: shapes, dtypes, ranges, masks,
determinism from the seed alone, disjoint splits, and one-line errors for bad sizes and options."""

import os
import random
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from bench import tasks

REPO = Path(__file__).resolve().parents[3]
NAMES = tasks.available()


@pytest.fixture(params=NAMES)
def task(request):
    return tasks.build(request.param)


def test_the_builtins_are_registered():
    assert {"mqar", "listops", "majority"} <= set(NAMES)
    assert NAMES == sorted(NAMES)


def test_attributes(task):
    assert task.name in NAMES and isinstance(task, tasks.get(task.name))
    assert task.seq_len == type(task).default_seq_len
    assert isinstance(task.vocab, list) and all(isinstance(token, str) for token in task.vocab)
    assert len(set(task.vocab)) == len(task.vocab)
    assert isinstance(task.num_classes, int) and task.num_classes >= 2
    assert isinstance(task.baseline, float) and 0 < task.baseline < 1
    assert isinstance(task.per_position, bool)
    assert set(task.options) == set(type(task).defaults)
    assert None not in task.options.values()
    assert tasks.build(task.name, task.seq_len, **task.options).options == task.options  # provenance rebuilds it
    assert task.name in repr(task)


def test_batch_shapes_dtypes_and_ranges(task, invariants):
    inputs, targets, mask = task.batch(16, 3)
    assert inputs.dtype == torch.int64 and inputs.shape == (16, task.seq_len)
    assert inputs.min() >= 0 and inputs.max() < len(task.vocab)
    if task.per_position:
        assert targets.dtype == torch.int64 and targets.shape == (16, task.seq_len)
        assert mask.dtype == torch.bool and mask.shape == (16, task.seq_len)
        assert mask.any(dim=1).all(), "every example has a position that counts"
        assert targets[mask].min() >= 0 and targets[mask].max() < task.num_classes
        assert (targets[~mask] == tasks.IGNORE_INDEX).all()
    else:
        assert targets.dtype == torch.int64 and targets.shape == (16,)
        assert mask is None
        assert targets.min() >= 0 and targets.max() < task.num_classes
    if task.name in invariants:
        invariants[task.name](task, inputs, targets, mask)


def same(a, b):
    return all((x is None and y is None) or torch.equal(x, y) for x, y in zip(a, b))


def test_same_seed_same_batch_other_seed_other_batch(task):
    first = task.batch(8, 11)
    assert same(first, task.batch(8, 11))
    assert same(first, tasks.build(task.name).batch(8, 11))  # a fresh instance too
    assert not torch.equal(first[0], task.batch(8, 12)[0])


def test_global_random_state_is_neither_used_nor_changed(task):
    states = random.getstate(), np.random.get_state(), torch.get_rng_state()
    first = task.batch(4, 5)
    assert random.getstate() == states[0]
    assert all(np.array_equal(a, b) if isinstance(a, np.ndarray) else a == b
               for a, b in zip(np.random.get_state(), states[1]))
    assert torch.equal(torch.get_rng_state(), states[2])
    random.seed(1), np.random.seed(1), torch.manual_seed(1)
    assert same(first, task.batch(4, 5))


DIGESTS = """
import hashlib
from bench import tasks

def digests():
    out = []
    for name in tasks.available():
        inputs, targets, mask = tasks.build(name).batch(8, tasks.split_seed("val", 3, run_seed=2))
        parts = [inputs, targets] + ([mask] if mask is not None else [])
        out.append(hashlib.sha256(b"".join(part.numpy().tobytes() for part in parts)).hexdigest())
    return out
"""


def test_batches_are_the_same_in_another_process():
    namespace = {}
    exec(DIGESTS, namespace)
    env = {**os.environ, "PYTHONHASHSEED": "123", "PYTHONPATH": str(REPO)}
    result = subprocess.run([sys.executable, "-c", DIGESTS + "print(*digests())"], capture_output=True,
                            text=True, env=env, cwd=REPO)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == namespace["digests"]()


def test_splits_never_share_an_example(task):
    rows = set()
    for split in tasks.SPLITS:
        for index in range(2):
            inputs = task.batch(64, tasks.split_seed(split, index))[0]
            rows.update(row.numpy().tobytes() for row in inputs)
    assert len(rows) == 3 * 2 * 64


@pytest.mark.parametrize("size, seed, wrong", [(0, 0, "batch size"), (-1, 0, "batch size"), (2.0, 0, "batch size"),
                                               (True, 0, "batch size"), (2, -1, "seed"), (2, 1.5, "seed"),
                                               (2, "1", "seed")])
def test_bad_batch_size_or_seed_is_one_line(task, size, seed, wrong):
    with pytest.raises(tasks.TaskOptionError) as error:
        task.batch(size, seed)
    message = str(error.value)
    assert "\n" not in message and task.name in message and wrong in message


@pytest.mark.parametrize("name", NAMES)
def test_unknown_option_names_the_allowed_ones(name):
    cls = tasks.get(name)
    with pytest.raises(tasks.TaskOptionError) as error:
        tasks.build(name, no_such_option=1)
    message = str(error.value)
    assert "\n" not in message and "no_such_option" in message
    assert all(option in message for option in cls.defaults)
    support = cls.supports(no_such_option=1)
    assert not support and support.reason == message


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("seq_len", [0, -4, 64.0, "64"])
def test_bad_seq_len_is_one_line(name, seq_len):
    with pytest.raises(tasks.TaskOptionError, match="seq_len") as error:
        tasks.build(name, seq_len)
    assert "\n" not in str(error.value)
    assert isinstance(error.value, ValueError)


@pytest.mark.parametrize("name", NAMES)
def test_supports_the_defaults(name):
    support = tasks.get(name).supports()
    assert support and support.ok and support.reason == ""
