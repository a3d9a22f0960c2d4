"""Hadamard token mixing, a parameter-free mixer in the style of FNet (Lee-Thorp et al., arXiv
2105.03824) with the Fourier matrices replaced by Sylvester's Hadamard matrices:
out = H_n X H_d, H_k the Sylvester-ordered Hadamard matrix scaled by 1/√k (orthonormal).

A fast Walsh–Hadamard transform by Kronecker factors: Sylvester's H_{ab} = H_a ⊗ H_b, so an axis of
length 2^m viewed as (a, b, …) is transformed by one small dense (orthonormal) Hadamard product per
factor. Each pass over memory is then a matmul (tensor cores on GPUs) instead of one radix-2
butterfly level.
"""

from __future__ import annotations

import math

import torch

import mixers
from mixers import _cache, _spectral

# Largest factor 2^7. On CPU (2 cores, float32, batch 4, dim 512) factors of 2^5 to 2^7 are within
# noise of each other and 2-4x faster than radix-2 butterflies (a memory pass per level); 2^4 adds
# passes, 2^8 adds FLOPs (2·f per element per factor).
MAX_FACTOR_LOG2 = 7


def factors(length: int) -> list[int]:
    """Split a power of two into the fewest near-equal power-of-two factors ≤ 2^MAX_FACTOR_LOG2."""
    levels = length.bit_length() - 1
    if levels == 0:
        return []
    count = math.ceil(levels / MAX_FACTOR_LOG2)
    sizes = [levels // count + (i < levels % count) for i in range(count)]
    return [2 ** size for size in sizes]


@_cache.tensor_cache
def hadamard_matrix(length):
    """Sylvester-ordered H_length / √length (symmetric, orthonormal)."""
    matrix = torch.ones(1, 1, dtype=torch.float64)
    while matrix.shape[0] < length:
        matrix = torch.cat([torch.cat([matrix, matrix], 1), torch.cat([matrix, -matrix], 1)], 0)
    return matrix / math.sqrt(length)


@mixers.register("hadamard")
class HadamardMixer(mixers.TokenMixer):
    """H_n X H_d (orthonormal Sylvester Hadamard) by Kronecker-factored products; no parameters."""

    no_causal_form = ("hadamard mixes every position with every other (H_n over the sequence); "
                      "it has no causal form")

    constraints = "seq_len and dim powers of two"

    @classmethod
    def check(cls, seq_len, dim, dtype, device, **options):
        bad = [f"{name}={value}" for name, value in (("seq_len", seq_len), ("dim", dim))
               if not _spectral.is_pow2(int(value))]
        if bad:
            return f"hadamard needs seq_len and dim to be powers of two, got {', '.join(bad)}"
        return None

    @classmethod
    def flops(cls, seq_len, dim, batch=1, **options):
        # one (f×f) product per factor f: 2·f FLOPs per element
        return 2 * batch * seq_len * dim * sum(factors(seq_len) + factors(dim))

    def forward(self, x):
        *batch, seq_len, dim = x.shape
        # The (n, d) slice as (n_1, …, n_r, d_1, …, d_s); factor i is mixed by viewing the data as
        # (outer, f_i, inner) and multiplying by H_{f_i} on the left — or on the right when innermost.
        sizes = factors(seq_len) + factors(dim)
        outer, inner = math.prod(batch), seq_len * dim
        y = x
        for size in sizes:
            inner //= size
            matrix = hadamard_matrix(size, dtype=x.dtype, device=x.device)
            if inner == 1:
                y = y.reshape(-1, size) @ matrix  # symmetric: right-multiplying mixes the last axis
            else:
                y = torch.matmul(matrix, y.reshape(outer, size, inner))
            outer *= size
        return y.reshape(x.shape) if sizes else x.clone()
