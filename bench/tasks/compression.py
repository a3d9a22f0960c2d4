"""MAD's compression (Poli et al. 2024, "Mechanistic Design and Scaling of Hybrid Architectures",
arXiv 2403.17844) in its nearest causal next-token form: a random sequence ending in a compression
token, then the sequence written out again, one token per query position.

MAD's own setting (`generate_compression_instance` in athms/mad-lab `mad/data/instances.py`,
`configs/tasks/compression.yml`: vocab_size 16, seq_len 32) draws seq_len − 1 tokens uniformly from
ids [0, vocab_size − 1), appends the compression token vocab_size − 1, and trains an auto-encoder:
the mixer stack encodes the sequence, its output at the last position (the compression token) is the
only thing a small MLP decoder sees, with a position embedding, to reconstruct all seq_len tokens
(the compression token included); accuracy is over those seq_len positions. That needs a model with
a pooled bottleneck and a decoder, which a per-position task cannot ask for.

Here, causally: seq_len is twice MAD's length L = seq_len/2. The first half is MAD's instance (L − 1
uniform tokens, then the compression token); each of the L positions of the second half holds the
compression token again, and the output at its j-th position must be the j-th token of the first
half (the last one is the compression token itself, as in MAD's reconstruction). Scored (mask):
exactly those L positions, with those targets, not shifted (as MAD's copying tasks).

What differs in kind: a causal model at a query position sees the whole sequence, not only a
compressed vector, so nothing forces the sequence through one position; this measures recall by
position (copying a sequence without repeated content to key on), which is what MAD's decoder has
to do from its compressed token, and is an easier test of compression than MAD's. MAD's noise
options (unused by its settings) are left out.

`baseline` = ((L − 1)/(vocab_size − 1) + 1)/L: a uniform guess at the L − 1 data positions and the
always-known compression token at the last (0.096 at the defaults).
"""

from __future__ import annotations

import numpy as np
import torch

from bench import tasks


@tasks.register("compression")
class Compression(tasks.Task):
    """Per position, causal: after a sequence and its compression token, write the sequence out again."""

    per_position = True
    causal = True
    default_seq_len = 64
    defaults = {"vocab_size": 16}

    @classmethod
    def check(cls, seq_len, options):
        reason = tasks.check_int("vocab_size", options["vocab_size"], 3)
        if reason:
            return reason
        if seq_len % 2 or seq_len < 4:
            return (f"seq_len={seq_len} is not twice a sequence length "
                    f"(allowed: an even number >= 4: MAD's sequence of seq_len/2, then as many query positions)")
        return ""

    def __init__(self, seq_len=None, **options):
        super().__init__(seq_len, **options)
        vocab_size = self.options["vocab_size"]
        self.vocab = [f"t{i}" for i in range(vocab_size - 1)] + ["<compress>"]
        self.num_classes = vocab_size
        length = self.seq_len // 2
        self.baseline = ((length - 1) / (vocab_size - 1) + 1) / length

    def generate(self, size, seed):
        vocab_size, length = self.options["vocab_size"], self.seq_len // 2
        rng = np.random.default_rng(seed)
        inputs = np.full((size, self.seq_len), vocab_size - 1, dtype=np.int64)  # compression token throughout
        inputs[:, :length - 1] = rng.integers(0, vocab_size - 1, size=(size, length - 1))
        targets = np.full((size, self.seq_len), tasks.IGNORE_INDEX, dtype=np.int64)
        targets[:, length:] = inputs[:, :length]
        mask = targets != tasks.IGNORE_INDEX
        return torch.from_numpy(inputs), torch.from_numpy(targets), torch.from_numpy(mask)
