"""Analytic FLOPs against torch's FlopCounterMode, wherever the counter counts something, and by hand elsewhere.

The counter sees matrix products (mm, bmm, addmm, baddbmm, attention kernels) and nothing else, so
for matmul-based mixers counted ≤ analytic ≤ 1.10 × counted: the analytic count also includes the
elementwise work the counter ignores (bias adds, GELU, softmax, twiddles). FFTs and pooling are not
counted at all, so the mixers built on them (fft, hartley, the dct's FFT path, gfnet, pool) are checked
against counts worked out by hand from the conventions in mixers/_cost.py.
"""

import math

import pytest
import torch
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.flop_counter import FlopCounterMode

import mixers

CANDIDATE_SHAPES = [(64, 64), (64, 128), (32, 64)]  # large enough that elementwise work stays small
# FFT convolutions or an elementwise scan, which the counter cannot see, are over 10% of these mixers'
# FLOPs; tests/mixers/test_math_successors.py compares their matrix products with the counter exactly.
MATMUL_PART_ONLY = {"hyena", "mamba"}
# The counter sees none of their work (FFTs, pooling); test_hand_counted_flops below counts them instead.
COUNTER_BLIND = {"fft", "hartley", "gfnet", "pool"}
CASES = [(name, {}) for name in mixers.available() if name not in MATMUL_PART_ONLY | COUNTER_BLIND]
CASES += [("dct", {"method": "matmul"})]


def counted_flops(name, seq_len, dim, batch, **options):
    module = mixers.build(name, seq_len, dim, **options)
    x = torch.randn(batch, seq_len, dim)
    # On CPU, SDPA's flash kernel is not in the counter's table; its math backend is made of bmm's.
    with torch.no_grad(), sdpa_kernel(SDPBackend.MATH), FlopCounterMode(display=False) as counter:
        module(x)
    return counter.get_total_flops()


@pytest.mark.parametrize("name, options", CASES, ids=lambda case: str(case) if isinstance(case, str) else
                         ",".join(f"{k}={v}" for k, v in case.items()) or "default")
def test_analytic_flops_match_the_counter(name, options):
    cls = mixers.get(name)
    seq_len, dim = next((n, d) for n, d in CANDIDATE_SHAPES if cls.supports(n, d, **options))
    batch = 3
    analytic = cls.flops(seq_len, dim, batch, **options)
    if analytic == 0:
        pytest.skip(f"{name}: flops() is 0, which means unknown by contract (its roofline is reported as unknown)")
    counted = counted_flops(name, seq_len, dim, batch, **options)
    if counted == 0 and not cls.__module__.startswith("mixers."):
        pytest.skip(f"{name}: FlopCounterMode counts none of its work (FFTs, pooling), so it sees nothing to compare")
    assert counted > 0, f"the counter sees nothing of {name}: count it by hand in test_hand_counted_flops"
    assert counted <= analytic <= 1.10 * counted, (counted, analytic)


def test_fft_flops_follow_the_stated_convention():
    # rfft2 of (n, d): n real FFTs of length d (2.5·d·log2 d each), then d/2+1 complex ones of n
    assert mixers.get("fft").flops(8, 16, batch=2) == 2 * (8 * 2.5 * 16 * 4 + 9 * 5 * 8 * 3)
    assert mixers.get("dft-matrix").flops(8, 16) == 2 * 8 * 16 * 32 + 2 * 8 * 16 * 16


def rfft2(n, d):
    """n real FFTs of length d (2.5·d·log2 d each), then d//2+1 complex FFTs of length n (5·n·log2 n each)."""
    return n * 2.5 * d * math.log2(d) + (d // 2 + 1) * 5 * n * math.log2(n)


# (name, options, seq_len, dim, batch, FLOPs worked out by hand)
HAND_COUNTED = [
    ("fft", {}, 16, 32, 3, 3 * (16 * 2.5 * 32 * 5 + 17 * 5 * 16 * 4)),  # 3 × (6400 + 5440)
    ("fft", {}, 15, 12, 1, rfft2(15, 12)),  # lengths that are not powers of two follow the same counts
    # hartley: the rfft2, then the half spectrum times (1 + i), 2 FLOPs per kept complex value
    ("hartley", {}, 16, 32, 3, 3 * (11840 + 2 * 16 * 17)),
    ("hartley", {}, 15, 12, 2, 2 * (rfft2(15, 12) + 2 * 15 * 7)),
    # dct's FFT path: the rfft2 of the reordered input, then per kept value two complex multiplies and an add
    ("dct", {"method": "fft"}, 16, 32, 3, 3 * (11840 + 14 * 16 * 17)),
    ("dct", {"method": "fft"}, 15, 12, 1, rfft2(15, 12) + 14 * 15 * 7),
    ("dct", {}, 97, 96, 1, rfft2(97, 96) + 14 * 97 * 49),  # n + d = 193 > 192: "auto" takes the FFT path
    ("dct", {}, 96, 96, 1, 2 * 96 * 96 * (96 + 96)),  # n + d = 192: still the matmul path
    # gfnet: rfft2 and irfft2 (the same count), a complex multiply (6) per kept frequency
    ("gfnet", {}, 16, 32, 3, 3 * (2 * 11840 + 6 * 16 * 17)),
    # pool, window 3: 16·3 − 2 window terms (the end tokens see 2); per output (terms − 1) adds, ÷, −
    ("pool", {}, 16, 32, 3, 3 * 32 * (16 * 3 - 2 + 16)),
    ("pool", {"window": 5}, 16, 32, 1, 32 * (16 * 5 - 2 * (2 + 1) + 16)),  # the end tokens lose 2 and 1 terms
    ("pool", {"window": 5}, 1, 4, 1, 4 * (1 + 1)),  # one token: its window holds itself only
    ("pool", {"window": 7}, 2, 4, 1, 4 * (2 * 2 + 2)),  # a window wider than the sequence: each token sees both
    ("fft", {}, 2, 2, 1, 2 * 2.5 * 2 * 1 + 2 * 5 * 2 * 1),  # length 2: one butterfly each way (30)
    ("fft", {}, 1, 4, 1, 2.5 * 4 * 2),  # a single token: no FFT along the sequence
    # an odd width keeps ⌊d/2⌋ + 1 = 7 columns of 13
    ("hartley", {}, 6, 13, 1, rfft2(6, 13) + 2 * 6 * 7),
    ("dct", {"method": "fft"}, 6, 13, 1, rfft2(6, 13) + 14 * 6 * 7),
    ("gfnet", {}, 6, 13, 1, 2 * rfft2(6, 13) + 6 * 6 * 7),
]


@pytest.mark.parametrize("name, options, seq_len, dim, batch, expected", HAND_COUNTED,
                         ids=[f"{c[0]}{c[1] or ''}-{c[2]}x{c[3]}-b{c[4]}" for c in HAND_COUNTED])
def test_hand_counted_flops(name, options, seq_len, dim, batch, expected):
    assert mixers.get(name).flops(seq_len, dim, batch, **options) == round(expected)


def test_the_helpers_that_shape_the_counts():
    from mixers import _cost, _spectral, dft_monarch, hadamard, mamba, mlp_mixer

    assert [_spectral.is_pow2(k) for k in (0, 1, 2, 3, 4, 6, 8, 1 << 20)] == [False, True, True, False, True, False,
                                                                                 True, True]
    assert (_cost.fft_flops(1), _cost.fft_flops(2), _cost.fft_flops(8, 3)) == (0.0, 10.0, 360.0)
    assert _cost.rfft_flops(8, 3) == 180.0 and _cost.rfft_flops(8) == 60.0  # one, unless told more
    assert _cost.matmul_flops(2, 3, 4) == 48
    # Kronecker factors of at most 2^7, as even as they come
    assert [hadamard.factors(n) for n in (1, 2, 128, 256, 512, 1 << 15)] == [[], [2], [128], [16, 16], [32, 16],
                                                                             [32, 32, 32]]
    assert [mamba.default_chunk_len(n) for n in (1, 2, 4, 8, 9, 10, 16, 17)] == [1, 2, 2, 3, 3, 4, 4, 5]  # ⌈√n⌉
    assert [dft_monarch.split(n) for n in (1, 8, 12, 16, 17, 384)] == [(1, 1), (2, 4), (3, 4), (4, 4), (1, 17),
                                                                       (16, 24)]
    assert mixers.get("dft-monarch").factors(8, 64) == (2, 4, 8, 8)  # n1, n2 (n1 small), d1, d2 (d2 small)
    assert mixers.get("dft-monarch").factors(12, 384) == (3, 4, 24, 16)
    assert [mlp_mixer.hidden_size(8, e) for e in (0.01, 0.5, 2)] == [1, 4, 16]
    assert mixers.get("gfnet").param_count(6, 13) == 2 * 6 * 7  # a complex weight per kept frequency
    from mixers import dct

    assert [dct.resolve(96, 96), dct.resolve(97, 96), dct.resolve(8, 8, "fft"), dct.resolve(512, 512, "matmul")] == \
        ["matmul", "fft", "fft", "matmul"]
