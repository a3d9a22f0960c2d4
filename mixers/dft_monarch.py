"""FNet's Fourier mixing (Lee-Thorp et al., arXiv 2105.03824), out = Re(F_n X F_d), as a two-level
Cooley–Tukey factorisation of each DFT into small dense DFT matrices applied as real matrix
products, with an elementwise twiddle multiply between them: the Monarch decomposition that
FlashFFTConv (Fu et al., "FlashFFTConv: Efficient Convolutions for Long Sequences with Tensor
Cores", arXiv 2311.05908) uses to put FFTs on tensor cores.

For a length N = N1·N2, index j = j1·N2 + j2 on the way in and k = k1 + N1·k2 on the way out:
    (F_N x)[k1 + N1·k2] = Σ_j2 W_N2^{j2·k2} · W_N^{j2·k1} · Σ_j1 W_N1^{j1·k1} x[j1·N2 + j2],
with W_N = e^{-2πi/N}: a batch of N1-point DFTs (a matrix product over j1), the twiddles
W_N^{j2·k1}, then N2-point DFTs (a matrix product over j2). Complex values are real pairs, so every
stage is a real matmul:
    d axis: [C; −S]_{d1} on the real input · twiddle · [[C, −S], [S, C]]_{d2} on [Re | Im];
    n axis: [C; S]_{n1} on both parts (recombined into F_{n1}'s product inside the twiddle step)
            · twiddle · [C | S]_{n2}, which yields only the real part the output needs.
The outputs come out in (k2, k1) order; one permuting copy at the end puts them in order. The map
is its own adjoint, so the backward is one more forward (`_spectral.self_adjoint`), not autograd's
replay of every stack, slice and copy.

Factors: the smaller one s is the largest divisor of N with s ≤ √N, the larger N/s; the dearer
stage of each axis gets s (FLOPs n·d·(4·d1 + 8·d2 + 8·n1 + 4·n2 + 14) with d2, n1 the small factors).
A length whose larger factor exceeds 4·√N is refused (primes from 17 on, 2·p for a prime p > 32, …):
without a balanced factorisation a dense stage does most of a dense DFT's work, which `dft-matrix`
already measures; a Monarch row for it would mislead.

Precision: every stage runs in the input's dtype. On CUDA, bfloat16 and float16 therefore run on
tensor cores (fp32 accumulation inside each matmul, rounded to half precision between the four
matmuls and two twiddle steps); float32 follows `torch.backends.cuda.matmul.allow_tf32`. Measured
on CPU against numpy's FFT at n×d = 384×192, 4096×128 and 1024×768, the relative error is 6·10⁻³
in bfloat16 (dft-matrix: 3.4·10⁻³), 7·10⁻⁴ in float16 and 2–3·10⁻⁷ in float32. The small
matrices are built in float64 and cached per (size, dtype, device).
"""

from __future__ import annotations

import math

import torch

import mixers
from mixers import _cache, _spectral

# A factorisation is refused when its larger factor exceeds BALANCE·√N (N = 2·p, or a prime).
BALANCE = 4


def split(length: int) -> tuple[int, int]:
    """(small, large) with small·large = length and small the largest divisor ≤ √length."""
    small = next(s for s in range(math.isqrt(length), 0, -1) if length % s == 0)
    return small, length // small


def refusal(length: int, axis: str) -> str:
    """Why `length` has no balanced two-level factorisation, or "" if it has one."""
    small, large = split(length)
    if large * large > BALANCE * BALANCE * length:
        return (f"dft-monarch needs {axis} = N1·N2 with the larger factor ≤ {BALANCE}·√N, got {axis}={length} = "
                f"{small}·{large} ({large} > {BALANCE * math.sqrt(length):.1f}): no balanced factorisation, so a "
                f"dense {large}-point stage would do most of a dense DFT's work (dft-matrix measures that)")
    return ""


def _cos_sin(size):
    angle = _spectral.angles(size, size, size)
    return torch.cos(angle), torch.sin(angle)


@_cache.tensor_cache
def stacked_cos_minus_sin(size):
    """[C; −S] (2·size × size): F_size applied to a real vector, real part above imaginary."""
    cos, sin = _cos_sin(size)
    return torch.cat([cos, -sin], dim=0)


@_cache.tensor_cache
def complex_block(size):
    """[[C, −S], [S, C]] (2·size × 2·size): [Re | Im] @ it is F_size applied to a complex row vector."""
    cos, sin = _cos_sin(size)
    return torch.cat([torch.cat([cos, -sin], dim=1), torch.cat([sin, cos], dim=1)], dim=0)


@_cache.tensor_cache
def stacked_cos_sin(size):
    """[C; S] (2·size × size)."""
    cos, sin = _cos_sin(size)
    return torch.cat([cos, sin], dim=0)


@_cache.tensor_cache
def cos_sin_row(size):
    """[C | S] (size × 2·size): the real part of F_size applied to a complex column, [Re; Im]."""
    cos, sin = _cos_sin(size)
    return torch.cat([cos, sin], dim=1)


@_cache.tensor_cache
def twiddles(rows, cols, length):
    """W_length^{r·c} as (2, rows, cols): real part, imaginary part."""
    angle = _spectral.angles(rows, cols, length)
    return torch.stack([torch.cos(angle), -torch.sin(angle)])


@mixers.register("dft-monarch")
class DFTMonarchMixer(mixers.TokenMixer):
    """Re(F_n X F_d) by two-level Cooley–Tukey: small DFT matmuls with twiddles between; no parameters."""

    constraints = "each length N1·N2 with both factors ≥ √N/4 (no primes ≥ 17)"
    no_causal_form = ("dft-monarch mixes every position with every other (a DFT over the sequence); "
                      "it has no causal form")

    @classmethod
    def check(cls, seq_len, dim, dtype, device, **options):
        return refusal(int(seq_len), "seq_len") or refusal(int(dim), "dim") or None

    @staticmethod
    def factors(seq_len, dim):
        """(n1, n2, d1, d2): n1 and d2 the small factors, on the dearer stage of each axis."""
        n1, n2 = split(seq_len)
        d2, d1 = split(dim)
        return n1, n2, d1, d2

    @classmethod
    def flops(cls, seq_len, dim, batch=1, **options):
        return batch * (cls.matmul_flops(seq_len, dim) + cls.elementwise_flops(seq_len, dim))

    @classmethod
    def matmul_flops(cls, seq_len, dim):
        """The four stages' matrix products."""
        n1, n2, d1, d2 = cls.factors(seq_len, dim)
        return seq_len * dim * (4 * d1 + 8 * d2 + 8 * n1 + 4 * n2)

    @classmethod
    def elementwise_flops(cls, seq_len, dim):
        # a complex twiddle multiply (6) per value on each axis, and the n axis's recombination (2)
        return seq_len * dim * (6 + 2 + 6)

    @classmethod
    def bytes_min(cls, seq_len, dim, batch=1, dtype=torch.float32, **options):
        # the small matrices and twiddles are read on every call, like parameters
        n1, n2, d1, d2 = cls.factors(seq_len, dim)
        constants = 2 * d1 * d1 + 4 * d2 * d2 + 2 * dim + 2 * n1 * n1 + 2 * seq_len + 2 * n2 * n2
        itemsize = torch.empty((), dtype=dtype).element_size()
        return (2 * batch * seq_len * dim + constants) * itemsize

    def forward(self, x):
        # Re(F_n X F_d) is its own adjoint (F_n, F_d symmetric): the backward is one more forward
        return _spectral.self_adjoint(self._transform, x)

    def _transform(self, x):
        seq_len, dim = x.shape[-2:]
        n1, n2, d1, d2 = self.factors(seq_len, dim)
        consts = {"dtype": x.dtype, "device": x.device}
        rows = x.reshape(-1, d1, d2)  # (b·n, l1, l2)
        batch = rows.shape[0] // seq_len

        # d axis: F_{d1} over l1 (real input) -> (b·n, re/im, m1, l2)
        a = torch.matmul(stacked_cos_minus_sin(d1, **consts), rows).view(-1, 2, d1, d2)
        tw_re, tw_im = twiddles(d1, d2, dim, **consts)
        a_re, a_im = a[:, 0], a[:, 1]
        twiddled = torch.stack([a_re * tw_re - a_im * tw_im, a_re * tw_im + a_im * tw_re], dim=-2)
        # F_{d2} over l2 on [Re | Im] -> (b, j, m1, re/im, m2)
        z = (twiddled.view(-1, 2 * d2) @ complex_block(d2, **consts)).view(batch, n1, -1)

        # n axis: [C; S]_{n1} over j1 -> (b, C/S, k1, j2, m1, re/im, m2)
        p = torch.matmul(stacked_cos_sin(n1, **consts), z).view(batch, 2, n1, n2, d1, 2, d2)
        # F_{n1} z = (C z_re + S z_im) + i (C z_im − S z_re)
        re = p[:, 0, ..., 0, :] + p[:, 1, ..., 1, :]
        im = p[:, 0, ..., 1, :] - p[:, 1, ..., 0, :]
        tw_re, tw_im = twiddles(n1, n2, seq_len, **consts)[..., None, None].unbind(0)
        twiddled = torch.stack([re * tw_re - im * tw_im, re * tw_im + im * tw_re], dim=2)  # (b, k1, re/im, j2, m1, m2)
        # Re F_{n2} over j2 -> (b, k1, k2, m1, m2)
        y = torch.matmul(cos_sin_row(n2, **consts), twiddled.view(batch, n1, 2 * n2, dim))
        # out[k1 + n1·k2, m1 + d1·m2]
        return y.view(batch, n1, n2, d1, d2).permute(0, 2, 1, 4, 3).reshape(x.shape)
