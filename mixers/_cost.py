"""The FLOP conventions every mixer's `flops()` uses, and the helpers that count by them.

FLOP conventions (analytic, per forward call):
- a complex FFT of length k costs 5·k·log2(k); a real-input FFT about half, 2.5·k·log2(k)
  (the textbook radix-2 counts, also used for lengths that are not powers of two);
- a matrix product (m×k)·(k×n) costs 2·m·n·k (a multiply-add is two FLOPs);
- an elementwise operation costs one FLOP per element, transcendental functions included;
- copies, gathers and flips cost nothing (they are bytes, not FLOPs).
"""

from __future__ import annotations

import math


def fft_flops(length: int, count: int = 1) -> float:
    """`count` complex FFTs of `length`."""
    return 5.0 * count * length * math.log2(length) if length > 1 else 0.0


def rfft_flops(length: int, count: int = 1) -> float:
    """`count` real-input FFTs of `length`: half a complex one."""
    return fft_flops(length, count) / 2


def rfft2_flops(seq_len: int, dim: int) -> float:
    """One (seq_len, dim) rfft2: real FFTs along dim, then complex FFTs over the dim//2+1 kept columns."""
    return rfft_flops(dim, seq_len) + fft_flops(seq_len, dim // 2 + 1)


def matmul_flops(m: int, k: int, n: int) -> int:
    """(m×k)·(k×n)."""
    return 2 * m * k * n
