"""The look every family of plots shares: mixer colours and markers, figure layout, log axes.

Figures are built with `matplotlib.figure.Figure` and the Agg canvas, never pyplot: no global state, no
display needed; margins are fixed in inches (a layout engine would double the drawing time). Every
mixer keeps one colour and one marker in every plot of every family (cost, scopes, quality, compare).
"""

from __future__ import annotations

import colorsys
import hashlib
import math
import re
from pathlib import Path

import pandas as pd
from matplotlib import ticker
from matplotlib.figure import Figure

from bench.reporting import analysis

DPI = 100
KNOWN_MIXERS = ("fft", "dft-matrix", "dft-monarch", "hartley", "dct", "hadamard", "gfnet", "pool", "linear",
                "mlp-mixer", "gmlp", "hyena", "mamba", "linear-attention", "attention", "attention-naive")
_KNOWN_STYLES = {
    "fft": ("#1f77b4", "o"),
    "dft-matrix": ("#17becf", "s"),
    "hartley": ("#9467bd", "^"),
    "dct": ("#bcbd22", "v"),
    "hadamard": ("#2ca02c", "D"),
    "linear": ("#8c564b", "P"),
    "mlp-mixer": ("#e377c2", "X"),
    "attention": ("#d62728", "*"),
    "attention-naive": ("#ff7f0e", "h"),
    "dft-monarch": ("#0b3d91", "d"),
    "gfnet": ("#6b8e23", "p"),
    "pool": ("#7f7f7f", "8"),
    "gmlp": ("#c71585", "<"),
    "hyena": ("#00a087", ">"),
    "mamba": ("#000000", "H"),
    "linear-attention": ("#e6550d", "1"),
}
# A name without a fixed style gets a marker the built-in mixers do not use, and a hue from its hash.
_EXTRA_MARKERS = ("2", "3", "4", r"$\spadesuit$", r"$\clubsuit$", r"$\heartsuit$")


def mixer_style(name: str) -> dict:
    """Colour and marker of a mixer: fixed for the built-in names, from a stable hash of the name otherwise."""
    if name in _KNOWN_STYLES:
        color, marker = _KNOWN_STYLES[name]
        return {"color": color, "marker": marker}
    digest = hashlib.sha256(name.encode()).digest()
    hue = int.from_bytes(digest[:2], "big") / 65536
    red, green, blue = colorsys.hls_to_rgb(hue, (0.28, 0.36, 0.44)[digest[2] % 3], 0.75)
    return {"color": f"#{round(red * 255):02x}{round(green * 255):02x}{round(blue * 255):02x}",
            "marker": _EXTRA_MARKERS[digest[3] % len(_EXTRA_MARKERS)]}


def mixer_order(names) -> list[str]:
    """The built-in mixers in their usual order, then any others alphabetically."""
    names = set(names)
    return [name for name in KNOWN_MIXERS if name in names] + sorted(names - set(KNOWN_MIXERS))


# Fixed margins, in inches: left of the axes, below, above (two-line title), right (the legend).
LEFT, BOTTOM, TOP, LEGEND = 0.9, 0.62, 0.72, 2.35


def figure(width: float, height: float, ncols: int = 1, nrows: int = 1, left: float = LEFT,
           right: float = LEGEND, top: float = TOP, gap: float = 0.7, row_gap: float = 0.75,
           sharey: bool = False):
    """A figure with a grid of axes, fixed margins in inches, and room on the right for the legend."""
    fig = Figure(figsize=(width, height))
    axis_width = (width - left - right - gap * (ncols - 1)) / ncols
    axis_height = (height - top - BOTTOM - row_gap * (nrows - 1)) / nrows
    fig.subplots_adjust(left=left / width, right=1 - right / width, bottom=BOTTOM / height,
                        top=1 - top / height, wspace=gap / axis_width, hspace=row_gap / axis_height)
    return fig, list(fig.subplots(nrows, ncols, squeeze=False, sharey=sharey).ravel())


def title(fig: Figure, text: str) -> None:
    """The figure's title (two lines: what it shows, then the device and group) in the top margin."""
    height = fig.get_size_inches()[1]
    fig.suptitle(text, fontsize=11, y=1 - 0.1 / height, va="top")


def save(fig: Figure | None, path: Path) -> Path | None:
    """Write `fig` to `path` as a PNG of DPI dots per inch; returns the path, or None (nothing written) for no figure."""
    if fig is None:
        return None
    fig.savefig(path, dpi=DPI)
    return path


def legend(fig: Figure, handles, right: float = LEGEND, top: float = TOP, title: str | None = None) -> None:
    if not handles:
        return
    width, height = fig.get_size_inches()
    fig.legend(handles, [handle.get_label() for handle in handles], loc="upper left",
               bbox_to_anchor=(1 - (right - 0.12) / width, 1 - top / height), fontsize=8, frameon=False,
               title=title, title_fontsize=8, alignment="left", borderaxespad=0)


def plain(value, _=None) -> str:
    """Tick labels as plain numbers: 0.01, 2, 500, 10,000."""
    return f"{value:,.0f}" if abs(value) >= 1000 else f"{value:g}"


def log_ticks(axis, formatter=plain) -> None:
    """Plain-number labels on a log axis: decades only when it spans many, 1-2-5 or finer when it spans few."""
    low, high = sorted(axis.get_view_interval())
    decades = math.log10(high / low) if low > 0 and high > low else 0.0
    if decades < 0.7:
        subs = (1.0, 1.2, 1.5, 2.0, 2.5, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0)
    elif decades < 3.2:
        subs = (1.0, 2.0, 5.0)
    else:
        subs = (1.0,)
    axis.set_major_locator(ticker.LogLocator(base=10, subs=subs, numticks=12))
    axis.set_major_formatter(formatter if isinstance(formatter, ticker.Formatter) else ticker.FuncFormatter(formatter))
    axis.set_minor_locator(ticker.NullLocator())  # unlabelled minor ticks cost a third of the drawing time


def memory_unit(largest_mb: float) -> tuple[float, str]:
    """(divisor, unit) for a memory axis: GB once values reach 10 GB, so tick labels stay short."""
    return (1024.0, "GB") if largest_mb >= 10 * 1024 else (1.0, "MB")


def length_ticks(lengths) -> list[int]:
    """At most 10 x ticks: the measured powers of two (or all measured lengths when few are), evenly thinned."""
    lengths = sorted({int(n) for n in lengths})
    powers = [n for n in lengths if n & (n - 1) == 0]
    candidates = powers if len(powers) >= 2 else lengths
    step = max(1, math.ceil(len(candidates) / 10))
    return candidates[::step]


def length_axis(ax, lengths) -> None:
    """Log-2 x axis labelled with plain lengths: 128, 1k, 4k …"""
    lengths = sorted({int(n) for n in lengths})
    ax.set_xscale("log", base=2)
    ax.xaxis.set_major_locator(ticker.FixedLocator(length_ticks(lengths)))
    ax.xaxis.set_major_formatter(ticker.FuncFormatter(lambda value, _: analysis.format_seq_len(value)))
    ax.xaxis.set_minor_locator(ticker.NullLocator())
    if lengths:
        ax.set_xlim(lengths[0] / 1.25, lengths[-1] * 1.25)
    ax.set_xlabel("sequence length (tokens)")


def group_slug(key: dict) -> str:
    """A file-name-safe name for a group: 'bfloat16_forward_d768_batch8_cuda'."""
    dim = key.get("dim")
    scope = key.get("scope") or "mixer"
    shape = None
    if scope != "mixer":  # mixer-scope names stay as they were before scopes existed
        shape = "-".join(f"{letter}{int(key[name]) if isinstance(key.get(name), (int, float)) else key[name]}"
                         for letter, name in (("L", "layers"), ("f", "ffn"), ("v", "vocab"), ("", "norm"))
                         if analysis.is_known(key.get(name)))
        shape = f"{scope}-{shape}" if shape else scope
    parts = [shape, key.get("dtype"), key.get("mode"), f"d{dim}" if pd.notna(dim) else None, key.get("batching"),
             key.get("device")]
    words = [re.sub(r"[^A-Za-z0-9.-]+", "", str(part)) for part in parts if part is not None and pd.notna(part)]
    return "_".join(word for word in words if word) or "all"
