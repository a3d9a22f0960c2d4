"""One encoder layer built around any registered token mixer, as in BERT (Devlin et al., arXiv
1810.04805) and FNet (Lee-Thorp et al., arXiv 2105.03824): a mixing sublayer and a feed-forward
sublayer, each with a residual connection and LayerNorm.

post-norm (both papers): x = LN₁(x + mix(x)); x = LN₂(x + W₂·GELU(W₁x + b₁) + b₂)
pre-norm:                x = x + mix(LN₁(x)); x = x + W₂·GELU(W₁·LN₂(x) + b₁) + b₂
GELU is the exact (erf) form; there is no dropout (a benchmark measures the deterministic model).
"""

from __future__ import annotations

import inspect

from torch import nn

import mixers

NORMS = ("post", "pre")


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


class Block(nn.Module):
    """Mixer sublayer and feed-forward sublayer (d → ffn → d), residuals and LayerNorm, post- or pre-norm."""

    def __init__(self, mixer: str, seq_len: int, dim: int, ffn: int, *, norm: str = "post",
                 mixer_options: dict | None = None):
        super().__init__()
        check_norm(norm)
        if int(ffn) < 1:
            raise ValueError(f"ffn must be a positive width, got ffn={ffn}")
        self.norm = norm
        self.mixer = mixers.build(mixer, seq_len, dim, **options_for(mixer, mixer_options))
        self.norm1 = nn.LayerNorm(dim)
        self.ffn = nn.Sequential(nn.Linear(dim, ffn), nn.GELU(), nn.Linear(ffn, dim))
        self.norm2 = nn.LayerNorm(dim)

    def extra_repr(self) -> str:
        return f"norm={self.norm!r}"

    def forward(self, x):
        if self.norm == "pre":
            x = x + self.mixer(self.norm1(x))
            return x + self.ffn(self.norm2(x))
        x = self.norm1(x + self.mixer(x))
        return self.norm2(x + self.ffn(x))
