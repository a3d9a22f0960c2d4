"""The Hyena operator of order 2 (Poli et al., "Hyena Hierarchy: Towards Larger Convolutional Language
Models", arXiv 2302.10866; reference code HazyResearch/safari, src/models/sequence/hyena.py):
    [x0 | x1 | v] = ShortConv(X W_in + b_in),   out = (x0 ⊙ (h ∗ (x1 ⊙ v) + D ⊙ (x1 ⊙ v))) W_out + b_out,
with ShortConv a depthwise convolution of width 3 over the sequence (with bias), h a long filter per
channel (d of them) and D a learned skip per channel.

The long filter is implicit, as in safari's HyenaFilter (defaults: emb_dim 3, width 64, two inner
layers, sine frequency 1): positional features z(t) = [t, cos(ω·t'), −sin(ω·t')] (t = linspace(0, 1, n),
t' = 2π·j/n, ω = 10⁻⁴) → Linear(3, 64) → sin → [Linear(64, 64) → sin] × 2 → Linear(64, d) without
bias, where every sin(f ⊙ ·) shares one learned frequency vector f (64); the result is windowed by
exp(−t·|δ_c|), δ_c = linspace(ln 10⁻²/1.5, ln 10⁻²/0.3, d) (safari's ExponentialModulation). The
features z are fixed here (safari registers them as a parameter with learning rate 10⁻⁵).

`causal=` chooses the form:
- `causal=True`, the paper's: ShortConv uses tokens t−2…t; (h ∗ u)[t] = Σ_{s≤t} h[t−s]·u[s],
  lags 0…n−1; computed by FFT at length 2n (rfft, product, irfft, first n outputs), as safari.
- `causal=False` (default; mixbench builds encoders, which see the whole sequence): ShortConv uses
  tokens t−1, t, t+1; the filter network has 2d outputs, a forward filter h_f and a backward filter
  h_b (both windowed as above), and the convolution is non-causal over lags −(n−1)…(n−1):
      (h ∗ u)[t] = Σ_{s≤t} h_f[t−s]·u[s] + Σ_{s≥t} h_b[s−t]·u[s]   (lag 0 takes h_f[0] + h_b[0]),
  computed by FFT at length 2n with spectrum rfft(h_f) + conj(rfft(h_b)) (h_b placed at lags −m mod
  2n; |t − s| ≤ n − 1 < n so nothing wraps), the form of safari's fftconv_ref with `k_rev`.

Precision: half-precision inputs run the implicit filter and the long convolution (its FFTs) in
float32, as safari's fftconv_ref does (cuFFT has no bfloat16), and the projections and short
convolution in the input's dtype. `compute_dtype()` reports the input's dtype, the projections',
which hold most of the FLOPs (94–98% of them at d = 768 for n = 128…131072).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

import mixers
from mixers import _cache, _cost

SHORT_KERNEL = 3
EMB_DIM = 3  # safari's default: t and one cos/sin band
FILTER_INNER_LAYERS = 2


@_cache.tensor_cache
def positional_features(seq_len):
    """safari's PositionalEmbedding for emb_dim 3: (n, 3) rows [t, cos(ω·t'), −sin(ω·t')], ω = 10⁻⁴."""
    t = torch.linspace(0, 1, seq_len, dtype=torch.float64)
    angle = 1e-4 * 2 * math.pi * torch.arange(seq_len, dtype=torch.float64) / seq_len
    return torch.stack([t, torch.cos(angle), -torch.sin(angle)], dim=1)


@_cache.tensor_cache
def decay_window(seq_len, dim):
    """exp(−t·|δ_c|) as (n, d): safari's ExponentialModulation (fast 0.3, slow 1.5, target 10⁻², no shift)."""
    t = torch.linspace(0, 1, seq_len, dtype=torch.float64)[:, None]
    target = math.log(1e-2)
    deltas = torch.linspace(target / 1.5, target / 0.3, dim, dtype=torch.float64)
    return torch.exp(-t * deltas.abs())


@mixers.register("hyena")
class Hyena(mixers.TokenMixer):
    """Hyena of order 2: projections, short conv, an implicit long filter by FFT, gating; bidirectional by default."""

    constraints = "half precision: long conv in fp32"
    causal_form = True

    def __init__(self, seq_len, dim, causal=False, filter_order=64):
        super().__init__(seq_len, dim)
        self.causal = bool(causal)
        self.filter_order = filter_order
        directions = 1 if self.causal else 2
        self.in_proj = nn.Linear(dim, 3 * dim)
        self.short_conv = nn.Conv1d(3 * dim, 3 * dim, SHORT_KERNEL, groups=3 * dim)
        self.filter_layers = nn.ModuleList(
            [nn.Linear(EMB_DIM, filter_order)]
            + [nn.Linear(filter_order, filter_order) for _ in range(FILTER_INNER_LAYERS)])
        self.filter_freq = nn.Parameter(torch.ones(filter_order))  # safari's Sin(w=1), shared by every layer
        self.filter_out = nn.Linear(filter_order, directions * dim, bias=False)
        self.skip = nn.Parameter(torch.randn(dim))  # safari's HyenaFilter.bias, the D term
        self.out_proj = nn.Linear(dim, dim)

    def extra_repr(self):
        return f"{super().extra_repr()}, causal={self.causal}, filter_order={self.filter_order}"

    @classmethod
    def check(cls, seq_len, dim, dtype, device, causal=False, filter_order=64, **options):
        if not (isinstance(filter_order, int) and filter_order >= 1):
            return f"hyena needs filter_order ≥ 1 (the filter MLP's width), got {filter_order!r}"
        return None

    @classmethod
    def param_count(cls, seq_len, dim, causal=False, filter_order=64, **options):
        directions = 1 if causal else 2
        width = filter_order
        projections = 3 * dim * dim + 3 * dim + dim * dim + dim
        short_conv = 3 * dim * SHORT_KERNEL + 3 * dim
        filter_net = (EMB_DIM * width + width + FILTER_INNER_LAYERS * (width * width + width) + width
                      + width * directions * dim)
        return projections + short_conv + filter_net + dim

    @classmethod
    def flops(cls, seq_len, dim, batch=1, causal=False, filter_order=64, **options):
        n, d, width = seq_len, dim, filter_order
        directions = 1 if causal else 2
        # per sample: bias adds (3nd in, nd out), the short conv's bias (3nd), x1 ⊙ v and x0 ⊙ (…) (2nd),
        # rfft and irfft at 2n per channel, the spectral product (6 per kept frequency), the D skip (2nd)
        sample = 11 * n * d + 2 * _cost.rfft_flops(2 * n, d) + 6 * (n + 1) * d
        # once per call: the filter network's biases, f ⊙ · and sines (3 per value per layer), the
        # window's product (the window itself is cached), the filters' rffts, the two directions' sum
        once = ((1 + FILTER_INNER_LAYERS) * 3 * n * width + directions * n * d
                + _cost.rfft_flops(2 * n, directions * d) + (directions - 1) * 2 * (n + 1) * d)
        return round(cls.matmul_flops(n, d, batch, causal, width) + batch * sample + once)

    @classmethod
    def matmul_flops(cls, seq_len, dim, batch=1, causal=False, filter_order=64):
        """The projections and short conv (per sample), and the filter network's products (once per call)."""
        n, d, width = seq_len, dim, filter_order
        directions = 1 if causal else 2
        sample = (_cost.matmul_flops(n, d, 3 * d) + 2 * SHORT_KERNEL * n * 3 * d
                  + _cost.matmul_flops(n, d, d))
        filter_net = (_cost.matmul_flops(n, EMB_DIM, width)
                      + FILTER_INNER_LAYERS * _cost.matmul_flops(n, width, width)
                      + _cost.matmul_flops(n, width, directions * d))
        return batch * sample + filter_net

    def forward(self, x):
        dim = self.dim
        u = self.in_proj(x).transpose(1, 2)  # (b, 3d, n)
        u = self.short_conv(F.pad(u, (SHORT_KERNEL - 1, 0) if self.causal else (1, 1)))
        x0, x1, v = u.split(dim, dim=1)
        y = x0 * self.long_conv(x1 * v)
        return self.out_proj(y.transpose(1, 2))

    def filters(self, seq_len, dtype):
        """The implicit long filters, (directions, d, n), computed in `dtype`."""
        consts = {"dtype": dtype, "device": self.filter_freq.device}
        h = positional_features(seq_len, **consts)
        freq = self.filter_freq.to(dtype)
        for layer in self.filter_layers:
            h = torch.sin(freq * F.linear(h, layer.weight.to(dtype), layer.bias.to(dtype)))
        h = F.linear(h, self.filter_out.weight.to(dtype))  # (n, directions·d)
        h = h.view(seq_len, -1, self.dim) * decay_window(seq_len, self.dim, **consts)[:, None]
        return h.permute(1, 2, 0)

    def long_conv(self, u):
        """h ∗ u + D ⊙ u over the last axis of u (b, d, n), by FFT at length 2n."""
        seq_len = u.shape[-1]
        compute = torch.float32 if u.dtype in mixers.HALF_DTYPES else u.dtype
        filter_spectrum = torch.fft.rfft(self.filters(seq_len, compute), n=2 * seq_len)
        if not self.causal:
            # conj(rfft(h_b)) is the spectrum of h_b reversed onto the negative lags
            filter_spectrum = filter_spectrum[0] + filter_spectrum[1].conj()
        else:
            filter_spectrum = filter_spectrum[0]
        u_compute = u.to(compute)
        y = torch.fft.irfft(torch.fft.rfft(u_compute, n=2 * seq_len) * filter_spectrum, n=2 * seq_len)[..., :seq_len]
        return (y + u_compute * self.skip.to(compute)[:, None]).to(u.dtype)
