"""MAD's memorization (Poli et al. 2024, "Mechanistic Design and Scaling of Hybrid Architectures",
arXiv 2403.17844): one fixed key -> value map for the whole task, learned into the weights; each
example asks for the values of random keys.

Follows mad-lab's `generate_memorization_instance` and `generate_kv_map` (athms/mad-lab,
`mad/data/instances.py`) with MAD's benchmark settings (`configs/tasks/memorization.yml`: vocab_size
256, seq_len 32). Id vocab_size − 1 is the insert token; with K = (vocab_size − 1)//2, keys are ids
[0, K) and values [K, vocab_size − 1). The map pairs the keys with K distinct values, a random
one-to-one map drawn once from `map_seed` (MAD draws it from the run's seed, 12345 by default): the
same for every batch and seed of a task. An example is seq_len/2 pairs (key, insert token), each key
uniform over the K keys.

Scored (mask), exactly as MAD (train and test alike): the insert-token positions, whose target is
the key's value; MAD does not shift these targets (the output at the insert token, one step after
the key, is the value). Keys are never scored.

Where we differ: mad-lab's generator also takes noise options, which MAD's memorization settings
never use; they are left out here. MAD trains on a fixed set of 256 examples; here every batch is
new (the map is what is fixed, so the task is the same). Draws are vectorised, so a seed does not
give MAD's example, nor `map_seed` MAD's map.

`baseline` = 1/K: a uniform guess among the mapped values (1/127 at the defaults).
"""

from __future__ import annotations

import numpy as np
import torch

from bench import tasks


@tasks.register("memorization")
class Memorization(tasks.Task):
    """Per position, causal: at the insert token after a key, predict the key's value in a fixed map."""

    per_position = True
    causal = True
    default_seq_len = 32
    defaults = {"vocab_size": 256, "map_seed": 12345}

    @classmethod
    def check(cls, seq_len, options):
        reason = (tasks.check_int("vocab_size", options["vocab_size"], 3)
                  or tasks.check_int("map_seed", options["map_seed"], 0))
        if reason:
            return reason
        if seq_len % 2:
            return f"seq_len={seq_len} does not hold whole (key, insert) pairs (allowed: an even number >= 2)"
        return ""

    def __init__(self, seq_len=None, **options):
        super().__init__(seq_len, **options)
        vocab_size = self.options["vocab_size"]
        keys = (vocab_size - 1) // 2
        self.vocab = [f"k{i}" for i in range(keys)] + [f"v{i}" for i in range(keys, vocab_size - 1)] + ["<insert>"]
        self.num_classes = vocab_size
        self.baseline = 1.0 / keys
        map_rng = np.random.default_rng(self.options["map_seed"])
        self.value_of = keys + map_rng.permutation(vocab_size - 1 - keys)[:keys]  # the fixed map: key -> value

    def generate(self, size, seed):
        vocab_size = self.options["vocab_size"]
        num_keys, pairs = (vocab_size - 1) // 2, self.seq_len // 2
        rng = np.random.default_rng(seed)
        keys = rng.integers(0, num_keys, size=(size, pairs))
        inputs = np.full((size, self.seq_len), vocab_size - 1, dtype=np.int64)
        inputs[:, 0::2] = keys
        targets = np.full((size, self.seq_len), tasks.IGNORE_INDEX, dtype=np.int64)
        targets[:, 1::2] = self.value_of[keys]
        mask = targets != tasks.IGNORE_INDEX
        return torch.from_numpy(inputs), torch.from_numpy(targets), torch.from_numpy(mask)
