"""Encoders: embeddings, a stack of `Block`s laid out by a layout, and a head — BERT (Devlin et al.,
"BERT: Pre-training of Deep Bidirectional Transformers for Language Understanding", arXiv
1810.04805) with its attention replaced by any mixer, as FNet (arXiv 2105.03824) does.

h₀ = LN(E_tok[ids] + E_pos)  (no token-type embeddings; vocab = 0 takes vectors instead of ids)
h₀ += shift(h₀)              (optional previous-token shift: h₀[i] += W·h₀[i−1], zero at i = 0)
h_l = Block_l(h_{l−1})       (mixer of layer l from the layout; a final LN after pre- and peri-norm blocks)
causal=True: every mixer in its causal form, so position t's hidden state depends on tokens 0…t only
(the shift reads t−1, the rest is per position); a layout with a mixer that has no causal form is
refused with that mixer's reason (`mixers.UnsupportedError`). Heads `tokens` and `none` keep it causal.
head: mlm     logits = LN(GELU(W_t h + b_t)) E_tokᵀ + b  at m = max(1, round(fraction·n)) fixed positions
      tokens  per-position classifier;  sequence  mean over positions, then a classifier;  none  h.

The shift is what the short convolutions of H3, Hyena and Mamba give a layer: with it, associative recall
is one lookup instead of first learning a previous-token head, which made recall learnable on a CPU
budget in a trial of the quality tasks. It is an option, and applies to every layout alike.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from bench.models.blocks import Block, check_norm, ends_with_norm
from bench.models.layout import parse_layout

HEADS = ("mlm", "tokens", "sequence", "none")
DEFAULT_LAYERS = 12
DEFAULT_VOCAB = 32000  # FNet's SentencePiece vocabulary (BERT's WordPiece has 30522)
# BERT's initializer range; also keeps the tied decoder's first logits small
EMBEDDING_STD = 0.02


def default_ffn(dim: int) -> int:
    """Feed-forward width when not given: 4·dim, as in BERT and FNet."""
    return 4 * int(dim)


@dataclass(frozen=True)
class Shape:
    """A named model size: layers, hidden width, feed-forward width and attention heads."""

    layers: int
    dim: int
    ffn: int
    heads: int

    @property
    def head_dim(self) -> int:
        return self.dim // self.heads


# BERT-Base and -Large (arXiv 1810.04805) and Google's BERT miniatures (Turc et al., arXiv 1908.08962)
SHAPES = {
    "tiny": Shape(layers=2, dim=128, ffn=512, heads=2),
    "small": Shape(layers=4, dim=512, ffn=2048, heads=8),
    "base": Shape(layers=12, dim=768, ffn=3072, heads=12),
    "large": Shape(layers=24, dim=1024, ffn=4096, heads=16),
}


def mlm_count(seq_len: int, mlm_fraction: float) -> int:
    """How many positions the masked-LM head projects: max(1, round(fraction·seq_len))."""
    return max(1, round(mlm_fraction * seq_len))


def mlm_positions(seq_len: int, mlm_fraction: float) -> torch.Tensor:
    """The m positions the masked-LM head projects, spread evenly from position 0."""
    count = mlm_count(seq_len, mlm_fraction)
    return torch.arange(count) * seq_len // count


def check_config(seq_len: int, dim: int, layers: int, ffn: int, vocab: int, *, head: str,
                 num_classes: int | None, mlm_fraction: float) -> None:
    """Refuse an impossible encoder with one line naming what is wrong and what is allowed."""
    for name, value in (("seq_len", seq_len), ("dim", dim), ("layers", layers), ("ffn", ffn)):
        if int(value) < 1:
            raise ValueError(f"{name} must be at least 1, got {name}={value}")
    if int(vocab) < 0:
        raise ValueError(f"vocab must be ≥ 0 (0: the encoder takes vectors, not token ids), got vocab={vocab}")
    if head not in HEADS:
        raise ValueError(f"unknown head {head!r} (allowed: {', '.join(HEADS)})")
    if vocab == 0 and head != "none":
        raise ValueError(f"an encoder with vocab=0 takes vectors and has no head: head must be 'none', got {head!r}")
    if head in ("tokens", "sequence") and (num_classes is None or int(num_classes) < 1):
        raise ValueError(f"head {head!r} needs num_classes ≥ 1, got num_classes={num_classes}")
    if head == "mlm" and not 0 < mlm_fraction <= 1:
        raise ValueError(f"mlm_fraction must be in (0, 1], got {mlm_fraction}")


class Encoder(nn.Module):
    """Embeddings, `layers` blocks with the layout's mixers, and a head; see the module docstring."""

    def __init__(self, layout, seq_len: int, dim: int, layers: int, ffn: int, vocab: int, *,
                 norm: str = "post", head: str = "mlm", num_classes: int | None = None,
                 mlm_fraction: float = 0.15, shift: bool = False, mixer_options: dict | None = None,
                 causal: bool = False):
        super().__init__()
        check_norm(norm)
        check_config(seq_len, dim, layers, ffn, vocab, head=head, num_classes=num_classes,
                     mlm_fraction=mlm_fraction)
        self.layout = parse_layout(layout)
        names = self.layout.per_layer(layers)
        self.seq_len, self.dim, self.vocab, self.head, self.norm = int(seq_len), int(dim), int(vocab), head, norm
        self.causal = bool(causal)
        if vocab:
            self.token_embedding = nn.Embedding(vocab, dim)
            self.position_embedding = nn.Parameter(torch.empty(seq_len, dim))
            nn.init.normal_(self.token_embedding.weight, std=EMBEDDING_STD)
            nn.init.normal_(self.position_embedding, std=EMBEDDING_STD)
            self.embedding_norm = nn.LayerNorm(dim)
        self.shift = nn.Linear(dim, dim, bias=False) if shift else None
        self.blocks = nn.ModuleList(Block(name, seq_len, dim, ffn, norm=norm, mixer_options=mixer_options,
                                          causal=causal) for name in names)
        self.final_norm = nn.LayerNorm(dim) if ends_with_norm(norm) else None
        if head == "mlm":
            self.register_buffer("mlm_positions", mlm_positions(seq_len, mlm_fraction), persistent=False)
            self.head_transform = nn.Linear(dim, dim)
            self.head_norm = nn.LayerNorm(dim)
            # the decoder's weight is the token embedding (tied, as in BERT); only its bias is new
            self.head_bias = nn.Parameter(torch.zeros(vocab))
        elif head in ("tokens", "sequence"):
            self.classifier = nn.Linear(dim, num_classes)

    def extra_repr(self) -> str:
        return (f"layout={str(self.layout)!r}, seq_len={self.seq_len}, head={self.head!r}, norm={self.norm!r}, "
                f"causal={self.causal}")

    def embed(self, inputs: torch.Tensor) -> torch.Tensor:
        """Hidden states entering the first block: embeddings (or the input vectors), then the shift."""
        if inputs.shape[1:2] != (self.seq_len,):
            raise ValueError(f"expected inputs of (batch, {self.seq_len}{', dim' if not self.vocab else ''}), "
                             f"got shape {tuple(inputs.shape)}")
        if self.vocab:
            hidden = self.embedding_norm(self.token_embedding(inputs) + self.position_embedding)
        else:
            hidden = inputs
        if self.shift is not None:
            hidden = hidden + F.pad(self.shift(hidden[:, :-1]), (0, 0, 1, 0))
        return hidden

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        hidden = self.embed(inputs)
        for block in self.blocks:
            hidden = block(hidden)
        if self.final_norm is not None:
            hidden = self.final_norm(hidden)
        if self.head == "mlm":
            picked = hidden[:, self.mlm_positions]
            transformed = self.head_norm(F.gelu(self.head_transform(picked)))
            return F.linear(transformed, self.token_embedding.weight, self.head_bias)
        if self.head == "tokens":
            return self.classifier(hidden)
        if self.head == "sequence":
            return self.classifier(hidden.mean(dim=1))
        return hidden
