"""Mamba's selective state-space block (Gu & Dao, "Mamba: Linear-Time Sequence Modeling with Selective
State Spaces", arXiv 2312.00752; reference state-spaces/mamba, mamba_ssm/modules/mamba_simple.py and
selective_scan_ref in mamba_ssm/ops/selective_scan_interface.py), with e = expand·d inner channels:
    [x | z] = X W_in;  x ← SiLU(CausalConv_4(x));  [δ | B | C] = x W_x;  Δ = softplus(δ W_dt + b_dt);
    h_t = exp(Δ_t A) ⊙ h_{t−1} + (Δ_t x_t) B_tᵀ  (h_t: e × N, A = −exp(A_log) diagonal per channel),
    y_t = h_t C_t + D ⊙ x_t;  out = (y ⊙ SiLU(z)) W_out,
with N = d_state (16), rank(W_dt) = ⌈d/16⌉, a depthwise causal convolution of width 4 (with bias),
no bias on W_in, W_x, W_out, and the reference's initialisation (S4D-real A_log = log 1…N, D = 1,
b_dt the inverse softplus of Δ ~ log-uniform[10⁻³, 10⁻¹], W_dt uniform ±rank^-½). The scan is
causal, as Mamba's: a token sees only those before it, also in an encoder.

The scan (`selective_scan_chunked`) is pure PyTorch and runs anywhere. The sequence is cut into
chunks of L tokens (default ⌈√n⌉, which balances the two loops below):
1. every chunk runs the recurrence from a zero state, all chunks at once (L steps, each over
   (batch, chunks, e, N));
2. the state entering chunk c is carried across chunks (n/L steps): its effect on token t of the
   chunk is exp(S_t) ⊙ h_in with S_t the cumulative sum of Δ·A inside the chunk.
Every exponent is Δ·A or a sum of them, ≤ 0, so nothing overflows; no state for all n tokens is
ever stored. Where `mamba_ssm` imports and the input is on CUDA, `kernel="auto"` (the default) uses
its fused `selective_scan_fn` instead; `kernel="chunked"` forces the PyTorch scan and `kernel="cuda"`
the fused one. `scan_path` records which ran last ("chunked" or "mamba_ssm"); `extra_repr` shows it.

Precision: half-precision inputs run the scan (with Δ, the D skip and the gate) in float32, as the
reference does; the projections and the convolution run in the input's dtype, and `compute_dtype()`
reports that dtype, the projections', which hold most of the FLOPs (96% of them at d = 768).
`flops()` counts the chunked scan (7 FLOPs per token, channel and state inside chunks, 6 more for
the carried state), the path that runs without `mamba_ssm`.
"""

from __future__ import annotations

import functools
import math

import torch
import torch.nn.functional as F
from torch import nn

import mixers
from mixers import _cost

KERNELS = ("auto", "chunked", "cuda")


@functools.cache
def fused_scan():
    """mamba_ssm's selective_scan_fn, or None where it does not import."""
    try:
        from mamba_ssm.ops.selective_scan_interface import selective_scan_fn
    except Exception:  # not installed, or built for another torch/CUDA
        return None
    return selective_scan_fn


def default_chunk_len(seq_len: int) -> int:
    """⌈√n⌉: the two loops of the chunked scan then take about √n steps each."""
    return max(1, math.isqrt(seq_len - 1) + 1) if seq_len > 1 else 1


def selective_scan_chunked(u, delta, A, B, C, chunk_len):
    """y_t = h_t C_t with h_t = exp(Δ_t A) ⊙ h_{t−1} + (Δ_t u_t) B_tᵀ, h_{−1} = 0, chunk by chunk.

    u, delta: (b, n, e); A: (e, N); B, C: (b, n, N) -> y (b, n, e). All in one dtype.
    """
    batch, seq_len, channels = u.shape
    chunks = -(-seq_len // chunk_len)
    pad = chunks * chunk_len - seq_len
    # padding at the end: Δ = 0 and u = 0 leave the state alone, and the padded outputs are dropped
    delta, u, B, C = (F.pad(t, (0, 0, 0, pad)) if pad else t for t in (delta, u, B, C))
    delta = delta.view(batch, chunks, chunk_len, channels)
    inputs = (delta * u.view(batch, chunks, chunk_len, channels))
    B = B.view(batch, chunks, chunk_len, -1)
    C = C.view(batch, chunks, chunk_len, -1)

    # 1. inside every chunk, from a zero state
    state = None
    local = []
    for t in range(chunk_len):
        drive = inputs[:, :, t, :, None] * B[:, :, t, None, :]  # (b, chunks, e, N)
        state = drive if state is None else torch.exp(delta[:, :, t, :, None] * A) * state + drive
        local.append(state @ C[:, :, t, :, None])  # (b, chunks, e, 1)
    local = torch.cat(local, dim=-1).transpose(-1, -2)  # (b, chunks, L, e)

    # 2. carry the state across chunks; exp(cumsum of Δ·A ≤ 0) ≤ 1
    outputs = [local[:, 0]]
    carried = state[:, 0]  # (b, e, N), the state at the end of chunk 0
    for c in range(1, chunks):
        decay = torch.exp(torch.cumsum(delta[:, c, :, :, None] * A, dim=1))  # (b, L, e, N)
        outputs.append(local[:, c] + ((decay * carried[:, None]) @ C[:, c, :, :, None]).squeeze(-1))
        carried = decay[:, -1] * carried + state[:, c]
    return torch.stack(outputs, dim=1).view(batch, chunks * chunk_len, channels)[:, :seq_len]


def scan_flops(seq_len, channels, d_state, chunk_len):
    """The chunked scan's FLOPs for one sample (what `selective_scan_chunked` does)."""
    chunks = -(-seq_len // chunk_len)
    padded = chunks * chunk_len
    # inside chunks per (t, e, N): Δ·A, exp, ⊙ state, u·B, +, and · C (2), of which a chunk's first
    # step (from a zero state) does only u·B and · C; per (t, e): Δ·u
    inside = padded * channels * (7 * d_state + 1) - chunks * channels * 4 * d_state
    # carried per (t, e, N) in chunks 1…: Δ·A, cumsum, exp, ⊙ state, · C (2); per (t, e): the add;
    # per chunk and (e, N): the state update (2)
    carried = (chunks - 1) * (chunk_len * channels * (6 * d_state + 1) + 2 * channels * d_state)
    return inside + carried


@mixers.register("mamba")
class Mamba(mixers.TokenMixer):
    """Mamba's block: in_proj, causal conv + SiLU, selective scan (chunked PyTorch or mamba_ssm), gate, out_proj."""

    constraints = "always causal; half precision: scan in fp32"
    causal_form = True  # the only form: `causal` is accepted and changes nothing

    def __init__(self, seq_len, dim, d_state=16, expand=2, d_conv=4, chunk_len=None, kernel="auto", causal=False):
        super().__init__(seq_len, dim)
        self.causal = True
        inner = expand * dim
        self.d_state, self.expand, self.d_conv, self.kernel = d_state, expand, d_conv, kernel
        self.chunk_len = chunk_len
        self.dt_rank = math.ceil(dim / 16)
        self.scan_path = None  # set by forward: "chunked" or "mamba_ssm"
        self.in_proj = nn.Linear(dim, 2 * inner, bias=False)
        self.conv1d = nn.Conv1d(inner, inner, d_conv, groups=inner)
        self.x_proj = nn.Linear(inner, self.dt_rank + 2 * d_state, bias=False)
        self.dt_proj = nn.Linear(self.dt_rank, inner)
        self.out_proj = nn.Linear(inner, dim, bias=False)
        with torch.no_grad():
            dt_std = self.dt_rank ** -0.5
            self.dt_proj.weight.uniform_(-dt_std, dt_std)
            dt = torch.exp(torch.rand(inner) * (math.log(0.1) - math.log(1e-3)) + math.log(1e-3)).clamp(min=1e-4)
            self.dt_proj.bias.copy_(dt + torch.log(-torch.expm1(-dt)))  # softplus⁻¹(dt)
        self.A_log = nn.Parameter(torch.log(torch.arange(1, d_state + 1, dtype=torch.float32)).repeat(inner, 1))
        self.D = nn.Parameter(torch.ones(inner))

    def extra_repr(self):
        return (f"{super().extra_repr()}, d_state={self.d_state}, expand={self.expand}, d_conv={self.d_conv}, "
                f"dt_rank={self.dt_rank}, chunk_len={self.chunk_len or 'auto'}, kernel={self.kernel}, "
                f"scan_path={self.scan_path or 'not run yet'}")

    @classmethod
    def check(cls, seq_len, dim, dtype, device, d_state=16, expand=2, d_conv=4, chunk_len=None, kernel="auto",
              **options):
        sizes = {"d_state": d_state, "expand": expand, "d_conv": d_conv}
        if chunk_len is not None:
            sizes["chunk_len"] = chunk_len
        bad = [f"{name}={value!r}" for name, value in sizes.items() if not (isinstance(value, int) and value >= 1)]
        if bad:
            return f"mamba needs positive integers for {', '.join(sizes)}, got {', '.join(bad)}"
        if kernel not in KERNELS:
            return f"mamba: unknown kernel {kernel!r} (allowed: {', '.join(KERNELS)})"
        if kernel == "cuda" and (device.type != "cuda" or fused_scan() is None):
            return "mamba kernel='cuda' needs a CUDA device and an importable mamba_ssm (use kernel='chunked' or 'auto')"
        return None

    @classmethod
    def param_count(cls, seq_len, dim, d_state=16, expand=2, d_conv=4, **options):
        inner, rank = expand * dim, math.ceil(dim / 16)
        return (dim * 2 * inner + inner * d_conv + inner + inner * (rank + 2 * d_state) + rank * inner + inner
                + inner * d_state + inner + inner * dim)

    @classmethod
    def flops(cls, seq_len, dim, batch=1, d_state=16, expand=2, d_conv=4, chunk_len=None, **options):
        inner = expand * dim
        # per (t, e): the conv's bias, SiLU (exp, add, divide, multiply: 4), b_dt, softplus (3), D skip (2),
        # SiLU(z) (4) and the gate (1); A = −exp(A_log) once per call
        elementwise = seq_len * inner * (1 + 4 + 1 + 3 + 2 + 4 + 1)
        scan = scan_flops(seq_len, inner, d_state, chunk_len or default_chunk_len(seq_len))
        return batch * (cls.matmul_flops(seq_len, dim, d_state, expand, d_conv) + elementwise + scan) \
            + 2 * inner * d_state

    @classmethod
    def matmul_flops(cls, seq_len, dim, d_state=16, expand=2, d_conv=4):
        """The four projections and the depthwise convolution, for one sample (the scan's products not included)."""
        inner, rank = expand * dim, math.ceil(dim / 16)
        return (_cost.matmul_flops(seq_len, dim, 2 * inner) + 2 * d_conv * seq_len * inner
                + _cost.matmul_flops(seq_len, inner, rank + 2 * d_state)
                + _cost.matmul_flops(seq_len, rank, inner) + _cost.matmul_flops(seq_len, inner, dim))

    def kernel_name(self) -> str:
        """The scan that runs: "mamba_ssm" (its fused selective_scan_fn) or "chunked" (the PyTorch scan); the
        last call's `scan_path`, or before any call the one `forward` would take on the parameters' device."""
        if self.scan_path:
            return self.scan_path
        on_cuda = self.A_log.is_cuda
        fused = self.kernel == "cuda" or (self.kernel == "auto" and on_cuda and fused_scan() is not None)
        return "mamba_ssm" if fused else "chunked"

    def forward(self, hidden):
        seq_len = hidden.shape[1]
        x, z = self.in_proj(hidden).chunk(2, dim=-1)  # (b, n, e) each
        x = F.silu(self.conv1d(F.pad(x.transpose(1, 2), (self.d_conv - 1, 0))))  # (b, e, n), causal
        use_fused = self.kernel == "cuda" or (self.kernel == "auto" and x.is_cuda and fused_scan() is not None)
        if use_fused:
            y = self._fused(x, z)
        else:
            y = self._chunked(x.transpose(1, 2), z, chunk_len=self.chunk_len or default_chunk_len(seq_len))
        return self.out_proj(y)

    def _chunked(self, x, z, chunk_len):
        """(y_t + D ⊙ x_t) ⊙ SiLU(z_t) by the chunked scan; x, z (b, n, e)."""
        self.scan_path = "chunked"
        dtype = x.dtype
        dt, B, C = self.x_proj(x).split([self.dt_rank, self.d_state, self.d_state], dim=-1)
        delta = self.dt_proj(dt)
        compute = torch.float32 if x.dtype in mixers.HALF_DTYPES else x.dtype
        x, z, delta, B, C = (t.to(compute) for t in (x, z, delta, B, C))
        delta = F.softplus(delta)
        A = -torch.exp(self.A_log.to(compute))
        y = selective_scan_chunked(x, delta, A, B, C, chunk_len) + self.D.to(compute) * x
        return (y * F.silu(z)).to(dtype)

    def _fused(self, x, z):
        """The same by mamba_ssm's selective_scan_fn; x (b, e, n), z (b, n, e). Runs only where mamba_ssm imports."""
        self.scan_path = "mamba_ssm"
        x_dbl = self.x_proj(x.transpose(1, 2))
        dt, B, C = x_dbl.split([self.dt_rank, self.d_state, self.d_state], dim=-1)
        delta = (dt @ self.dt_proj.weight.t()).transpose(1, 2)  # (b, e, n); b_dt goes in as delta_bias
        y = fused_scan()(x.contiguous(), delta.contiguous(), -torch.exp(self.A_log.float()),
                         B.transpose(1, 2).contiguous(), C.transpose(1, 2).contiguous(), self.D.float(),
                         z=z.transpose(1, 2).contiguous(), delta_bias=self.dt_proj.bias.float(), delta_softplus=True)
        return y.transpose(1, 2)
