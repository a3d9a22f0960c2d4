"""Learned linear token mixing (the "Linear" baseline of FNet, Lee-Thorp et al., arXiv 2105.03824):
out = W_n X W_d, with W_n (seq_len × seq_len) and W_d (dim × dim) learned, no bias.

`causal=True`: W_n is lower-triangular (its entries above the diagonal are masked to zero in forward,
so they get no gradient either), token t mixes tokens 0…t; row t starts as N(0, 1/(t+1)) so that every
output keeps the input's variance.
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

    causal_form = True

    def __init__(self, seq_len, dim, causal=False):
        super().__init__(seq_len, dim)
        self.causal = bool(causal)
        # N(0, 1/k) entries keep the output's variance equal to the input's (each product sums k terms);
        # causally, row t sums t + 1 terms
        terms = torch.arange(1, seq_len + 1)[:, None] if self.causal else seq_len
        self.seq_weight = nn.Parameter(torch.randn(seq_len, seq_len) / torch.sqrt(torch.as_tensor(terms)))
        self.dim_weight = nn.Parameter(torch.randn(dim, dim) / math.sqrt(dim))

    @classmethod
    def param_count(cls, seq_len, dim, **options):
        return seq_len ** 2 + dim ** 2

    @classmethod
    def flops(cls, seq_len, dim, batch=1, **options):
        return batch * (_cost.matmul_flops(seq_len, dim, dim) + _cost.matmul_flops(seq_len, seq_len, dim))

    def forward(self, x):
        seq_weight = self.seq_weight.tril() if self.causal else self.seq_weight
        return torch.matmul(seq_weight, x @ self.dim_weight)
