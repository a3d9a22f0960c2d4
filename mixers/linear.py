"""Learned linear token mixing (the "Linear" baseline of FNet, Lee-Thorp et al., arXiv 2105.03824):
out = W_n X W_d, with W_n (seq_len × seq_len) and W_d (dim × dim) learned, no bias.
"""

from __future__ import annotations

import math

import torch
from torch import nn

import mixers
from mixers import _cost


@mixers.register("linear")
class LinearMixer(mixers.TokenMixer):
    """W_n X W_d with learned square matrices; n² + d² parameters."""

    def __init__(self, seq_len, dim):
        super().__init__(seq_len, dim)
        # N(0, 1/k) entries keep the output's variance equal to the input's (each product sums k terms).
        self.seq_weight = nn.Parameter(torch.randn(seq_len, seq_len) / math.sqrt(seq_len))
        self.dim_weight = nn.Parameter(torch.randn(dim, dim) / math.sqrt(dim))

    @classmethod
    def param_count(cls, seq_len, dim, **options):
        return seq_len ** 2 + dim ** 2

    @classmethod
    def flops(cls, seq_len, dim, batch=1, **options):
        return batch * (_cost.matmul_flops(seq_len, dim, dim) + _cost.matmul_flops(seq_len, seq_len, dim))

    def forward(self, x):
        return torch.matmul(self.seq_weight, x @ self.dim_weight)
