"""No scale confound: under the quality default, every mixer's sublayer adds to the residual stream at the
scale of the stream, so no layout's accuracy is decided by its mixer's output scale.

In a pre-norm block an unnormalised transform such as FNet's Re(F_n X F_d) adds about √(n·d) times its
input to the stream and swamps it (FNet-Hybrid then stayed below MQAR's shortcut baseline in the quick
preset); a new mixer with a large or tiny output scale must fail here rather than skew quality runs.
"""

import pytest
import torch

import mixers
from bench.measuring.plan import QUALITY_PRESETS, QualityAxes
from bench.models import Block

DEFAULT_NORM = QualityAxes().norm
SIZES = [(16, 64), (64, 128)]  # (seq_len, dim): attention needs dim % 64 == 0, hadamard powers of two
BOUND = 4.0  # the contribution's RMS within [1/BOUND, BOUND] times the stream's
BATCH = 2


def contribution_ratio(name: str, seq_len: int, dim: int, norm: str, seed: int = 0) -> float:
    """RMS of what the mixing sublayer adds to a unit-scale residual stream, over the stream's RMS."""
    torch.manual_seed(seed)
    block = Block(name, seq_len, dim, 4 * dim, norm=norm)
    x = torch.randn(BATCH, seq_len, dim)
    with torch.no_grad():
        added = block.mixing(x) - x
    return (added.pow(2).mean().sqrt() / x.pow(2).mean().sqrt()).item()


def test_every_quality_preset_trains_the_default_recipe():
    assert DEFAULT_NORM == "peri"
    assert {name: axes.norm for name, (_, axes) in QUALITY_PRESETS.items()} == dict.fromkeys(QUALITY_PRESETS,
                                                                                            DEFAULT_NORM)


@pytest.mark.parametrize("seq_len, dim", SIZES, ids=[f"n{n}-d{d}" for n, d in SIZES])
@pytest.mark.parametrize("name", mixers.available())
def test_mixing_sublayer_adds_at_the_streams_scale_under_the_default_recipe(name, seq_len, dim):
    support = mixers.get(name).supports(seq_len, dim, torch.float32, "cpu")
    if not support:
        pytest.skip(f"{name} refuses n={seq_len}, d={dim}: {support.reason}")
    ratio = contribution_ratio(name, seq_len, dim, DEFAULT_NORM)
    assert 1 / BOUND <= ratio <= BOUND, (
        f"{name} under norm={DEFAULT_NORM!r} adds {ratio:.3g}x the residual stream's scale at n={seq_len}, "
        f"d={dim}: its output scale would decide its quality")


@pytest.mark.parametrize("seq_len, dim", SIZES, ids=[f"n{n}-d{d}" for n, d in SIZES])
def test_the_check_catches_fft_under_the_old_pre_norm_recipe(seq_len, dim):
    # the confound this file guards against: Re(F_n LN(x) F_d) is about sqrt(n*d / 2) times LN(x)
    ratio = contribution_ratio("fft", seq_len, dim, "pre")
    assert ratio > BOUND
    assert ratio == pytest.approx((seq_len * dim / 2) ** 0.5, rel=0.2)
