"""Analytic FLOPs against torch's FlopCounterMode, wherever the counter counts something.

The counter sees matrix products (mm, bmm, addmm, baddbmm, attention kernels) and nothing else, so
for matmul-based mixers counted ≤ analytic ≤ 1.10 × counted: the analytic count also includes the
elementwise work the counter ignores (bias adds, GELU, softmax, twiddles). FFTs are not counted at
all; those mixers are skipped with that reason.
"""

import pytest
import torch
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.flop_counter import FlopCounterMode

import mixers

CANDIDATE_SHAPES = [(64, 64), (64, 128), (32, 64)]  # large enough that elementwise work stays small
# FFT convolutions or an elementwise scan, which the counter cannot see, are over 10% of these mixers'
# FLOPs; tests/mixers/test_new_mixers.py compares their matrix products with the counter exactly.
MATMUL_PART_ONLY = {"hyena", "mamba"}
CASES = [(name, {}) for name in mixers.available()] + [("dct", {"method": "matmul"}), ("dct", {"method": "fft"})]


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
    if name in MATMUL_PART_ONLY:
        pytest.skip(f"{name}: work the counter cannot see is over 10% of its FLOPs; "
                    "test_new_mixers.py compares its matrix products with the counter")
    cls = mixers.get(name)
    seq_len, dim = next((n, d) for n, d in CANDIDATE_SHAPES if cls.supports(n, d, **options))
    batch = 3
    counted = counted_flops(name, seq_len, dim, batch, **options)
    if counted == 0:
        pytest.skip(f"{name}{' ' + str(options) if options else ''}: FlopCounterMode counts no FFTs "
                    "(nor pooling), so it sees nothing to compare")
    analytic = cls.flops(seq_len, dim, batch, **options)
    assert counted <= analytic <= 1.10 * counted, (counted, analytic)


def test_fft_flops_follow_the_stated_convention():
    # rfft2 of (n, d): n real FFTs of length d (2.5·d·log2 d each), then d/2+1 complex ones of n
    assert mixers.get("fft").flops(8, 16, batch=2) == 2 * (8 * 2.5 * 16 * 4 + 9 * 5 * 8 * 3)
    assert mixers.get("dft-matrix").flops(8, 16) == 2 * 8 * 16 * 32 + 2 * 8 * 16 * 16
