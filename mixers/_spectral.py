"""Helpers shared by the transforms (FFT, DFT, DCT, Hadamard): exact DFT angles, the half-precision
upcast rule of FFTs, the Hermitian mirror that turns a half spectrum into a full real output, index
gathers, and the custom backward of linear maps with a known adjoint.

The FLOP conventions live in `_cost.py`, the cache of constant tables in `_cache.py`.
"""

from __future__ import annotations

import math

import torch

import mixers
from mixers import _cache


def is_pow2(k: int) -> bool:
    return k >= 1 and k & (k - 1) == 0


def index_dtype(source_numel: int) -> torch.dtype:
    """int32 indices where they reach (half the memory and traffic of int64)."""
    return torch.int32 if source_numel < 2 ** 31 else torch.int64


def angles(rows, cols, period: int) -> torch.Tensor:
    """2π·(j·l mod period)/period for j in `rows`, l in `cols` (ints mean arange), in float64.

    The integer reduction keeps angles exact at large sizes, where j·l·2π/period computed in
    floating point would lose digits.
    """
    j = torch.arange(rows) if isinstance(rows, int) else rows
    l = torch.arange(cols) if isinstance(cols, int) else cols
    return (j[:, None] * l[None, :] % period).to(torch.float64) * (2 * math.pi / period)


# --- half precision -----------------------------------------------------------------------------


def fft_compute_dtype(dtype: torch.dtype, device, sizes) -> torch.dtype:
    """The dtype an FFT of `sizes` runs in for input `dtype`.

    cuFFT has no bfloat16 and does float16 only for powers of two; CPU FFTs have neither. Unknown
    sizes (None) count as not powers of two: the answer states an upcast that may happen rather
    than hide one.
    """
    if dtype not in mixers.HALF_DTYPES:
        return dtype
    native = (dtype == torch.float16 and torch.device(device).type == "cuda"
              and all(size is not None and is_pow2(int(size)) for size in sizes))
    return dtype if native else torch.float32


# --- the Hermitian mirror -----------------------------------------------------------------------

@_cache.tensor_cache
def _mirror_index(seq_len: int, dim: int, mirror_part: int) -> torch.Tensor:
    """Where each output element of a (seq_len, dim) real result lies in view_as_real(half spectrum)."""
    half = dim // 2 + 1
    k = torch.arange(seq_len)[:, None]
    l = torch.arange(dim)[None, :]
    kept = l < half
    # Real input: Z[k, l] = conj(Z[-k mod n, d - l]), so columns past the half come from the mirror.
    src_row = torch.where(kept, k, (-k) % seq_len)
    src_col = torch.where(kept, l, dim - l)
    part = torch.where(kept, 0, mirror_part)
    return ((src_row * half + src_col) * 2 + part).reshape(-1)


def mirror_fill(pairs: torch.Tensor, dim: int, mirror_part: int) -> torch.Tensor:
    """Full (…, seq_len, dim) real output from the half spectrum's (…, seq_len, dim//2+1, 2) pairs.

    Columns up to dim//2 take component 0 of their own pair; the others take component
    `mirror_part` of the pair at (-k mod seq_len, dim - l). One gather, written contiguously.
    """
    seq_len, half = pairs.shape[-3], pairs.shape[-2]
    assert half == dim // 2 + 1, (half, dim)
    index = _mirror_index(seq_len, dim, mirror_part, dtype=index_dtype(seq_len * half * 2), device=pairs.device)
    return gather(pairs, 3, index, (seq_len, dim))


def gather(source: torch.Tensor, source_dims: int, index: torch.Tensor, shape) -> torch.Tensor:
    """Elements of `source`'s last `source_dims` dims, flattened, picked by `index` into `shape`."""
    lead = source.shape[:-source_dims]
    # 2-D index_select along dim 1 is ~10x faster on CPU than along the last dim of a 3-D tensor.
    flat = source.reshape(-1, math.prod(source.shape[-source_dims:]))
    return flat.index_select(1, index).view(*lead, *shape)


def select_rows(x: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """x.index_select(-2, index) on a 3-D view: whole contiguous rows are copied."""
    return x.reshape(-1, x.shape[-2], x.shape[-1]).index_select(1, index).view(*x.shape[:-2], len(index), x.shape[-1])


# --- backward of linear transforms with a known adjoint -----------------------------------------

class _WithAdjoint(torch.autograd.Function):
    """y = T(x) for a real linear map T whose adjoint Tᵀ is given: the input gradient is Tᵀ(grad)."""

    @staticmethod
    def forward(ctx, x, transform, adjoint):
        ctx.adjoint = adjoint
        return transform(x)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad):
        return ctx.adjoint(grad.contiguous()), None, None


def with_adjoint(transform, adjoint, x: torch.Tensor) -> torch.Tensor:
    """`transform(x)`, with a backward that applies `adjoint` (the transposed linear map) to the gradient.

    For an FFT-based map this replaces autograd's replay of every FFT, gather (whose backward is a
    scatter) and complex elementwise op by one call of a map of about the same cost as the forward.
    """
    if not (torch.is_grad_enabled() and x.requires_grad):
        return transform(x)
    return _WithAdjoint.apply(x, transform, adjoint)


def self_adjoint(transform, x: torch.Tensor) -> torch.Tensor:
    """`transform(x)`, with a backward that applies `transform` once more.

    Re(F_n X F_d), its Hartley sibling and H_n X H_d are their own adjoints (F, C, S and H are
    symmetric matrices), so the gradient costs one forward instead of autograd's replay of every
    FFT, mirror gather and scatter (on CPU that replay made a training step ~18x a forward).
    """
    return with_adjoint(transform, transform, x)
