"""One encoder layer built around any registered token mixer, as in BERT (Devlin et al., arXiv
1810.04805) and FNet (Lee-Thorp et al., arXiv 2105.03824): a mixing sublayer and a feed-forward
sublayer, each with a residual connection and LayerNorm.

post-norm (both papers): x = LN₁(x + mix(x));           x = LN₂(x + FFN(x))
pre-norm:                x = x + mix(LN₁(x));           x = x + FFN(LN₂(x))
peri-norm:               x = x + LN₁ₒ(mix(LN₁(x)));      x = x + LN₂ₒ(FFN(LN₂(x)))
FFN(x) = W₂·GELU(W₁x + b₁) + b₂; GELU is the exact (erf) form; there is no dropout (a benchmark
measures the deterministic model). `causal=True` builds the mixer's causal form (`mixers.build(...,
causal=True)`; a mixer without one refuses with its reason); everything else in a block is per token.

Peri-norm (LayerNorm around each sublayer, input and output: Kim et al., "Peri-LN: Revisiting Layer
Normalization in the Transformer Architecture", arXiv 2502.02732; Gemma 2's pre- and post-sublayer
norms; "sandwich" LN of CogView, arXiv 2105.13290) adds each sublayer's output to the residual stream at
unit scale whatever the mixer's own output scale. Pre-norm adds mix(LN₁(x)) as it comes: an
unnormalised transform (FNet's Re(F_n X F_d) is about √(n·d) times its input) swamps the stream, and a
layout's accuracy then measures that scale, not the mixer. Post-norm absorbs the scale too, but a large
mix(x) drowns x inside LN₁(x + mix(x)).
"""

from __future__ import annotations

import inspect

from torch import nn

import mixers
from bench.models.vocabulary import NORMS


def options_for(mixer_name: str, options: dict | None) -> dict:
    """The subset of `options` that mixer `mixer_name`'s constructor accepts (all for a **kwargs one).

    A model passes one set of options to every layer (e.g. head_dim=64); each mixer gets only its own.
    """
    options = dict(options or {})
    parameters = list(inspect.signature(mixers.get(mixer_name).__init__).parameters.values())[1:]
    # seq_len and dim are the model's, never an option
    options = {key: value for key, value in options.items() if key not in ("seq_len", "dim")}
    if any(parameter.kind is inspect.Parameter.VAR_KEYWORD for parameter in parameters):
        return options
    accepted = {parameter.name for parameter in parameters
                if parameter.kind in (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)}
    return {key: value for key, value in options.items() if key in accepted}


def check_norm(norm: str) -> None:
    if norm not in NORMS:
        raise ValueError(f"unknown norm {norm!r} (allowed: {', '.join(NORMS)})")


def ends_with_norm(norm: str) -> bool:
    """Whether an encoder of `norm` blocks needs a final LayerNorm (its blocks end on a residual add)."""
    return norm in ("pre", "peri")


class Block(nn.Module):
    """Mixer sublayer and feed-forward sublayer (d → ffn → d), residuals and LayerNorm: post-, pre- or peri-norm."""

    def __init__(self, mixer: str, seq_len: int, dim: int, ffn: int, *, norm: str = "post",
                 mixer_options: dict | None = None, causal: bool = False):
        super().__init__()
        check_norm(norm)
        if int(ffn) < 1:
            raise ValueError(f"ffn must be a positive width, got ffn={ffn}")
        self.norm = norm
        options = options_for(mixer, mixer_options)
        options.pop("causal", None)  # the block's own argument decides, for every mixer alike
        self.mixer = mixers.build(mixer, seq_len, dim, causal=causal, **options)
        self.norm1 = nn.LayerNorm(dim)
        self.ffn = nn.Sequential(nn.Linear(dim, ffn), nn.GELU(), nn.Linear(ffn, dim))
        self.norm2 = nn.LayerNorm(dim)
        if norm == "peri":
            self.out_norm1 = nn.LayerNorm(dim)
            self.out_norm2 = nn.LayerNorm(dim)

    def extra_repr(self) -> str:
        return f"norm={self.norm!r}, causal={self.mixer.causal}"

    def mixing(self, x):
        """The residual stream after the mixing sublayer (its contribution is `mixing(x) - x`)."""
        if self.norm == "pre":
            return x + self.mixer(self.norm1(x))
        if self.norm == "peri":
            return x + self.out_norm1(self.mixer(self.norm1(x)))
        return self.norm1(x + self.mixer(x))

    def feed_forward(self, x):
        """The residual stream after the feed-forward sublayer."""
        if self.norm == "pre":
            return x + self.ffn(self.norm2(x))
        if self.norm == "peri":
            return x + self.out_norm2(self.ffn(self.norm2(x)))
        return self.norm2(x + self.ffn(x))

    def forward(self, x):
        return self.feed_forward(self.mixing(x))
