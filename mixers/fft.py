"""FNet's Fourier token mixing (Lee-Thorp et al., "FNet: Mixing Tokens with Fourier Transforms",
arXiv 2105.03824): out = Re(F_n X F_d), the real part of the 2-D DFT over (seq_len, dim).

The input is real, so half the spectrum is redundant: one rfft2 computes the columns l ≤ d/2 and
the Hermitian mirror Z[k, l] = conj(Z[-k mod n, d - l]) fills the rest (same real part) with one
gather straight into the contiguous output. On CPU this is 2-4x faster than `fft2(x).real`
(scripts/time_fft_cpu.py). CUDA runs the same path: it also makes the fewest memory passes (half
spectrum written once, read once by the gather) — a prediction until measured on a GPU.
"""

from __future__ import annotations

import torch

import mixers
from mixers import _cost, _spectral


@mixers.register("fft")
class FourierMixer(mixers.TokenMixer):
    """Re(F_n X F_d) via rfft2 and the Hermitian mirror; no parameters."""

    no_causal_form = "fft mixes every position with every other (a DFT over the sequence); it has no causal form"

    # The half spectrum is multiplied by `rotation` (None: not at all), then the mirror gather takes
    # component 0 of a kept column's pair and component `mirror_part` of a mirrored one.
    rotation: complex | None = None
    mirror_part = 0

    @classmethod
    def compute_dtype(cls, dtype, device="cpu", *, seq_len=None, dim=None, **options):
        return _spectral.fft_compute_dtype(dtype, device, (seq_len, dim))

    @classmethod
    def flops(cls, seq_len, dim, batch=1, **options):
        return round(batch * _cost.rfft2_flops(seq_len, dim))

    def forward(self, x):
        return _spectral.self_adjoint(self._transform, x)

    def _transform(self, x):
        seq_len, dim = x.shape[-2:]
        compute = self.compute_dtype(x.dtype, x.device, seq_len=seq_len, dim=dim)
        spectrum = torch.fft.rfft2(x.to(compute))
        if self.rotation is not None:
            spectrum = spectrum * self.rotation
        return _spectral.mirror_fill(torch.view_as_real(spectrum), dim, self.mirror_part).to(x.dtype)
