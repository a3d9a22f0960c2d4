"""Linear attention (Katharopoulos et al., "Transformers are RNNs: Fast Autoregressive Transformers with
Linear Attention", arXiv 2006.16236, eq. 6): per head, out_h = φ(Q_h)(φ(K_h)ᵀV_h) / (φ(Q_h)(φ(K_h)ᵀ1))
with φ(x) = elu(x) + 1, then the output projection; the fused QKV and output projections and the
head layout are `attention`'s (`mixers/attention.py`), head size 64 by default (`head_dim=`).

Non-causal by default (an encoder's), so φ(K)ᵀV (h_d × h_d per head) is summed over the whole sequence
once: O(n·d·h_d) instead of attention's O(n²·d). φ(K) is divided by n before both sums, which leaves the
ratio unchanged but keeps the sums of n positive terms within float16's range at long lengths.

`causal=True` (the paper's eq. 9, a decoder's): token t sums over s ≤ t only, the prefix sums
S_t = Σ_{s≤t} φ(K_s)ᵀV_s and z_t = Σ_{s≤t} φ(K_s). They are computed chunk by chunk (chunks of
L = min(64, n) tokens, as chunked linear-attention kernels do), never storing S_t for every t: inside a
chunk the masked scores tril(φ(Q)φ(K)ᵀ) (L × L), from the chunks before it the carried S and z.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

import mixers
from mixers import _cost
from mixers.attention import Attention


CHUNK_LEN = 64  # the causal form's chunk length (at most)


def feature_map(x):
    """φ(x) = elu(x) + 1, positive everywhere."""
    return F.elu(x) + 1


def exclusive_cumsum(x, dim):
    """Σ of the entries before each along `dim` (zero for the first), without subtracting."""
    total = x.cumsum(dim)
    return torch.cat([torch.zeros_like(total.narrow(dim, 0, 1)), total.narrow(dim, 0, x.shape[dim] - 1)], dim)


def causal_linear_attention(q, k, v, chunk_len):
    """Σ_{s≤t} (q_t·k_s) v_s / Σ_{s≤t} q_t·k_s, chunk by chunk; q, k (after φ) and v are (…, n, h_d)."""
    seq_len = q.shape[-2]
    chunks = -(-seq_len // chunk_len)
    pad = chunks * chunk_len - seq_len
    # padding at the end changes no earlier token, and its outputs are dropped; padded queries of ones keep
    # their normaliser positive, so the dropped outputs' zero gradients are not 0/0
    q, k, v = ((F.pad(t, (0, 0, 0, pad), value=fill) if pad else t).unflatten(-2, (chunks, chunk_len))
               for t, fill in ((q, 1.0), (k, 0.0), (v, 0.0)))
    scores = (q @ k.transpose(-2, -1)).tril()  # (…, chunks, L, L): s ≤ t inside the chunk
    state = exclusive_cumsum(k.transpose(-2, -1) @ v, dim=-3)  # (…, chunks, h_d, h_d): the chunks before
    key_sum = exclusive_cumsum(k.sum(dim=-2), dim=-2).unsqueeze(-1)  # (…, chunks, h_d, 1)
    numerator = scores @ v + q @ state
    normaliser = scores.sum(dim=-1, keepdim=True) + q @ key_sum
    return (numerator / normaliser).flatten(-3, -2)[..., :seq_len, :]


@mixers.register("linear-attention")
class LinearAttention(Attention):
    """Multi-head linear attention φ(Q)(φ(K)ᵀV) / (φ(Q)φ(K)ᵀ1), φ = elu + 1, with attention's projections."""

    @classmethod
    def flops(cls, seq_len, dim, batch=1, head_dim=64, causal=False, **options):
        if causal:
            return batch * (cls.causal_flops(seq_len, dim, head_dim) + cls.elementwise_flops(seq_len, dim))
        return batch * (cls.matmul_flops(seq_len, dim, head_dim) + cls.elementwise_flops(seq_len, dim))

    @classmethod
    def causal_flops(cls, seq_len, dim, head_dim=64):
        """The causal form's products and sums per sample (besides `elementwise_flops`), chunks padded to L."""
        heads, chunk = dim // head_dim, min(CHUNK_LEN, seq_len)
        padded = -(-seq_len // chunk) * chunk
        projections = _cost.matmul_flops(seq_len, dim, 3 * dim) + _cost.matmul_flops(seq_len, dim, dim)
        # per head: inside chunks φ(Q)φ(K)ᵀ and its product with V (2·L·h_d each per token), the scores' row
        # sums (L); per chunk φ(K)ᵀV (2·h_d² per token), carried: φ(Q)·S (2·h_d²) and φ(Q)·z (2·h_d); the
        # prefix sums over chunks (h_d² + h_d per chunk), and the two adds of numerator and normaliser (h_d + 1)
        per_token = 4 * chunk * head_dim + chunk + 4 * head_dim * head_dim + 2 * head_dim + head_dim + 1
        per_chunk = head_dim * head_dim + head_dim
        return projections + heads * (padded * per_token + padded // chunk * per_chunk)

    @classmethod
    def matmul_flops(cls, seq_len, dim, head_dim=64):
        """The projections, and per head φ(K)ᵀV, φ(Q)·(φ(K)ᵀV) and the normaliser φ(Q)·Σφ(K) (a matvec)."""
        heads = dim // head_dim
        projections = _cost.matmul_flops(seq_len, dim, 3 * dim) + _cost.matmul_flops(seq_len, dim, dim)
        per_head = (2 * _cost.matmul_flops(seq_len, head_dim, head_dim)
                    + _cost.matmul_flops(seq_len, head_dim, 1))
        return projections + heads * per_head

    @classmethod
    def elementwise_flops(cls, seq_len, dim):
        # bias adds 4·n·d; φ on Q and K (elu's exp and subtract, the +1: 3 each); K/n; Σ_n φ(K); the divide
        return seq_len * dim * (4 + 2 * 3 + 1 + 1 + 1)

    def attend(self, q, k, v):
        """φ(q)(φ(k)ᵀv) / (φ(q)·Σ_n φ(k)) per head; q, k, v are (…, heads, n, head_dim)."""
        q, k = feature_map(q), feature_map(k) * (1 / k.shape[-2])
        if self.causal:
            return causal_linear_attention(q, k, v, min(CHUNK_LEN, k.shape[-2]))
        kv = k.transpose(-2, -1) @ v  # (…, heads, head_dim, head_dim)
        normaliser = q @ k.sum(dim=-2).unsqueeze(-1)  # (…, heads, n, 1)
        return (q @ kv) / normaliser
