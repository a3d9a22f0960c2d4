"""2-D DCT token mixing, a real-valued orthonormal alternative to FNet's Fourier mixing (Lee-Thorp
et al., arXiv 2105.03824; the DCT-II: Ahmed, Natarajan and Rao, 1974): out = C_n X C_dᵀ, the
orthonormal 2-D DCT-II (scipy.fft.dctn(x, type=2, norm="ortho")).

Two paths (option `method`: "auto", "fft" or "matmul"):
- "matmul": products with the cached orthonormal DCT matrices, 2·n·d·(n + d) FLOPs in two BLAS calls;
- "fft": Makhoul's 2-D algorithm (J. Makhoul, "A fast cosine transform in one and two
  dimensions", IEEE TASSP 1980). Reorder each axis as v = [x_even, reversed x_odd] (one gather),
  V = rfft2(v), then with w_N = e^{-iπ/2N} and V⁻ the half spectrum at rows -k1 mod n,
      R = conj(g·w_d^{k2})·conj(V) + (g·w_d^{-k2})·conj(V⁻),   g = ½·s_{k1}·s_{k2}·w_n^{k1}
  (s the orthonormal scales): out[k1, k2] = Re R[k1, k2] for k2 ≤ d/2 and out[k1, d-k2] = Im R[k1, k2]
  beyond, written by one gather. O(n·d·log(n·d)).
The backward applies the adjoint, which for this orthonormal map is its inverse, the orthonormal
2-D DCT-III C_nᵀ G C_d (scipy.fft.idctn(g, type=2, norm="ortho")), on the same path: the transposed
matrices (which autograd's own replay of the matmul path already is), or on the FFT path Makhoul's
inverse through one irfft2 (`idct2_fft`, a hand-written backward): autograd's replay of the FFT path
(its gathers' scatters and complex ops) made a training step ~14x a forward on CPU, now ~2-3x.
"auto" takes the matmul while n + d ≤ MATMUL_MAX_SUM, a crossover measured on CPU
(scripts/time_fft_cpu.py --dct), and the FFT path above it.
"""

from __future__ import annotations

import functools
import math

import torch

import mixers
from mixers import _cache, _cost, _spectral

METHODS = ("auto", "fft", "matmul")
# The matmul costs 2·(n + d) FLOPs per element, the FFT path a few memory passes and log terms, so
# the crossover is a line in n + d. Measured on CPU (2 cores, float32, MKL); the same on every device
# so that flops() and compute_dtype() know the path from the sizes alone. On CUDA it is unmeasured
# (matmuls are relatively cheaper there, so the crossover is likely higher).
MATMUL_MAX_SUM = 192


@_cache.tensor_cache
def dct_matrix(length):
    """Orthonormal DCT-II matrix C[k, j] = s_k·cos(π(2j+1)k / 2N), s_0 = √(1/N), s_k = √(2/N)."""
    angle = _spectral.angles(length, 2 * torch.arange(length) + 1, 4 * length)
    return _scales(length)[:, None] * torch.cos(angle)


def _scales(length, count=None):
    scale = torch.full((count or length,), math.sqrt(2 / length), dtype=torch.float64)
    scale[0] = math.sqrt(1 / length)
    return scale


def _makhoul_permutation(length):
    """p_N = [0, 2, 4, …, …, 5, 3, 1]: v[j] = x[p_N(j)]."""
    j = torch.arange(length)
    return torch.where(j < (length + 1) // 2, 2 * j, 2 * (length - 1 - j) + 1)


@_cache.tensor_cache
def makhoul_order(seq_len, dim):
    """Flat index of v[j1, j2] = x[p_n(j1), p_d(j2)], p_N = [0, 2, 4, …, …, 5, 3, 1]."""
    order = _makhoul_permutation
    return (order(seq_len)[:, None] * dim + order(dim)[None, :]).reshape(-1)


@_cache.tensor_cache
def twiddles(seq_len, dim):
    """conj(g·w_d^{k2}) and g·w_d^{-k2} over the half spectrum, stacked: (2, n, d//2+1)."""
    half = dim // 2 + 1
    k1 = torch.arange(seq_len, dtype=torch.float64)[:, None]
    k2 = torch.arange(half, dtype=torch.float64)[None, :]
    g = 0.5 * _scales(seq_len)[:, None] * _scales(dim, half)[None, :] * torch.exp(-1j * math.pi * k1 / (2 * seq_len))
    w_d = torch.exp(-1j * math.pi * k2 / (2 * dim))
    return torch.stack([(g * w_d).conj(), g / w_d])


@_cache.tensor_cache
def negated_rows(seq_len):
    return -torch.arange(seq_len) % seq_len


@_cache.tensor_cache
def unfold_index(dim):
    """Where out[:, l] lies in a row of view_as_real(R): Re R[l] for l ≤ d/2, Im R[d - l] beyond."""
    l = torch.arange(dim)
    kept = l <= dim // 2
    return torch.where(kept, 2 * l, 2 * (dim - l) + 1)


def dct2_fft(x: torch.Tensor) -> torch.Tensor:
    """Orthonormal 2-D DCT-II over the last two axes through one rfft2 (Makhoul)."""
    seq_len, dim = x.shape[-2:]
    device = x.device
    index_dtype = _spectral.index_dtype(seq_len * (dim + 2))
    v = _spectral.gather(x, 2, makhoul_order(seq_len, dim, dtype=index_dtype, device=device), (seq_len, dim))
    spectrum = torch.fft.rfft2(v)
    mirrored = _spectral.select_rows(spectrum, negated_rows(seq_len, dtype=index_dtype, device=device))
    twiddle = twiddles(seq_len, dim, dtype=spectrum.dtype, device=device)
    r = torch.addcmul(twiddle[0] * spectrum.conj(), twiddle[1], mirrored.conj())
    return _spectral.gather(torch.view_as_real(r), 2, unfold_index(dim, dtype=index_dtype, device=device), (dim,))


@_cache.tensor_cache
def fold_index(dim):
    """Where H[k2] = G[k2] + i·G[d - k2] takes its (re, im) pairs in a row of G, for k2 ≤ d/2.

    G[d] is zero; at k2 = 0 the pair repeats G[0] instead and `inverse_twiddles` divide by (1 + i).
    """
    k2 = torch.arange(dim // 2 + 1)
    return torch.stack([k2, torch.where(k2 > 0, dim - k2, 0)], dim=-1).reshape(-1)


@_cache.tensor_cache
def inverse_twiddles(seq_len, dim):
    """t and i·t over the half spectrum, stacked: (2, n, d//2+1), t = w_n^{k1}·w_d^{k2} / (s_{k1}·s_{k2}·n·d).

    Column 0 is divided by (1 + i) (there H = (1 + i)·G[0]; without it only the imaginary part of the
    DC column, which c2r transforms happen to discard, would be off); row 0 of i·t is zero (G[n] = 0). The
    inverse FFT's 1/(n·d) is folded in here (irfft2 then runs with norm="forward", ~10% faster on CPU).
    """
    half = dim // 2 + 1
    k1 = torch.arange(seq_len, dtype=torch.float64)[:, None]
    k2 = torch.arange(half, dtype=torch.float64)[None, :]
    t = torch.exp(-1j * math.pi * (k1 / (2 * seq_len) + k2 / (2 * dim)))
    t = t / (_scales(seq_len)[:, None] * _scales(dim, half)[None, :] * (seq_len * dim))
    t[:, 0] /= 1 + 1j
    it = 1j * t
    it[0] = 0
    return torch.stack([t, it])


@_cache.tensor_cache
def makhoul_inverse_order(seq_len, dim):
    """Flat index of x[i1, i2] in irfft2(conj V) = v[-j1, -j2]: at (-p_n⁻¹(i1) mod n, -p_d⁻¹(i2) mod d)."""
    def order(length):
        return -torch.argsort(_makhoul_permutation(length)) % length
    return (order(seq_len)[:, None] * dim + order(dim)[None, :]).reshape(-1)


def idct2_fft(g: torch.Tensor) -> torch.Tensor:
    """Orthonormal 2-D DCT-III over the last two axes (the inverse and adjoint of `dct2_fft`), one irfft2.

    Makhoul's inverse: the reordered v has the spectrum V[k] = w_N^{-k}·(X[k] - i·X[N-k]) per axis
    (X the unnormalised DCT-II, X[N] = 0), which in 2-D gives, with H[k1, k2] = G[k1, k2] + i·G[k1, d-k2],
        conj V[k1, k2] = t·(H[k1, k2] + i·H[n-k1, k2]),   t = w_n^{k1}·w_d^{k2} / (s_{k1}·s_{k2})
    (s the orthonormal scales; s_{N-k} = s_k for 0 < k < N, so one scale serves all four terms).
    irfft2 of conj V is v reversed on both axes, which the final un-permuting gather absorbs.
    """
    seq_len, dim = g.shape[-2:]
    device = g.device
    index_dtype = _spectral.index_dtype(seq_len * (dim + 2))
    half = _spectral.gather(g, 1, fold_index(dim, dtype=index_dtype, device=device), (dim // 2 + 1, 2))
    h = torch.view_as_complex(half)
    mirrored = _spectral.select_rows(h, negated_rows(seq_len, dtype=index_dtype, device=device))
    twiddle = inverse_twiddles(seq_len, dim, dtype=h.dtype, device=device)
    spectrum = torch.addcmul(twiddle[0] * h, twiddle[1], mirrored)
    v = torch.fft.irfft2(spectrum, s=(seq_len, dim), norm="forward")
    return _spectral.gather(v, 2, makhoul_inverse_order(seq_len, dim, dtype=index_dtype, device=device), (seq_len, dim))


def dct2_matmul(x: torch.Tensor) -> torch.Tensor:
    """C_n X C_dᵀ with the cached matrices, in the input's dtype (half precision included)."""
    seq_len, dim = x.shape[-2:]
    mixed = x @ dct_matrix(dim, dtype=x.dtype, device=x.device).mT
    return torch.matmul(dct_matrix(seq_len, dtype=x.dtype, device=x.device), mixed)


def idct2_matmul(g: torch.Tensor) -> torch.Tensor:
    """C_nᵀ G C_d, the inverse and adjoint of `dct2_matmul` (in the order autograd's replay took)."""
    seq_len, dim = g.shape[-2:]
    mixed = torch.matmul(dct_matrix(seq_len, dtype=g.dtype, device=g.device).mT, g)
    return mixed @ dct_matrix(dim, dtype=g.dtype, device=g.device)


def _in_compute_dtype(transform):
    """`transform` run in the FFT path's compute dtype (`DCTMixer.compute_dtype`), returned in the input's."""
    @functools.wraps(transform)
    def run(x):
        seq_len, dim = x.shape[-2:]
        compute = DCTMixer.compute_dtype(x.dtype, x.device, seq_len=seq_len, dim=dim, method="fft")
        return transform(x.to(compute)).to(x.dtype)
    return run


# path -> (transform, adjoint); the matmuls run in the input's dtype, half precision included
PATHS = {"matmul": (dct2_matmul, idct2_matmul),
         "fft": (_in_compute_dtype(dct2_fft), _in_compute_dtype(idct2_fft))}


def dct2(x: torch.Tensor, method: str = "auto") -> torch.Tensor:
    """Orthonormal 2-D DCT-II over the last two axes on `method`'s path, in `compute_dtype`'s precision."""
    return PATHS[resolve(*x.shape[-2:], method)][0](x)


def idct2(g: torch.Tensor, method: str = "auto") -> torch.Tensor:
    """Orthonormal 2-D DCT-III (inverse and adjoint of `dct2`) over the last two axes on `method`'s path."""
    return PATHS[resolve(*g.shape[-2:], method)][1](g)


def resolve(seq_len: int, dim: int, method: str = "auto") -> str:
    """The path ("fft" or "matmul") that `method` takes at this size."""
    if method != "auto":
        return method
    return "matmul" if seq_len + dim <= MATMUL_MAX_SUM else "fft"


@mixers.register("dct")
class DCTMixer(mixers.TokenMixer):
    """C_n X C_dᵀ, the orthonormal 2-D DCT-II, by matmul or by FFT; no parameters."""

    no_causal_form = "dct mixes every position with every other (a DCT over the sequence); it has no causal form"

    def __init__(self, seq_len, dim, method="auto"):
        super().__init__(seq_len, dim)
        self.method = method

    def extra_repr(self):
        return f"{super().extra_repr()}, method={self.method!r}"

    @classmethod
    def check(cls, seq_len, dim, dtype, device, method="auto", **options):
        if method not in METHODS:
            return f"dct method must be one of {', '.join(METHODS)}, got {method!r}"
        return None

    @classmethod
    def compute_dtype(cls, dtype, device="cpu", *, seq_len=None, dim=None, method="auto", **options):
        sizes_known = seq_len is not None and dim is not None
        if method == "matmul" or (sizes_known and resolve(seq_len, dim, method) == "matmul"):
            return dtype
        # The FFT path upcasts half precision even where cuFFT could run float16: its twiddle step
        # needs complex32 add/addcmul, which PyTorch's CUDA kernels do not all provide.
        return torch.float32 if dtype in mixers.HALF_DTYPES else dtype

    @classmethod
    def flops(cls, seq_len, dim, batch=1, method="auto", **options):
        if resolve(seq_len, dim, method) == "matmul":
            return batch * (_cost.matmul_flops(seq_len, dim, dim) + _cost.matmul_flops(seq_len, seq_len, dim))
        # rfft2, then per kept complex value two complex multiplies and an add (6 + 6 + 2)
        return round(batch * (_cost.rfft2_flops(seq_len, dim) + 14 * seq_len * (dim // 2 + 1)))

    @classmethod
    def bytes_min(cls, seq_len, dim, batch=1, dtype=torch.float32, method="auto", **options):
        itemsize = torch.empty((), dtype=dtype).element_size()
        matrices = seq_len ** 2 + dim ** 2 if resolve(seq_len, dim, method) == "matmul" else 0
        return (2 * batch * seq_len * dim + matrices) * itemsize

    def forward(self, x):
        path = resolve(*x.shape[-2:], self.method)
        if path == "matmul":
            # Autograd's replay is already the adjoint C_nᵀ G C_d, two matmuls with the cached constant
            # matrices (the same as idct2_matmul); a Python autograd.Function would only add its
            # overhead (~20 µs a step on CPU: 10-20% at 16x64, 2-4% at 256-1024 x 128).
            return dct2_matmul(x)
        transform, adjoint = PATHS[path]
        return _spectral.with_adjoint(transform, adjoint, x)
