"""MAD's fuzzy in-context recall (Poli et al. 2024, "Mechanistic Design and Scaling of Hybrid
Architectures", arXiv 2403.17844): in-context recall where keys and values are runs of 1 to 3 tokens.

Follows mad-lab's `generate_fuzzy_in_context_recall_instance` (athms/mad-lab, `mad/data/instances.py`)
with MAD's benchmark settings (`configs/tasks/fuzzy-in-context-recall.yml`: vocab_size 16, seq_len
128, k_motif_size 3, v_motif_size 3, multi_query). Id vocab_size − 1 is padding; with
S = vocab_size − 1 − noise_vocab_size, key tokens are ids [0, S//2), value tokens [S//2, S) and noise
[S, vocab_size − 1). A key is a run of 1..k_motif_size distinct key tokens, a value a run of
1..v_motif_size distinct value tokens (size uniform, then the run uniform among the ordered runs of
that size). First a probe pair (key, value) is drawn and a place for it, uniform in
[0, seq_len − 2·(its length)). Then pairs are appended while the stream is shorter than
seq_len − (probe length) − (k_motif_size + v_motif_size): the probe pair once the stream reaches its
place; otherwise, with probability frac_noise, a run of noise tokens as long as a pair; otherwise a
key and its value (the probe's value if the key is the probe's key; the value it had if seen before;
else a new value). The probe pair ends the stream as the query, and the stream is left-padded to
seq_len + 1 tokens; inputs are its first seq_len, as in MAD.

Scored (mask), as MAD's test targets: next-token targets whose target is a value token of a key
seen in an earlier pair (the final query among them): at the key's last token the value's first
token, then the value's next tokens. MAD trains on every next token and scores test accuracy here;
here loss and accuracy both use these positions. MAD's test instances give every key
k_motif_size tokens while its training instances draw key sizes: `fixed_key_size=True` gives the
test form; the default (False) is the training form.

Where we differ: MAD's loop can end before the stream reaches the probe's place, leaving the final
query's key never presented (an unanswerable query, in about 2% of MAD's test instances at the
defaults); here the probe pair goes in at the latest step that surely still fits, so every scored
target is answerable. Draws come from one generator per batch, pre-drawn per step, so a seed does
not give MAD's example.

`baseline` = 1/(number of value tokens): a uniform guess among the value ids (1/8 at the defaults).
"""

from __future__ import annotations

import numpy as np
import torch

from bench import tasks
from bench.tasks._mad import check_noise
from bench.tasks.mqar import random_prefix


@tasks.register("fuzzy-recall")
class FuzzyRecall(tasks.Task):
    """Per position, causal: after a multi-token key seen before, predict its multi-token value."""

    per_position = True
    causal = True
    default_seq_len = 128
    defaults = {"vocab_size": 16, "k_motif_size": 3, "v_motif_size": 3, "noise_vocab_size": 0, "frac_noise": 0.0,
                "fixed_key_size": False}

    @classmethod
    def check(cls, seq_len, options):
        key_size, value_size = options["k_motif_size"], options["v_motif_size"]
        reason = (tasks.check_int("vocab_size", options["vocab_size"], 3)
                  or tasks.check_int("noise_vocab_size", options["noise_vocab_size"], 0)
                  or tasks.check_int("k_motif_size", key_size, 1) or tasks.check_int("v_motif_size", value_size, 1))
        if reason:
            return reason
        symbols = options["vocab_size"] - 1 - options["noise_vocab_size"]
        reason = check_noise(options, symbols)
        if reason:
            return reason
        if not isinstance(options["fixed_key_size"], bool):
            return f"fixed_key_size must be True or False, got {options['fixed_key_size']!r}"
        if key_size > symbols // 2 or value_size > symbols - symbols // 2:
            return (f"k_motif_size={key_size} or v_motif_size={value_size} is more than the {symbols // 2} key and "
                    f"{symbols - symbols // 2} value tokens (a key or value repeats no token)")
        if seq_len <= 2 * (key_size + value_size):
            return (f"seq_len={seq_len} is too short for the probe pair's place "
                    f"(allowed: seq_len > 2*(k_motif_size + v_motif_size) = {2 * (key_size + value_size)})")
        return ""

    def __init__(self, seq_len=None, **options):
        super().__init__(seq_len, **options)
        vocab_size = self.options["vocab_size"]
        symbols = vocab_size - 1 - self.options["noise_vocab_size"]
        keys = symbols // 2
        self.vocab = ([f"k{i}" for i in range(keys)] + [f"v{i}" for i in range(keys, symbols)]
                      + [f"n{i}" for i in range(symbols, vocab_size - 1)] + ["<pad>"])
        self.num_classes = vocab_size
        self.baseline = 1.0 / (symbols - keys)

    def generate(self, size, seed):
        vocab_size, max_key, max_value = (self.options[key] for key in ("vocab_size", "k_motif_size", "v_motif_size"))
        noise_vocab, frac_noise = self.options["noise_vocab_size"], self.options["frac_noise"]
        symbols = vocab_size - 1 - noise_vocab
        num_keys, seq_len = symbols // 2, self.seq_len
        steps = seq_len // 2 + 1  # every step adds >= 2 tokens
        rng = np.random.default_rng(seed)

        def key_sizes(shape):
            return np.full(shape, max_key) if self.options["fixed_key_size"] else rng.integers(1, max_key + 1, shape)

        # the probe pair
        probe_key_size, probe_value_size = key_sizes(size), rng.integers(1, max_value + 1, size)
        probe_keys = random_prefix(rng, size, num_keys, max_key)
        probe_values = num_keys + random_prefix(rng, size, symbols - num_keys, max_value)
        probe_length = probe_key_size + probe_value_size
        probe_place = (rng.random(size) * (seq_len - 2 * probe_length)).astype(np.int64)
        # every step's draws, used or not
        step_key_size, step_value_size = key_sizes((size, steps)), rng.integers(1, max_value + 1, (size, steps))
        step_keys = random_prefix(rng, size * steps, num_keys, max_key).reshape(size, steps, max_key)
        step_values = num_keys + random_prefix(rng, size * steps, symbols - num_keys, max_value).reshape(
            size, steps, max_value)
        is_noise = rng.random((size, steps)) < frac_noise
        noise = rng.integers(symbols, symbols + max(noise_vocab, 1), (size, steps, max_key + max_value))

        inputs = np.full((size, seq_len), vocab_size - 1, dtype=np.int64)
        targets = np.full((size, seq_len), tasks.IGNORE_INDEX, dtype=np.int64)
        for row in range(size):
            probe = (tuple(probe_keys[row, :probe_key_size[row]].tolist()),
                     tuple(probe_values[row, :probe_value_size[row]].tolist()))
            limit = seq_len - probe_length[row] - (max_key + max_value)
            stream, scored, value_of, presented, added = [], [], {}, set(), False
            key_sizes_row, value_sizes_row = step_key_size[row].tolist(), step_value_size[row].tolist()
            keys_row, values_row, noise_row = step_keys[row].tolist(), step_values[row].tolist(), noise[row].tolist()
            for step in range(steps):
                if len(stream) >= limit:
                    break
                key_size, value_size = key_sizes_row[step], value_sizes_row[step]
                if not added and (len(stream) >= probe_place[row] or len(stream) + max_key + max_value >= limit):
                    (key, value), added, repeat = probe, True, False  # MAD never scores the probe pair itself
                elif is_noise[row, step]:
                    stream += noise_row[step][:key_size + value_size]
                    continue
                else:
                    key = tuple(keys_row[step][:key_size])
                    if key == probe[0]:
                        value, added = probe[1], True
                    else:
                        value = value_of.setdefault(key, tuple(values_row[step][:value_size]))
                    repeat = key in presented
                if repeat:
                    scored += range(len(stream) + len(key), len(stream) + len(key) + len(value))
                presented.add(key)
                stream += key + value
            scored += range(len(stream) + len(probe[0]), len(stream) + len(probe[0]) + len(probe[1]))
            stream += probe[0] + probe[1]
            pad = seq_len + 1 - len(stream)
            inputs[row, pad:] = stream[:-1]
            scored = np.asarray(scored, dtype=np.int64)
            targets[row, pad + scored - 1] = np.asarray(stream)[scored]
        mask = targets != tasks.IGNORE_INDEX
        return torch.from_numpy(inputs), torch.from_numpy(targets), torch.from_numpy(mask)
