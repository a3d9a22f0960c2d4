"""Multi-head self-attention (Vaswani et al., "Attention Is All You Need", arXiv 1706.03762), the
mixer FNet (arXiv 2105.03824) replaces: out = W_o·concat_h softmax(Q_h K_hᵀ/√h_d) V_h, with
[Q | K | V] = X W_qkv + b_qkv.

`attention` runs the heads through torch's scaled_dot_product_attention, so PyTorch picks its fastest
kernel (flash, memory-efficient, cuDNN or math). `attention-naive` materialises the n×n score matrix
(QKᵀ → softmax → ·V), the attention of FNet's comparison; it differs only in `attend`.
`causal=True` (a decoder's): token t attends to tokens 0…t only — SDPA's `is_causal` (its causal
kernels), and in `attention-naive` the scores above the diagonal set to −∞ before the softmax.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

import mixers
from mixers import _cost


@mixers.register("attention")
class Attention(mixers.TokenMixer):
    """Multi-head self-attention with a fused QKV projection and an output projection, via SDPA."""

    constraints = "dim divisible by head_dim (default 64)"
    causal_form = True

    def __init__(self, seq_len, dim, head_dim=64, causal=False):
        super().__init__(seq_len, dim)
        self.causal = bool(causal)
        self.head_dim = head_dim
        self.heads = dim // head_dim
        self.qkv = nn.Linear(dim, 3 * dim)
        self.out = nn.Linear(dim, dim)

    def extra_repr(self):
        return f"{super().extra_repr()}, heads={self.heads}, head_dim={self.head_dim}, causal={self.causal}"

    @classmethod
    def check(cls, seq_len, dim, dtype, device, head_dim=64, **options):
        if head_dim < 1 or dim % head_dim:
            return f"{cls.name} needs dim divisible by head_dim={head_dim}, got dim={dim}"
        return None

    @classmethod
    def param_count(cls, seq_len, dim, **options):
        return 4 * dim * dim + 4 * dim

    @classmethod
    def flops(cls, seq_len, dim, batch=1, head_dim=64, causal=False, **options):
        heads = dim // head_dim
        projections = _cost.matmul_flops(seq_len, dim, 3 * dim) + _cost.matmul_flops(seq_len, dim, dim)
        # causally, the n(n+1)/2 scores at or below the diagonal are all a causal kernel needs
        scores = seq_len * (seq_len + 1) // 2 if causal else seq_len * seq_len
        scores_and_values = 2 * heads * 2 * scores * head_dim
        # bias adds (4·n·d); softmax: max, subtract, exp, sum, divide per score (the scaling folds in)
        elementwise = 4 * seq_len * dim + 5 * heads * scores
        return batch * (projections + scores_and_values + elementwise)

    def forward(self, x):
        *batch, seq_len, dim = x.shape
        # (…, n, 3, heads, head_dim) -> three (…, heads, n, head_dim) views, no copy
        q, k, v = self.qkv(x).unflatten(-1, (3, self.heads, self.head_dim)).movedim(-3, 0).transpose(-3, -2)
        mixed = self.attend(q, k, v)
        return self.out(mixed.transpose(-3, -2).reshape(x.shape))

    def attend(self, q, k, v):
        """softmax(q kᵀ / √head_dim) v per head."""
        return F.scaled_dot_product_attention(q, k, v, is_causal=self.causal)


@mixers.register("attention-naive")
class NaiveAttention(Attention):
    """Multi-head self-attention with an explicit n×n score matrix (no fused kernel)."""

    def attend(self, q, k, v):
        scores = (q * (1 / math.sqrt(self.head_dim))) @ k.transpose(-2, -1)
        if self.causal:
            future = torch.ones(scores.shape[-2:], dtype=torch.bool, device=scores.device).triu(1)
            scores = scores.masked_fill(future, -math.inf)
        return scores.softmax(dim=-1) @ v
