"""2-D Hartley token mixing, a real-valued alternative to FNet's Fourier mixing (Lee-Thorp et al.,
arXiv 2105.03824; the transform: R. N. Bracewell, "The Hartley Transform", 1986):
out = Re(F_n X F_d) − Im(F_n X F_d), the cas kernel of the 2-D DFT, cas(2π(jk/n + ml/d)) — not the
separable product of two 1-D Hartley matrices.

Computed like `fft`: one rfft2, then the Hermitian mirror. For a kept column the output is Re − Im;
for a mirrored one it is Re − Im of conj(Z) at the mirror point, i.e. Re + Im there. Multiplying the
half spectrum by (1 + i) gives exactly the pair (Re − Im, Re + Im) in one pass, and the mirror gather
picks component 0 or 1.
"""

from __future__ import annotations

import mixers
from mixers import _cost
from mixers.fft import FourierMixer


@mixers.register("hartley")
class HartleyMixer(FourierMixer):
    """Re(F_n X F_d) − Im(F_n X F_d) via rfft2 and the Hermitian mirror; no parameters."""

    no_causal_form = ("hartley mixes every position with every other (a Hartley transform over the sequence); "
                      "it has no causal form")

    rotation = 1 + 1j
    mirror_part = 1

    @classmethod
    def flops(cls, seq_len, dim, batch=1, **options):
        # the rfft2, then a complex multiply by (1 + i): 2 FLOPs per kept complex value
        return round(batch * (_cost.rfft2_flops(seq_len, dim) + 2 * seq_len * (dim // 2 + 1)))
