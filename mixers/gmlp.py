"""gMLP's spatial gating unit (Liu et al., "Pay Attention to MLPs", arXiv 2105.08050):
[U | V] = X split into channel halves, out = (U ⊙ (W·LayerNorm(V) + b)) W_p + b_p, with W (n × n)
mixing tokens, b (n) a bias per token, and W_p (d/2 × d) a projection back to the width d.

In gMLP the unit sits between two channel projections (d → d_ffn, then d_ffn/2 → d); a token mixer
here must map width d to d, so the unit takes the input's halves directly and the projection
d/2 → d (with bias) stands for gMLP's second channel projection. U is the first half, V the second,
as in the paper's pseudo-code (`u, v = split(x)`; `v = norm(v)`; `v = proj(v, axis=1)`; `u * v`).
W starts near zero (uniform ±10⁻³/n, as lucidrains' g-mlp-pytorch) and b at ones, so the unit starts
close to U ⊙ 1, as the paper prescribes for stable training; LayerNorm and the projection use
PyTorch's defaults.

`causal=True` (gMLP's language models): W is lower-triangular (masked with tril in forward, so its
entries above the diagonal get no gradient), and token t's gate reads tokens 0…t.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

import mixers
from mixers import _cost


@mixers.register("gmlp")
class SpatialGatingUnit(mixers.TokenMixer):
    """gMLP's spatial gating U ⊙ (W·LN(V) + b) over channel halves, projected d/2 → d."""

    constraints = "dim even"
    causal_form = True

    def __init__(self, seq_len, dim, causal=False):
        super().__init__(seq_len, dim)
        self.causal = bool(causal)
        half = dim // 2
        self.norm = nn.LayerNorm(half)
        self.seq_weight = nn.Parameter(torch.empty(seq_len, seq_len).uniform_(-1e-3 / seq_len, 1e-3 / seq_len))
        self.seq_bias = nn.Parameter(torch.ones(seq_len))
        self.proj = nn.Linear(half, dim)

    @classmethod
    def check(cls, seq_len, dim, dtype, device, **options):
        if dim % 2:
            return f"gmlp splits the channels into two halves, so dim must be even, got dim={dim}"
        return None

    @classmethod
    def param_count(cls, seq_len, dim, **options):
        half = dim // 2
        return seq_len * seq_len + seq_len + 2 * half + half * dim + dim

    @classmethod
    def flops(cls, seq_len, dim, batch=1, **options):
        return batch * (cls.matmul_flops(seq_len, dim) + cls.elementwise_flops(seq_len, dim))

    @classmethod
    def matmul_flops(cls, seq_len, dim):
        """W (n × n) over d/2 channels, and the projection d/2 → d."""
        half = dim // 2
        return _cost.matmul_flops(seq_len, seq_len, half) + _cost.matmul_flops(seq_len, half, dim)

    @classmethod
    def elementwise_flops(cls, seq_len, dim):
        # on the n·d/2 gate values: LayerNorm (mean, subtract, square, sum, scale, affine ×2: 7), the
        # token bias, the product with U; then the projection's bias on n·d outputs
        return seq_len * (dim // 2) * (7 + 1 + 1) + seq_len * dim

    def forward(self, x):
        u, v = x.chunk(2, dim=-1)
        # W·LN(V) + b as one product over every sample's channels (LN(V)ᵀ Wᵀ + b), not one per sample
        seq_weight = self.seq_weight.tril() if self.causal else self.seq_weight
        gate = F.linear(self.norm(v).transpose(-1, -2), seq_weight, self.seq_bias).transpose(-1, -2)
        return self.proj(u * gate)
