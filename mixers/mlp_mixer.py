"""MLP-Mixer's token-mixing MLP (Tolstikhin et al., "MLP-Mixer: An all-MLP Architecture for
Vision", arXiv 2105.01601): per channel c, out[:, c] = W_2·GELU(W_1·X[:, c] + b_1) + b_2, with
W_1 (e·n × n), W_2 (n × e·n) and biases shared across channels; expansion e = 2 by default.

Computed as timm's Mixer does: each layer is one matrix product over the transposed input (every
sample's channels folded into the rows, X[b]ᵀ W_1ᵀ), with its bias added in the same call, so the
backward computes each weight's gradient as one product too, not one per sample summed (which an
expanded weight, W_1 broadcast over the batch, costs: batch × the weight in memory). GELU is the
exact (erf) form, as in PyTorch's nn.GELU and timm's Mixer.

`causal=True`: hidden unit j belongs to token p(j) = ⌊j·n/(e·n)⌋ and reads tokens 0…p(j) (W_1 masked),
and output token t reads the hidden units of tokens 0…t (W_2 masked): the masks of MADE (Germain et al.,
arXiv 1502.03509), lower-triangular for e = 1; they are applied to the weights in forward, so the masked
weights get no gradient. Token t's output then depends on tokens 0…t only.
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

    causal_form = True

    def __init__(self, seq_len, dim, expansion=2, causal=False):
        super().__init__(seq_len, dim)
        self.expansion = expansion
        self.causal = bool(causal)
        hidden = hidden_size(seq_len, expansion)
        # nn.Linear over the sequence axis: applied to the transposed input
        self.fc1 = nn.Linear(seq_len, hidden)
        self.fc2 = nn.Linear(hidden, seq_len)

    def extra_repr(self):
        return f"{super().extra_repr()}, expansion={self.expansion}, causal={self.causal}"

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
        # (…, d, n) rows of tokens: Linear(n → e·n) → GELU → Linear(e·n → n), then back to (…, n, d)
        weight1, weight2 = self.fc1.weight, self.fc2.weight
        if self.causal:
            mask1, mask2 = causal_masks(self.seq_len, weight1.shape[0], weight1.device)
            weight1, weight2 = weight1 * mask1, weight2 * mask2
        hidden = F.gelu(F.linear(x.transpose(-1, -2), weight1, self.fc1.bias))
        return F.linear(hidden, weight2, self.fc2.bias).transpose(-1, -2)


def causal_masks(seq_len: int, hidden: int, device) -> tuple[torch.Tensor, torch.Tensor]:
    """Boolean masks of W_1 (hidden × n: unit j reads token s ≤ p(j)) and W_2 (n × hidden: token t reads p(j) ≤ t)."""
    owner = torch.arange(hidden, device=device) * seq_len // hidden  # p(j)
    tokens = torch.arange(seq_len, device=device)
    return tokens <= owner[:, None], owner <= tokens[:, None]
