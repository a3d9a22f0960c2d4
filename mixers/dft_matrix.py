"""FNet's Fourier mixing as matrix products (Lee-Thorp et al., arXiv 2105.03824, who use the DFT
matrix on TPUs for short sequences): out = Re(F_n X F_d) = C_n X C_d − S_n X S_d, with C_k, S_k the
cos and sin of 2π·jl/k.

Two real matmuls, no copies: Y = X @ [C_d | S_d] is (b, n, 2d); viewed as (b, 2n, d), row 2l holds
(X C_d)[l] and row 2l+1 holds (X S_d)[l], so out = W_n @ Y with W_n (n×2n) interleaving
W_n[i, 2l] = C_n[i, l] and W_n[i, 2l+1] = −S_n[i, l].

The matrices are built in float64, cast to the input's dtype and cached per (size, dtype, device);
bfloat16 and float16 run natively on tensor cores. On CUDA, float32 runs as whatever
`torch.backends.cuda.matmul.allow_tf32` says (default False: true float32; True: TF32 inputs).
"""

from __future__ import annotations

import torch

import mixers
from mixers import _cache, _cost, _spectral


@_cache.tensor_cache
def cos_sin(dim):
    """[C_d | S_d], (d × 2d)."""
    angle = _spectral.angles(dim, dim, dim)
    return torch.cat([torch.cos(angle), torch.sin(angle)], dim=1)


@_cache.tensor_cache
def cos_minus_sin_interleaved(seq_len):
    """W_n (n × 2n): W[i, 2l] = C_n[i, l], W[i, 2l+1] = −S_n[i, l]."""
    angle = _spectral.angles(seq_len, seq_len, seq_len)
    return torch.stack([torch.cos(angle), -torch.sin(angle)], dim=-1).reshape(seq_len, 2 * seq_len)


@mixers.register("dft-matrix")
class DFTMatrixMixer(mixers.TokenMixer):
    """Re(F_n X F_d) as two real matrix products with cached DFT matrices; no parameters."""

    no_causal_form = ("dft-matrix mixes every position with every other (a DFT over the sequence); "
                      "it has no causal form")

    @classmethod
    def flops(cls, seq_len, dim, batch=1, **options):
        return batch * (_cost.matmul_flops(seq_len, dim, 2 * dim)
                        + _cost.matmul_flops(seq_len, 2 * seq_len, dim))

    @classmethod
    def bytes_min(cls, seq_len, dim, batch=1, dtype=torch.float32, **options):
        # the matrices are read on every call, like parameters
        itemsize = torch.empty((), dtype=dtype).element_size()
        return (2 * batch * seq_len * dim + 2 * dim * dim + 2 * seq_len * seq_len) * itemsize

    def forward(self, x):
        *batch, seq_len, dim = x.shape
        cs = cos_sin(dim, dtype=x.dtype, device=x.device)
        w = cos_minus_sin_interleaved(seq_len, dtype=x.dtype, device=x.device)
        y = (x @ cs).view(*batch, 2 * seq_len, dim)
        return torch.matmul(w, y)
