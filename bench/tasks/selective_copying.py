"""MAD's selective copying (Poli et al. 2024, "Mechanistic Design and Scaling of Hybrid Architectures",
arXiv 2403.17844; after Gu & Dao's Mamba task): tokens scattered among blanks, then a copy token;
after it, write the tokens out in order.

Follows mad-lab's `generate_selective_copying_instance` (athms/mad-lab, `mad/data/instances.py`) with
MAD's benchmark settings (`configs/tasks/selective-copying.yml`: vocab_size 16, seq_len 256,
num_tokens_to_copy 16). Ids [0, vocab_size − 2) are data, vocab_size − 2 the blank, vocab_size − 1
the copy token. k = num_tokens_to_copy data tokens are drawn uniformly with replacement; the
seq_len − 2k − 1 blanks each go, independently and uniformly, into one of the k gaps just before a
data token (`np.insert` at an index in [0, k)), so the first position may be blank and the last
data token always comes right before the copy token. Then the copy token, then k blanks.

Scored (mask), exactly as MAD: the last k positions (the blanks after the copy token), whose
targets are the data tokens in order; MAD trains and tests on these targets alike. MAD uses its
LanguageModel (causal) here and does not shift these targets: the output at the j-th blank after
the copy token is the j-th data token.

Where we differ: mad-lab draws the blanks' places from NumPy's global generator (not the instance's
`rng`); here every draw comes from the batch seed. The gap counts are drawn as one multinomial per
example, which has the same distribution as k independent uniform gap choices.

`baseline` = 1/(vocab_size − 2): a uniform guess among the data ids (they are uniform, so no guess
does better without copying).
"""

from __future__ import annotations

import numpy as np
import torch

from bench import tasks


@tasks.register("selective-copying")
class SelectiveCopying(tasks.Task):
    """Per position, causal: after the copy token, emit the non-blank tokens in order."""

    per_position = True
    causal = True
    default_seq_len = 256
    defaults = {"vocab_size": 16, "num_tokens_to_copy": 16}

    @classmethod
    def check(cls, seq_len, options):
        copies = options["num_tokens_to_copy"]
        reason = (tasks.check_int("vocab_size", options["vocab_size"], 4)
                  or tasks.check_int("num_tokens_to_copy", copies, 1))
        if reason:
            return reason
        if seq_len <= 2 * copies + 1:
            return (f"seq_len={seq_len} is too short to copy {copies} tokens "
                    f"(allowed: seq_len > 2*num_tokens_to_copy + 1 = {2 * copies + 1}, as in MAD)")
        return ""

    def __init__(self, seq_len=None, **options):
        super().__init__(seq_len, **options)
        vocab_size = self.options["vocab_size"]
        self.vocab = [f"t{i}" for i in range(vocab_size - 2)] + ["<blank>", "<copy>"]
        self.num_classes = vocab_size
        self.baseline = 1.0 / (vocab_size - 2)

    def generate(self, size, seed):
        vocab_size, copies = self.options["vocab_size"], self.options["num_tokens_to_copy"]
        blank, copy_token = vocab_size - 2, vocab_size - 1
        blanks = self.seq_len - 2 * copies - 1
        rng = np.random.default_rng(seed)
        rows = np.arange(size)[:, None]

        data = rng.integers(0, vocab_size - 2, size=(size, copies))
        before = rng.multinomial(blanks, np.full(copies, 1.0 / copies), size=size)  # blanks before data token j
        positions = np.cumsum(before, axis=1) + np.arange(copies)
        inputs = np.full((size, self.seq_len), blank, dtype=np.int64)
        inputs[rows, positions] = data
        inputs[:, copies + blanks] = copy_token

        targets = np.full((size, self.seq_len), tasks.IGNORE_INDEX, dtype=np.int64)
        targets[:, self.seq_len - copies:] = data
        mask = targets != tasks.IGNORE_INDEX
        return torch.from_numpy(inputs), torch.from_numpy(targets), torch.from_numpy(mask)
