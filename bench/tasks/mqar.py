"""Multi-query associative recall (Arora, Eyuboglu et al., "Zoology: Measuring and Improving Recall
in Efficient Language Models", arXiv 2312.04927): after k1 v1 k2 v2 …, each query key kᵢ → vᵢ.

Follows Zoology's generator (`zoology/data/multiquery_ar.py`): keys come from [1, V/2) and values
from [V/2, V), each at most once per example; the key–value block fills the first
2·num_kv_pairs positions; a query goes at an even offset 2g after the block, the slots g drawn
without replacement with p(g) ∝ (g+1)^(power_a−1) (power_a = 1 is uniform, small values crowd the
queries next to the block); every other position holds a random token. The target at a query is its
key's value, and only query positions count (mask). Id 0 (`f0`) is neither key nor value, as in
Zoology; it appears only as filler.

Where we differ, and why:
- Our models are bidirectional encoders, so the answer must never appear at or after its query.
  Zoology's filler is uniform over the whole vocabulary and may hold the answer after the query (a
  causal model never sees it). Here the filler is uniform over every id except this example's
  values, so values appear only in the key–value block, before every query.
- Zoology gives the query slots to the keys in block order, and its sequential draws give the
  first keys the nearest slots; here a random subset of num_queries keys takes the slots in random
  order, so query order says nothing about block order.
- Gaps are drawn with the Gumbel-top-k trick (top num_queries of log p(g) + Gumbel noise), which
  has the same distribution as Zoology's sequential `np.random.choice(replace=False, p=p)`,
  vectorised over the batch.

`baseline` is 1/num_kv_pairs: guessing one of the example's values, the shortcut a model finds
before it learns to recall. Pure chance, 1/vocab_size, is lower. A batch of 64 takes about 1 ms at
the defaults and 8 ms at 2048 tokens (2-core AMD EPYC, median of 20).
"""

from __future__ import annotations

import numpy as np
import torch

from bench import tasks


def random_prefix(rng: np.random.Generator, size: int, population: int, count: int) -> np.ndarray:
    """Per row, the first `count` entries of a uniformly random permutation of range(population)."""
    noise = rng.random((size, population))
    smallest = np.argpartition(noise, count - 1, axis=1)[:, :count]  # argsort(noise)[:, :count], unsorted
    order = np.argsort(np.take_along_axis(noise, smallest, axis=1), axis=1)
    return np.take_along_axis(smallest, order, axis=1)


@tasks.register("mqar")
class MultiQueryAssociativeRecall(tasks.Task):
    """Per position: at each query, predict the value that followed that key in the key–value block."""

    per_position = True
    default_seq_len = 64
    # A vocabulary of 256 and 8 pairs keep a 2-core CPU run short while the shortcut scores 1/8.
    defaults = {"vocab_size": 256, "num_kv_pairs": 8, "num_queries": None, "power_a": 0.01}

    @classmethod
    def derive(cls, seq_len, options):
        if options["num_queries"] is None:
            options["num_queries"] = options["num_kv_pairs"]  # Zoology queries every key
        return options

    @classmethod
    def check(cls, seq_len, options):
        vocab_size, pairs, queries = options["vocab_size"], options["num_kv_pairs"], options["num_queries"]
        reason = tasks.check_int("vocab_size", vocab_size, 4) or tasks.check_int("num_kv_pairs", pairs, 1)
        if reason:
            return reason
        if pairs > vocab_size // 2 - 1:
            return (f"num_kv_pairs={pairs} is more than the {vocab_size // 2 - 1} keys of vocab_size={vocab_size} "
                    f"(allowed: num_kv_pairs <= vocab_size//2 - 1; keys come from [1, vocab_size//2))")
        reason = (tasks.check_int("num_queries", queries, 1, pairs)
                  or tasks.check_float("power_a", options["power_a"], 0.0))
        if reason:
            return reason
        needed = 2 * pairs + 2 * queries
        if seq_len < needed:
            return (f"seq_len={seq_len} is too short for {pairs} key-value pairs and {queries} queries "
                    f"(allowed: seq_len >= 2*num_kv_pairs + 2*num_queries = {needed})")
        return ""

    def __init__(self, seq_len=None, **options):
        super().__init__(seq_len, **options)
        vocab_size = self.options["vocab_size"]
        half = vocab_size // 2
        self.vocab = ["f0"] + [f"k{i}" for i in range(1, half)] + [f"v{i}" for i in range(half, vocab_size)]
        self.num_classes = vocab_size
        self.baseline = 1.0 / self.options["num_kv_pairs"]

    def generate(self, size, seed):
        vocab_size, pairs = self.options["vocab_size"], self.options["num_kv_pairs"]
        queries, power_a = self.options["num_queries"], self.options["power_a"]
        seq_len, half, block = self.seq_len, vocab_size // 2, 2 * pairs
        rng = np.random.default_rng(seed)
        rows = np.arange(size)[:, None]

        keys = 1 + random_prefix(rng, size, half - 1, pairs)
        values = half + random_prefix(rng, size, vocab_size - half, pairs)

        # filler: uniform over the ids that are not this row's values; map r in [0, V - pairs) to
        # the r-th such id by stepping over the sorted values one at a time
        inputs = rng.integers(0, vocab_size - pairs, size=(size, seq_len))
        for value in np.sort(values, axis=1).T:
            inputs += inputs >= value[:, None]
        inputs[:, 0:block:2] = keys
        inputs[:, 1:block:2] = values

        slots = (seq_len - block) // 2
        log_p = (power_a - 1.0) * np.log(np.arange(1, slots + 1))
        scores = log_p + rng.gumbel(size=(size, slots))
        gaps = np.argpartition(-scores, queries - 1, axis=1)[:, :queries]
        positions = block + 2 * gaps
        asked = random_prefix(rng, size, pairs, queries)  # which pairs are asked, in what order
        inputs[rows, positions] = keys[rows, asked]

        targets = np.full((size, seq_len), tasks.IGNORE_INDEX, dtype=np.int64)
        targets[rows, positions] = values[rows, asked]
        mask = targets != tasks.IGNORE_INDEX
        return torch.from_numpy(inputs.astype(np.int64)), torch.from_numpy(targets), torch.from_numpy(mask)
