"""MLP-Mixer's token-mixing MLP (Tolstikhin et al., "MLP-Mixer: An all-MLP Architecture for
Vision", arXiv 2105.01601): per channel c, out[:, c] = W_2·GELU(W_1·X[:, c] + b_1) + b_2, with
W_1 (e·n × n), W_2 (n × e·n) and biases shared across channels; expansion e = 2 by default.

The weights multiply from the left over the sequence axis (W_1 @ X), so no transposed copy of the
input is made; the biases are added as columns in the same call (baddbmm). GELU is the exact (erf)
form, as in PyTorch's nn.GELU and timm's Mixer.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

import mixers
from mixers import _cost


def hidden_size(seq_len: int, expansion: float) -> int:
    return max(1, round(expansion * seq_len))


@mixers.register("mlp-mixer")
class MLPMixer(mixers.TokenMixer):
    """Token-mixing MLP Linear(n → e·n) → GELU → Linear(e·n → n), shared across channels."""

    def __init__(self, seq_len, dim, expansion=2):
        super().__init__(seq_len, dim)
        self.expansion = expansion
        hidden = hidden_size(seq_len, expansion)
        # nn.Linear's initialisation; only the layout is different (used as W @ X, not X @ Wᵀ)
        self.fc1 = nn.Linear(seq_len, hidden)
        self.fc2 = nn.Linear(hidden, seq_len)

    def extra_repr(self):
        return f"{super().extra_repr()}, expansion={self.expansion}"

    @classmethod
    def check(cls, seq_len, dim, dtype, device, expansion=2, **options):
        if not expansion > 0:
            return f"mlp-mixer needs expansion > 0, got expansion={expansion}"
        return None

    @classmethod
    def param_count(cls, seq_len, dim, expansion=2, **options):
        hidden = hidden_size(seq_len, expansion)
        return 2 * hidden * seq_len + hidden + seq_len

    @classmethod
    def flops(cls, seq_len, dim, batch=1, expansion=2, **options):
        hidden = hidden_size(seq_len, expansion)
        matmuls = _cost.matmul_flops(hidden, seq_len, dim) + _cost.matmul_flops(seq_len, hidden, dim)
        # bias adds (hidden·d + n·d) and GELU, x·½·(1 + erf(x/√2)): 5 elementwise ops per hidden value
        elementwise = hidden * dim + seq_len * dim + 5 * hidden * dim
        return batch * (matmuls + elementwise)

    def forward(self, x):
        *batch, seq_len, dim = x.shape
        x3 = x.reshape(-1, seq_len, dim)
        count = x3.shape[0]
        hidden = torch.baddbmm(self.fc1.bias[:, None], self.fc1.weight.expand(count, -1, -1), x3)
        out = torch.baddbmm(self.fc2.bias[:, None], self.fc2.weight.expand(count, -1, -1), F.gelu(hidden))
        return out.view(x.shape)
