"""Layouts: which token mixer each encoder layer uses.

A layout is a mixer name (that mixer in every layer) or `BASE+TOP:K` (TOP in the last K layers, BASE
below). FNet-Hybrid (Lee-Thorp et al., "FNet: Mixing Tokens with Fourier Transforms", arXiv
2105.03824) is `fft+attention:2`: Fourier mixing everywhere but self-attention in the top two layers.
Mixer names may contain '-' (`attention-naive`); the separators are '+' and ':'.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import mixers

FORM = "a mixer name, or BASE+TOP:K for TOP in the last K layers (K ≥ 1, e.g. fft+attention:2)"
_HYBRID = re.compile(r"([^+:]+)\+([^+:]+):([0-9]+)")


class LayoutError(ValueError):
    """A layout that is malformed, names an unknown mixer, or does not fit the model's layers."""


@dataclass(frozen=True)
class Layout:
    """`base` in every layer, except `top` in the last `top_layers` layers (None and 0 for a plain name)."""

    base: str
    top: str | None = None
    top_layers: int = 0

    def __post_init__(self):
        if (self.top is None) != (self.top_layers == 0) or self.top_layers < 0:
            raise LayoutError(f"a layout has a top mixer exactly when it has top layers (≥ 1), "
                              f"got top={self.top!r}, top_layers={self.top_layers}")

    def __str__(self) -> str:
        return self.base if self.is_plain else f"{self.base}+{self.top}:{self.top_layers}"

    @property
    def is_plain(self) -> bool:
        return self.top is None

    @property
    def names(self) -> tuple[str, ...]:
        """The mixer names the layout uses, base first."""
        return (self.base,) if self.is_plain else (self.base, self.top)

    def per_layer(self, layers: int) -> list[str]:
        """The mixer name of each of `layers` layers, bottom first."""
        if int(layers) < 1:
            raise LayoutError(f"a model needs at least 1 layer, got layers={layers}")
        if self.top_layers > layers:
            raise LayoutError(f"layout {self} puts {self.top} in the last {self.top_layers} layers, "
                              f"but the model has only {layers} layers")
        return [self.base] * (layers - self.top_layers) + [self.top] * self.top_layers


def _check_name(name: str, text: str) -> None:
    if name not in mixers.available():
        raise LayoutError(f"unknown mixer {name!r} in layout {text!r} (available: {', '.join(mixers.available())})")


def parse_layout(text: str | Layout) -> Layout:
    """The `Layout` that `text` writes; refuses malformed text and unknown mixers with one line."""
    if isinstance(text, Layout):
        return text
    if not isinstance(text, str) or not text:
        raise LayoutError(f"empty or non-text layout {text!r}: expected {FORM}")
    if "+" not in text and ":" not in text:
        _check_name(text, text)
        return Layout(text)
    match = _HYBRID.fullmatch(text)
    if match is None:
        raise LayoutError(f"malformed layout {text!r}: expected {FORM}")
    base, top, count = match.groups()
    # No zero and no leading zeros: a layout appears in rows as written, so each has one spelling.
    if count.startswith("0"):
        raise LayoutError(f"malformed layout {text!r}: K must be a positive integer without leading zeros; "
                          f"expected {FORM}")
    if base == top:
        raise LayoutError(f"layout {text!r} names {base!r} twice; write {base!r} for {base} in every layer")
    _check_name(base, text)
    _check_name(top, text)
    return Layout(base, top, int(count))


def validate_layout(text: str | Layout, layers: int | None = None) -> Layout:
    """`parse_layout(text)`, also checking that it fits `layers` layers when given."""
    layout = parse_layout(text)
    if layers is not None:
        layout.per_layer(layers)
    return layout
