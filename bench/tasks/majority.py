"""Majority: the most frequent of k symbols in the sequence, label = argmaxₛ #{i : xᵢ = s}.

A global aggregation task: the answer is a function of the token counts alone, which any mixer that
sums over positions sees (FNet's FFT at frequency zero, mean pooling), so a fixed global mixer
should do about as well as attention here; it is the control beside mqar and listops, which need
lookup by content and nesting.

Generation: tokens uniform over the k symbols; the winner is drawn uniformly among the symbols
with the highest count; while the winner leads the runner-up (drawn uniformly among the tied) by
fewer than `margin`, one of the runner-up's tokens, at a uniformly drawn position, becomes the
winner. Each step widens the lead by 1 or 2, so at most `margin` steps, and the maximum is unique.
Every step treats the symbols alike, so the label is exactly uniform over the k symbols:
`baseline` = 1/k is both chance and the majority-class share. A batch of 64 takes about 0.3 ms at
64 tokens and 0.8 ms at 1024 (2-core AMD EPYC, median of 20).
"""

from __future__ import annotations

import numpy as np
import torch

from bench import tasks


@tasks.register("majority")
class Majority(tasks.Task):
    """Sequence: which of num_symbols symbols occurs most often (by at least `margin`)."""

    per_position = False
    default_seq_len = 64
    defaults = {"num_symbols": 8, "margin": 1}

    @classmethod
    def check(cls, seq_len, options):
        return (tasks.check_int("num_symbols", options["num_symbols"], 2)
                or tasks.check_int("margin", options["margin"], 1, seq_len))

    def __init__(self, seq_len=None, **options):
        super().__init__(seq_len, **options)
        symbols = self.options["num_symbols"]
        self.vocab = [f"s{symbol}" for symbol in range(symbols)]
        self.num_classes = symbols
        self.baseline = 1.0 / symbols

    def generate(self, size, seed):
        symbols, margin = self.options["num_symbols"], self.options["margin"]
        rng = np.random.default_rng(seed)
        inputs = rng.integers(0, symbols, size=(size, self.seq_len))
        offsets = symbols * np.arange(size)[:, None]
        counts = np.bincount((inputs + offsets).ravel(), minlength=size * symbols).reshape(size, symbols)
        # noise in [0, 0.5) breaks ties uniformly and never reorders different counts
        winner = np.argmax(counts + 0.5 * rng.random((size, symbols)), axis=1)
        rows = np.arange(size)
        while True:
            others = counts.astype(np.float64)
            others[rows, winner] = -np.inf
            lead = counts[rows, winner] - others.max(axis=1)
            short = np.flatnonzero(lead < margin)
            if short.size == 0:
                break
            runner_up = np.argmax(others[short] + 0.5 * rng.random((short.size, symbols)), axis=1)
            held = inputs[short] == runner_up[:, None]  # the runner-up holds >= 1 token while it is short
            position = np.argmax(np.where(held, rng.random(held.shape), -1.0), axis=1)
            inputs[short, position] = winner[short]
            counts[short, runner_up] -= 1
            counts[short, winner[short]] += 1
        return torch.from_numpy(inputs.astype(np.int64)), torch.from_numpy(winner.astype(np.int64)), None
