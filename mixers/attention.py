"""Multi-head self-attention (Vaswani et al., "Attention Is All You Need", arXiv 1706.03762), the
mixer FNet (arXiv 2105.03824) replaces: out = W_o·concat_h softmax(Q_h K_hᵀ/√h_d) V_h, with
[Q | K | V] = X W_qkv + b_qkv.

`attention` runs the heads through torch's scaled_dot_product_attention, so PyTorch picks its fastest
kernel (flash, memory-efficient, cuDNN or math). `attention-naive` materialises the n×n score matrix
(QKᵀ → softmax → ·V), the attention of FNet's comparison; it differs only in `attend`.
`causal=True` (a decoder's): token t attends to tokens 0…t only — SDPA's `is_causal` (its causal
kernels), and in `attention-naive` the scores above the diagonal set to −∞ before the softmax.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

import mixers
from mixers import _cost


@mixers.register("attention")
class Attention(mixers.TokenMixer):
    """Multi-head self-attention with a fused QKV projection and an output projection, via SDPA."""

    constraints = "dim divisible by head_dim (default 64)"
    causal_form = True

    def __init__(self, seq_len, dim, head_dim=64, causal=False):
        super().__init__(seq_len, dim)
        self.causal = bool(causal)
        self.head_dim = head_dim
        self.heads = dim // head_dim
        self.qkv = nn.Linear(dim, 3 * dim)
        self.out = nn.Linear(dim, dim)

    def extra_repr(self):
        return f"{super().extra_repr()}, heads={self.heads}, head_dim={self.head_dim}, causal={self.causal}"

    @classmethod
    def check(cls, seq_len, dim, dtype, device, head_dim=64, **options):
        if head_dim < 1 or dim % head_dim:
            return f"{cls.name} needs dim divisible by head_dim={head_dim}, got dim={dim}"
        return None

    @classmethod
    def param_count(cls, seq_len, dim, **options):
        return 4 * dim * dim + 4 * dim

    @classmethod
    def flops(cls, seq_len, dim, batch=1, head_dim=64, causal=False, **options):
        heads = dim // head_dim
        projections = _cost.matmul_flops(seq_len, dim, 3 * dim) + _cost.matmul_flops(seq_len, dim, dim)
        # causally, the n(n+1)/2 scores at or below the diagonal are all a causal kernel needs
        scores = seq_len * (seq_len + 1) // 2 if causal else seq_len * seq_len
        scores_and_values = 2 * heads * 2 * scores * head_dim
        # bias adds (4·n·d); softmax: max, subtract, exp, sum, divide per score (the scaling folds in)
        elementwise = 4 * seq_len * dim + 5 * heads * scores
        return batch * (projections + scores_and_values + elementwise)

    def forward(self, x):
        *batch, seq_len, dim = x.shape
        # (…, n, 3, heads, head_dim) -> three (…, heads, n, head_dim) views, no copy
        q, k, v = self.qkv(x).unflatten(-1, (3, self.heads, self.head_dim)).movedim(-3, 0).transpose(-3, -2)
        mixed = self.attend(q, k, v)
        return self.out(mixed.transpose(-3, -2).reshape(x.shape))

    def attend(self, q, k, v):
        """softmax(q kᵀ / √head_dim) v per head."""
        return F.scaled_dot_product_attention(q, k, v, is_causal=self.causal)

    def kernel_name(self) -> str:
        """The SDPA backend that runs this module's call: "flash", "efficient", "cudnn" or "math" ("" if unknown).

        It is asked of the dispatcher itself: `torch._fused_sdp_choice` is the function that
        `scaled_dot_product_attention` calls to pick its backend, and it is given q, k and v as `forward` makes
        them (one sample, the same dtype, device, strides and gradient requirement; batch does not enter the
        choice), the causal flag, and the global flags that `torch.nn.attention.sdpa_kernel` sets. On a CPU
        "flash" is torch's CPU flash kernel (the device column says which). Where that private function is
        gone, each backend is tried alone under `sdpa_kernel([backend])` in torch's usual order of preference
        (flash, efficient, cudnn, math), and the first that runs is named: the same answer unless a torch
        version prefers cuDNN over flash. Asked again only when the dtype, device, mode or those flags change."""
        weight = self.qkv.weight
        flags = tuple(getattr(torch.backends.cuda, f"{name}_sdp_enabled", lambda: None)()
                      for name in ("flash", "mem_efficient", "cudnn", "math"))  # what sdpa_kernel sets
        key = (weight.dtype, weight.device, self.training, bool(getattr(self, "causal", False)), flags)
        if getattr(self, "_kernel", (None, ""))[0] != key:
            self._kernel = (key, self._sdpa_backend())
        return self._kernel[1]

    def _sdpa_backend(self) -> str:
        from torch.nn.attention import SDPBackend, sdpa_kernel

        names = {SDPBackend.FLASH_ATTENTION: "flash", SDPBackend.EFFICIENT_ATTENTION: "efficient",
                 SDPBackend.CUDNN_ATTENTION: "cudnn", SDPBackend.MATH: "math"}
        weight = self.qkv.weight
        causal = bool(getattr(self, "causal", False))
        try:
            with torch.no_grad():
                qkv = torch.empty(1, self.seq_len, 3, self.heads, self.head_dim, dtype=weight.dtype,
                                  device=weight.device)
            q, k, v = (t.requires_grad_(self.training) for t in qkv.movedim(-3, 0).transpose(-3, -2).unbind(0))
            choose = getattr(torch, "_fused_sdp_choice", None)
            if choose is not None:
                return names.get(SDPBackend(choose(q, k, v, None, 0.0, causal)), "")
            for backend in names:
                try:
                    with sdpa_kernel([backend]), torch.no_grad():
                        F.scaled_dot_product_attention(q, k, v, is_causal=causal)
                    return names[backend]
                except RuntimeError:
                    continue
        except Exception:  # noqa: BLE001 - a record of what ran must not fail the point it describes
            return ""
        return ""


@mixers.register("attention-naive")
class NaiveAttention(Attention):
    """Multi-head self-attention with an explicit n×n score matrix (no fused kernel)."""

    def kernel_name(self) -> str:
        return ""  # one path: the explicit score matrix

    def attend(self, q, k, v):
        scores = (q * (1 / math.sqrt(self.head_dim))) @ k.transpose(-2, -1)
        if self.causal:
            future = torch.ones(scores.shape[-2:], dtype=torch.bool, device=scores.device).triu(1)
            scores = scores.masked_fill(future, -math.inf)
        return scores.softmax(dim=-1) @ v
