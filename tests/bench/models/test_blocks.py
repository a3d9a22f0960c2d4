"""Block: any registered mixer in BERT's/FNet's encoder layer; options_for hands each mixer its options."""

import math

import pytest
import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

import mixers
from bench.models import NORMS, Block, options_for, param_count, parts, total

NAMES = mixers.available()
FFN = 128
BATCH = 2


@pytest.mark.parametrize("dtype", mixers.CPU_DTYPES, ids=str)
@pytest.mark.parametrize("name", NAMES)
def test_block_forward_keeps_shape_and_dtype_and_is_finite(name, dtype, small):
    seq_len, dim = small(name)
    torch.manual_seed(0)
    block = Block(name, seq_len, dim, FFN).to(dtype)
    assert isinstance(block.mixer, mixers.get(name))
    x = torch.randn(BATCH, seq_len, dim, dtype=dtype)
    out = block(x)
    assert out.shape == x.shape and out.dtype == dtype
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("norm", NORMS)
@pytest.mark.parametrize("name", NAMES)
def test_block_trains_a_step(name, norm, small, step):
    seq_len, dim = small(name)
    torch.manual_seed(0)
    block = Block(name, seq_len, dim, FFN, norm=norm)
    before = [p.detach().clone() for p in block.parameters()]
    x = torch.randn(BATCH, seq_len, dim)
    target = torch.randn(BATCH, seq_len, dim)
    out = step(block, x, lambda out: F.mse_loss(out, target))
    assert out.shape == x.shape and out.dtype == x.dtype and torch.isfinite(out).all()
    for old, (param_name, new) in zip(before, block.named_parameters()):
        assert new.grad is not None and new.grad.abs().sum() > 0, f"{param_name} got no gradient"
        assert torch.isfinite(new).all() and not torch.equal(old, new), param_name


@pytest.mark.parametrize("norm", NORMS)
@pytest.mark.parametrize("name", NAMES)
def test_block_parameters_equal_the_analytic_count(name, norm, small):
    seq_len, dim = small(name)
    block = Block(name, seq_len, dim, FFN, norm=norm)
    assert param_count("block", name, seq_len, dim, ffn=FFN, norm=norm) == sum(p.numel() for p in block.parameters())


def _layer_norm(x, norm):
    mean = x.mean(-1, keepdim=True)
    var = ((x - mean) ** 2).mean(-1, keepdim=True)
    return (x - mean) / torch.sqrt(var + norm.eps) * norm.weight + norm.bias


def _ffn(x, block):
    first, second = block.ffn[0], block.ffn[2]
    hidden = x @ first.weight.T + first.bias
    return (0.5 * hidden * (1 + torch.erf(hidden / math.sqrt(2)))) @ second.weight.T + second.bias


@pytest.mark.parametrize("norm", NORMS)
def test_block_computes_the_papers_equations(norm):
    torch.manual_seed(0)
    block = Block("fft", 8, 12, 20, norm=norm).double()
    for p in block.parameters():  # LayerNorm's 1 and 0 would hide a swapped weight and bias
        torch.nn.init.normal_(p)
    x = torch.randn(3, 8, 12, dtype=torch.float64)
    mixed = torch.fft.fft2(x).real  # Re(F_n X F_d), independently of the mixer's code
    if norm == "post":
        y = _layer_norm(x + mixed, block.norm1)
        expected = _layer_norm(y + _ffn(y, block), block.norm2)
    elif norm == "pre":
        y = x + torch.fft.fft2(_layer_norm(x, block.norm1)).real
        expected = y + _ffn(_layer_norm(y, block.norm2), block)
    else:
        y = x + _layer_norm(torch.fft.fft2(_layer_norm(x, block.norm1)).real, block.out_norm1)
        expected = y + _layer_norm(_ffn(_layer_norm(y, block.norm2), block), block.out_norm2)
    torch.testing.assert_close(block.mixing(x), y, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(block(x), expected, rtol=1e-12, atol=1e-12)


def test_peri_norm_by_hand_on_a_tiny_block():
    """x + LN₁ₒ(mix(LN₁(x))) on numbers worked out by hand: 1 token, width 2, the `linear` mixer (W_n X W_d)."""
    block = Block("linear", 1, 2, 1, norm="peri").double()
    with torch.no_grad():
        block.mixer.seq_weight.fill_(3.0)  # a 1x1 token matrix and the identity on features: mix(h) = 3·h
        block.mixer.dim_weight.copy_(torch.eye(2))
        block.out_norm1.weight.copy_(torch.tensor([2.0, 1.0]))
        block.out_norm1.bias.copy_(torch.tensor([0.5, 0.0]))
    x = torch.tensor([[[1.0, 5.0]]], dtype=torch.float64)
    # LN₁(x) = (x - 3) / 2 = (-1, 1) (eps aside); mix = (-3, 3); LN₁ₒ(mix) = (-1, 1)·(2, 1) + (0.5, 0) = (-1.5, 1)
    # whatever the mixer's gain (3 here), its contribution enters the stream at LN₁ₒ's scale
    torch.testing.assert_close(block.mixing(x), torch.tensor([[[1.0 - 1.5, 5.0 + 1.0]]], dtype=torch.float64),
                               rtol=1e-5, atol=1e-5)
    with torch.no_grad():
        block.mixer.seq_weight.fill_(300.0)
    torch.testing.assert_close(block.mixing(x), torch.tensor([[[-0.5, 6.0]]], dtype=torch.float64),
                               rtol=1e-5, atol=1e-5)


def test_block_refuses_bad_norm_and_width():
    with pytest.raises(ValueError, match="unknown norm 'middle' \\(allowed: post, pre, peri\\)"):
        Block("fft", 8, 12, 20, norm="middle")
    with pytest.raises(ValueError, match="ffn must be a positive width"):
        Block("fft", 8, 12, 0)
    with pytest.raises(mixers.UnsupportedError, match="powers of two"):
        Block("hadamard", 12, 16, 20)


def test_block_passes_each_mixer_only_its_options():
    attention = Block("attention", 8, 64, 16, mixer_options={"head_dim": 32, "expansion": 3})
    assert attention.mixer.head_dim == 32 and attention.mixer.heads == 2
    mlp = Block("mlp-mixer", 8, 64, 16, mixer_options={"head_dim": 32, "expansion": 3})
    assert mlp.mixer.expansion == 3
    Block("fft", 8, 64, 16, mixer_options={"head_dim": 32, "expansion": 3})


def test_options_for_filters_by_constructor_signature(monkeypatch):
    options = {"head_dim": 32, "expansion": 3, "method": "fft", "seq_len": 5, "dim": 7}
    assert options_for("attention", options) == {"head_dim": 32}
    assert options_for("attention-naive", options) == {"head_dim": 32}
    assert options_for("mlp-mixer", options) == {"expansion": 3}
    assert options_for("dct", options) == {"method": "fft"}
    assert options_for("fft", options) == {}
    assert options_for("linear", options) == {}
    assert options_for("attention", None) == {}

    class TakesAnything(mixers.TokenMixer):
        def __init__(self, seq_len, dim, **options):
            super().__init__(seq_len, dim)

    class KeywordOnly(mixers.TokenMixer):
        def __init__(self, seq_len, dim, *, method="x"):
            super().__init__(seq_len, dim)

    # in a copy of the registry, so no other test sees these
    monkeypatch.setattr(mixers.REGISTRY, "classes", {**mixers.REGISTRY.classes, "takes-anything": TakesAnything,
                                                     "keyword-only": KeywordOnly})
    assert options_for("takes-anything", options) == {"head_dim": 32, "expansion": 3, "method": "fft"}
    assert options_for("keyword-only", options) == {"method": "fft"}
    with pytest.raises(mixers.UnknownMixerError):
        options_for("nope", options)


def _block_flops(name, seq_len, dim, ffn, batch, norms=2):
    """Forward FLOPs of a block counted independently of bench.models.cost (`norms` LayerNorms)."""
    rows = batch * seq_len
    mixer = mixers.get(name).flops(seq_len, dim, batch)
    feed_forward = rows * (2 * dim * ffn + ffn) + rows * 5 * ffn + rows * (2 * ffn * dim + dim)
    return mixer + feed_forward + norms * 7 * rows * dim + 2 * rows * dim


@pytest.mark.parametrize("norm", NORMS)
@pytest.mark.parametrize("name", NAMES)
def test_block_flops_are_the_mixer_and_the_layers_around_it(name, norm, small):
    seq_len, dim = small(name)
    block_parts = parts("block", name, seq_len, dim, 3, torch.float32, "forward", ffn=FFN, norm=norm)
    assert total(block_parts)[0] == _block_flops(name, seq_len, dim, FFN, 3, norms=4 if norm == "peri" else 2)
    assert [p.name for p in block_parts if p.name.startswith("mixer")] == [f"mixer:{name}"]


@pytest.mark.parametrize("name", ["linear", "dft-matrix", "hadamard", "dct"])
def test_block_matmul_flops_match_torch_flop_counter(name, small):
    """These mixers are matrix products only, so the counter (which sees only matmuls) sees them whole."""
    seq_len, dim = small(name)
    block = Block(name, seq_len, dim, FFN)
    with FlopCounterMode(display=False) as counter:
        block(torch.randn(BATCH, seq_len, dim))
    matmuls = mixers.get(name).flops(seq_len, dim, BATCH) + 2 * (2 * BATCH * seq_len * dim * FFN)
    assert counter.get_total_flops() == matmuls
