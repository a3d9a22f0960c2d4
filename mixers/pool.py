"""PoolFormer's token mixer (Yu et al., "MetaFormer Is Actually What You Need for Vision", arXiv
2111.11418): out[t] = mean(X[t-p … t+p] ∩ [0, n)) − X[t], an average over a window of w = 2p + 1
tokens (stride 1, padding p, padding not counted: count_include_pad=False) minus the input, as the
paper's pooling written for a sequence instead of an image. No parameters.

`causal=True`: the window is the w tokens ending at t, out[t] = mean(X[t-w+1 … t] ∩ [0, n)) − X[t], any
w ≥ 1 (the first tokens average the fewer tokens they have, as count_include_pad=False does).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

import mixers


def window_terms(seq_len: int, window: int, causal: bool = False) -> int:
    """Σ_t (tokens inside token t's window): a window loses max(0, p − t) at the start, as many at the end.

    Causally, token t's window holds min(t + 1, w) tokens.
    """
    if causal:
        full = min(seq_len, window)
        return full * (full + 1) // 2 + (seq_len - full) * window
    pad = window // 2
    cut = min(seq_len, pad)
    lost_per_end = cut * pad - cut * (cut - 1) // 2  # Σ_{t < cut} (p − t)
    return seq_len * window - 2 * lost_per_end


@mixers.register("pool")
class Pool(mixers.TokenMixer):
    """PoolFormer: average over a window of tokens (padding not counted), minus the input."""

    constraints = "window odd (default 3); causal: any window ≥ 1"
    causal_form = True

    def __init__(self, seq_len, dim, window=3, causal=False):
        super().__init__(seq_len, dim)
        self.window = window
        self.causal = bool(causal)

    def extra_repr(self):
        return f"{super().extra_repr()}, window={self.window}, causal={self.causal}"

    @classmethod
    def check(cls, seq_len, dim, dtype, device, window=3, causal=False, **options):
        if causal and not (isinstance(window, int) and window >= 1):
            return f"pool needs a window ≥ 1, got window={window!r}"
        # an even window with padding window//2 on both sides would return seq_len + 1 tokens
        if not causal and not (isinstance(window, int) and window >= 1 and window % 2 == 1):
            return f"pool needs an odd window ≥ 1, got window={window!r}"
        return None

    @classmethod
    def flops(cls, seq_len, dim, batch=1, window=3, causal=False, **options):
        # per output: (terms − 1) adds, one divide, one subtract
        return batch * dim * (window_terms(seq_len, window, causal) + seq_len)

    def forward(self, x):
        if self.causal:
            # zeros before the start, then the mean over the window rescaled to the tokens it really holds
            pooled = F.avg_pool1d(F.pad(x.transpose(1, 2), (self.window - 1, 0)), self.window, 1)
            held = torch.arange(1, x.shape[1] + 1, device=x.device, dtype=x.dtype).clamp(max=self.window)
            return pooled.transpose(1, 2) * (self.window / held)[:, None] - x
        pooled = F.avg_pool1d(x.transpose(1, 2), self.window, 1, self.window // 2, count_include_pad=False)
        return pooled.transpose(1, 2) - x
