"""GFNet's global filter layer (Rao et al., "Global Filter Networks for Image Classification", arXiv
2107.00645) over (tokens, channels): out = irfft2(K ⊙ rfft2(X)), both transforms orthonormal
(norm="ortho", as GFNet's GlobalFilter), with K a learned complex filter of shape (n, d//2 + 1).

GFNet filters an image's two spatial axes per channel; a sequence has one, so here the 2-D transform
runs over (seq_len, dim), the axes FNet mixes. irfft2 with s=(n, d) reads the half spectrum as
Hermitian: the imaginary parts of the product in the columns l = 0 (and l = d/2 for even d) count
only through their Hermitian-symmetric part, exactly as in GFNet. The filter is stored as real
pairs (n, d//2 + 1, 2), initialised randn·0.02 like GFNet's. Half precision computes in float32, as
GFNet's code does (`x.to(torch.float32)`): cuFFT has no bfloat16.
"""

from __future__ import annotations

import torch
from torch import nn

import mixers
from mixers import _cost


@mixers.register("gfnet")
class GlobalFilter(mixers.TokenMixer):
    """irfft2(K ⊙ rfft2(X)), orthonormal, with a learned complex filter K of shape (n, d//2+1)."""

    constraints = "half precision computes in fp32"
    no_causal_form = ("gfnet's global filter is a circular convolution over the whole sequence (by FFT), "
                      "so every position sees every other; it has no causal form")

    def __init__(self, seq_len, dim):
        super().__init__(seq_len, dim)
        self.complex_weight = nn.Parameter(torch.randn(seq_len, dim // 2 + 1, 2) * 0.02)

    @classmethod
    def compute_dtype(cls, dtype, device="cpu", *, seq_len=None, dim=None, **options):
        return torch.float32 if dtype in mixers.HALF_DTYPES else dtype

    @classmethod
    def param_count(cls, seq_len, dim, **options):
        return 2 * seq_len * (dim // 2 + 1)

    @classmethod
    def flops(cls, seq_len, dim, batch=1, **options):
        # rfft2, a complex multiply (6 FLOPs) per kept frequency, and irfft2 (the same cost as rfft2)
        return round(batch * (2 * _cost.rfft2_flops(seq_len, dim) + 6 * seq_len * (dim // 2 + 1)))

    def forward(self, x):
        seq_len, dim = x.shape[-2:]
        compute = self.compute_dtype(x.dtype, x.device)
        spectrum = torch.fft.rfft2(x.to(compute), norm="ortho")
        filtered = spectrum * torch.view_as_complex(self.complex_weight.to(compute))
        return torch.fft.irfft2(filtered, s=(seq_len, dim), norm="ortho").to(x.dtype)
