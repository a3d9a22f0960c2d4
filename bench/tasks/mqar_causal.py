"""Multi-query associative recall in Zoology's own causal form (Arora, Eyuboglu et al., "Zoology:
Measuring and Improving Recall in Efficient Language Models", arXiv 2312.04927).

Follows Zoology's `multiquery_ar` (HazyResearch/zoology, `zoology/data/multiquery_ar.py`): keys from
[1, V/2) and values from [V/2, V), each at most once per example, fill the first 2·num_kv_pairs
positions as k v k v …; the query slots g (at offset 2g after the block) are drawn without
replacement with p(g) ∝ (g+1)^(power_a−1), and the i-th key of the block goes to the i-th slot
drawn, as Zoology's `np.put_along_axis(queries, gaps*2, keys)` does; every other position is filler
uniform over the whole vocabulary (Zoology's `random_non_queries`), so a value may appear anywhere
after the block, the answer right after its query included (a causal model never sees it in time).
The label at a query key's position is its value (Zoology's labels shifted by one: next-token
prediction); only those positions are scored (mask).

Why a task of its own rather than an option of `mqar`: `causal` is a class attribute the harness
reads before it builds a task, and `mqar`'s options and batches stay exactly as they were. Option
checks and the vocabulary are `mqar`'s. Where we differ from Zoology: num_queries may ask only the
first num_queries keys of the block (Zoology asks all); the slots are drawn with the Gumbel-top-k
trick in score order, which has the distribution of Zoology's sequential draw; Zoology's filler
comes from torch's global generator, here from the batch seed.

`baseline` is 1/num_kv_pairs, as `mqar`'s: guessing one of the example's values. Because the first
keys of the block take the slots drawn first (the nearest, when power_a is small), query order
carries some of the block order, a shortcut Zoology's data has too.
"""

from __future__ import annotations

import numpy as np
import torch

from bench import tasks
from bench.tasks.mqar import MultiQueryAssociativeRecall, random_prefix


@tasks.register("mqar-causal")
class CausalMultiQueryAssociativeRecall(MultiQueryAssociativeRecall):
    """Per position, causal: at each query key, predict (as the next token) the value it had in the block."""

    causal = True

    def generate(self, size, seed):
        vocab_size, pairs = self.options["vocab_size"], self.options["num_kv_pairs"]
        queries, power_a = self.options["num_queries"], self.options["power_a"]
        seq_len, half, block = self.seq_len, vocab_size // 2, 2 * pairs
        rng = np.random.default_rng(seed)
        rows = np.arange(size)[:, None]

        keys = 1 + random_prefix(rng, size, half - 1, pairs)
        values = half + random_prefix(rng, size, vocab_size - half, pairs)
        inputs = rng.integers(0, vocab_size, size=(size, seq_len))  # filler over the whole vocabulary
        inputs[:, 0:block:2] = keys
        inputs[:, 1:block:2] = values

        slots = (seq_len - block) // 2
        scores = (power_a - 1.0) * np.log(np.arange(1, slots + 1)) + rng.gumbel(size=(size, slots))
        drawn = np.argsort(-scores, axis=1, kind="stable")[:, :queries]  # slots in the order Zoology draws them
        positions = block + 2 * drawn
        inputs[rows, positions] = keys[:, :queries]

        targets = np.full((size, seq_len), tasks.IGNORE_INDEX, dtype=np.int64)
        targets[rows, positions] = values[:, :queries]
        mask = targets != tasks.IGNORE_INDEX
        return torch.from_numpy(inputs.astype(np.int64)), torch.from_numpy(targets), torch.from_numpy(mask)
