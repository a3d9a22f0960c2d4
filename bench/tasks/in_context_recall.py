"""MAD's in-context recall (Poli et al. 2024, "Mechanistic Design and Scaling of Hybrid Architectures",
arXiv 2403.17844): a stream of key-value pairs under a random per-example map; each key seen before
asks for its value again.

Follows mad-lab's `generate_in_context_recall_instance` (athms/mad-lab, `mad/data/instances.py`) with
MAD's benchmark settings (`configs/tasks/in-context-recall.yml`: vocab_size 16, seq_len 128,
multi_query): with S = vocab_size − noise_vocab_size, keys are ids [0, S//2) and values [S//2, S);
the stream is seq_len/2 pairs; each of the first seq_len/2 − 1 is, with probability frac_noise, two
noise tokens uniform over [S, vocab_size), and otherwise a key uniform over the keys followed by its
value, drawn uniformly over the values when the key first appears (keys share values: the map is
not one-to-one); one pair is never noise. The last pair is the query: a key drawn uniformly among the
distinct keys presented, then its value.

Scored (mask), as MAD's test targets: next-token targets at every key position whose key appeared
in an earlier pair (the target is the key's value, the next token), the final query among them;
everything else is IGNORE_INDEX. MAD trains the recall tasks on every next token (its training
targets are the shifted inputs) and scores test accuracy at these positions; here loss and accuracy
both use these positions.

Where we differ: MAD feeds the model the stream minus its last token (127 tokens at seq_len 128);
here the inputs are the whole stream, so the last position holds the query's value and is not
scored. A causal model's outputs at the first seq_len − 1 positions are the same either way. MAD
draws its "never noise" pair from seq_len/2 slots, one of which is the query, so 1 in 64 examples
has no such guarantee; here it is one of the seq_len/2 − 1 random pairs. Draws are vectorised over
the batch, so the same seed does not give MAD's example (same distribution, other random stream).

`baseline` = 1/(number of values): a model that knows a value comes next but not which. Guessing
the value seen most often so far in the example does better (about 0.3 at the defaults), so
accuracy near that is not recall yet.
"""

from __future__ import annotations

import numpy as np
import torch

from bench import tasks
from bench.tasks._mad import check_noise


@tasks.register("in-context-recall")
class InContextRecall(tasks.Task):
    """Per position, causal: at a key seen before, predict the value that followed it."""

    per_position = True
    causal = True
    default_seq_len = 128
    defaults = {"vocab_size": 16, "noise_vocab_size": 0, "frac_noise": 0.0}

    @classmethod
    def check(cls, seq_len, options):
        reason = (tasks.check_int("vocab_size", options["vocab_size"], 2)
                  or tasks.check_int("noise_vocab_size", options["noise_vocab_size"], 0))
        if reason:
            return reason
        reason = check_noise(options, options["vocab_size"] - options["noise_vocab_size"])
        if reason:
            return reason
        if seq_len % 2 or seq_len < 4:
            return (f"seq_len={seq_len} does not hold whole key-value pairs "
                    f"(allowed: an even number >= 4: at least one pair, then the query)")
        return ""

    def __init__(self, seq_len=None, **options):
        super().__init__(seq_len, **options)
        vocab_size, noise_vocab = self.options["vocab_size"], self.options["noise_vocab_size"]
        symbols = vocab_size - noise_vocab
        keys = symbols // 2
        self.vocab = ([f"k{i}" for i in range(keys)] + [f"v{i}" for i in range(keys, symbols)]
                      + [f"n{i}" for i in range(symbols, vocab_size)])
        self.num_classes = vocab_size
        self.baseline = 1.0 / (symbols - keys)

    def generate(self, size, seed):
        vocab_size, noise_vocab = self.options["vocab_size"], self.options["noise_vocab_size"]
        frac_noise = self.options["frac_noise"]
        symbols = vocab_size - noise_vocab
        num_keys, body = symbols // 2, self.seq_len // 2 - 1  # body: the random pairs before the query
        rng = np.random.default_rng(seed)
        rows = np.arange(size)

        keys = rng.integers(0, num_keys, size=(size, body))
        value_of = rng.integers(num_keys, symbols, size=(size, num_keys))  # each key's value, drawn once
        values = value_of[rows[:, None], keys]
        noise = np.zeros((size, body), dtype=bool)
        pairs = np.stack([keys, values], axis=2)
        if frac_noise > 0:
            noise = rng.random((size, body)) < frac_noise
            noise[rows, rng.integers(0, body, size=size)] = False  # at least one key-value pair
            noise_tokens = rng.integers(symbols, vocab_size, size=(size, body, 2))
            pairs = np.where(noise[:, :, None], noise_tokens, pairs)

        shown = (keys[:, :, None] == np.arange(num_keys)) & ~noise[:, :, None]  # (size, body, keys)
        earlier = (np.cumsum(shown, axis=1) - shown) > 0
        repeated = np.take_along_axis(earlier, keys[:, :, None], axis=2)[:, :, 0] & ~noise
        presented = shown.any(axis=1)
        probe = np.argmax(np.where(presented, rng.random((size, num_keys)), -1.0), axis=1)

        inputs = np.concatenate([pairs.reshape(size, 2 * body), probe[:, None], value_of[rows, probe][:, None]], axis=1)
        targets = np.full((size, self.seq_len), tasks.IGNORE_INDEX, dtype=np.int64)
        key_targets = targets[:, 0:2 * body:2]  # a view: key positions of the random pairs
        key_targets[repeated] = values[repeated]
        targets[:, 2 * body] = value_of[rows, probe]
        mask = targets != tasks.IGNORE_INDEX
        return torch.from_numpy(inputs.astype(np.int64)), torch.from_numpy(targets), torch.from_numpy(mask)
