"""Causal mixing across the registry: every mixer that declares a causal form leaks nothing from the future
(float64 gradients, before and after a training step); every other mixer refuses causal=True with one line."""

import pytest
import torch

import mixers
from mixers.linear_attention import causal_linear_attention, feature_map

# Small shapes; each mixer gets the first one it supports (attention needs dim % 64 == 0, gmlp an even dim).
CANDIDATE_SHAPES = [(11, 64), (11, 12)]
NAMES = mixers.available()
CAUSAL = [name for name in NAMES if mixers.get(name).causal_form]
NOT_CAUSAL = [name for name in NAMES if not mixers.get(name).causal_form]
# the FFT long convolution leaves float64 round-off (~1e-17) where the causal filter has exact zeros
LEAK_TOLERANCE = 1e-12


def shape_for(name, **options):
    cls = mixers.get(name)
    for seq_len, dim in CANDIDATE_SHAPES:
        if cls.supports(seq_len, dim, torch.float64, "cpu", causal=True, **options):
            return seq_len, dim
    pytest.fail(f"{name} supports none of {CANDIDATE_SHAPES} causally in float64 on CPU")


def make(name, seed=0, **options):
    seq_len, dim = shape_for(name, **options)
    torch.manual_seed(seed)
    module = mixers.build(name, seq_len, dim, dtype=torch.float64, causal=True, **options)
    x = torch.randn(2, seq_len, dim, dtype=torch.float64, generator=torch.Generator().manual_seed(seed + 1))
    return module, x


def assert_no_future_leak(module, x):
    """For several t: d(out[:, t]·w)/dx is zero after t and not zero at or before t."""
    seq_len = x.shape[1]
    weights = torch.randn(x.shape[0], x.shape[2], dtype=x.dtype, generator=torch.Generator().manual_seed(5))
    for step in sorted({0, 1, seq_len // 2, seq_len - 2}):
        x = x.detach().requires_grad_(True)
        (module(x)[:, step] * weights).sum().backward()
        grad = x.grad.abs()
        past, future = grad[:, :step + 1].amax(), grad[:, step + 1:].amax()
        assert past > 0, f"out[{step}] depends on no input at all"
        assert future <= LEAK_TOLERANCE * past, f"out[{step}] depends on a later input (gradient {future:.3g})"


@pytest.mark.parametrize("name", CAUSAL)
def test_causal_output_depends_on_no_later_input(name):
    module, x = make(name)
    assert module.causal
    assert_no_future_leak(module, x)


@pytest.mark.parametrize("name", CAUSAL)
def test_causal_after_a_training_step(name):
    module, x = make(name)
    module.train()
    parameters = list(module.parameters())
    if parameters:  # pool has none: train mode alone
        before = [parameter.detach().clone() for parameter in parameters]
        optimizer = torch.optim.AdamW(parameters, lr=1e-1, weight_decay=0.1)
        target = torch.randn(x.shape, dtype=x.dtype, generator=torch.Generator().manual_seed(9))
        ((module(x) - target) ** 2).mean().backward()
        optimizer.step()
        optimizer.zero_grad()
        assert any(not torch.equal(old, new) for old, new in zip(before, parameters))
    assert_no_future_leak(module, x)


@pytest.mark.parametrize("name", ["linear", "gmlp"])
def test_masked_token_weights_get_no_gradient(name):
    module, x = make(name)
    (module(x) * torch.randn(x.shape, dtype=x.dtype)).sum().backward()
    grad = module.seq_weight.grad
    assert grad.triu(1).abs().max() == 0
    assert grad.tril().abs().max() > 0


def test_mlp_mixer_masks_keep_a_fractional_expansion_causal():
    module, x = make("mlp-mixer", expansion=1.5)
    assert module.fc1.out_features == round(1.5 * x.shape[1])
    assert_no_future_leak(module, x)
    (module(x) * torch.randn(x.shape, dtype=x.dtype)).sum().backward()
    assert (module.fc1.weight.grad == 0).any() and (module.fc2.weight.grad == 0).any()


@pytest.mark.parametrize("seq_len, chunk_len", [(11, 4), (70, 64), (8, 8)])
def test_causal_linear_attention_matches_the_masked_quadratic_form(seq_len, chunk_len):
    generator = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(2, 3, seq_len, 5, dtype=torch.float64, generator=generator) for _ in range(3))
    q, k = feature_map(q), feature_map(k)
    scores = (q @ k.transpose(-2, -1)).tril()
    expected = (scores @ v) / scores.sum(dim=-1, keepdim=True)
    torch.testing.assert_close(causal_linear_attention(q, k, v, chunk_len), expected, rtol=1e-12, atol=1e-12)


def test_causal_linear_attention_across_chunks_leaks_nothing():
    torch.manual_seed(0)
    module = mixers.build("linear-attention", 70, 64, dtype=torch.float64, causal=True)
    assert_no_future_leak(module, torch.randn(1, 70, 64, dtype=torch.float64))


@pytest.mark.parametrize("window", [1, 3, 4])
def test_causal_pool_averages_the_tokens_it_has(window):
    x = torch.randn(2, 7, 3, dtype=torch.float64)
    out = mixers.build("pool", 7, 3, dtype=torch.float64, causal=True, window=window)(x)
    expected = torch.stack([x[:, max(0, t - window + 1):t + 1].mean(dim=1) for t in range(7)], dim=1) - x
    torch.testing.assert_close(out, expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("name", ["attention", "attention-naive"])
def test_causal_attention_matches_a_masked_softmax(name):
    torch.manual_seed(0)
    module = mixers.build(name, 9, 64, dtype=torch.float64, causal=True)
    x = torch.randn(2, 9, 64, dtype=torch.float64)
    q, k, v = module.qkv(x).chunk(3, dim=-1)  # one head of 64
    scores = (q @ k.transpose(-2, -1)) / 8
    scores = scores.masked_fill(torch.ones(9, 9, dtype=torch.bool).triu(1), float("-inf"))
    torch.testing.assert_close(module(x), module.out(scores.softmax(-1) @ v), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("name", CAUSAL)
def test_the_default_stays_bidirectional_where_it_was(name):
    seq_len, dim = shape_for(name)
    module = mixers.build(name, seq_len, dim)
    assert module.causal == (name == "mamba")  # Mamba's scan is causal in every form


@pytest.mark.parametrize("name", NOT_CAUSAL)
def test_no_causal_form_refuses_with_one_line(name):
    cls = mixers.get(name)
    seq_len, dim = 16, 64
    assert cls.supports(seq_len, dim), name  # the point itself is fine
    support = cls.supports(seq_len, dim, causal=True)
    assert not support
    assert "\n" not in support.reason and name in support.reason and "causal" in support.reason
    assert support.reason == cls.causal_refusal()
    with pytest.raises(mixers.UnsupportedError) as error:
        mixers.build(name, seq_len, dim, causal=True)
    assert str(error.value) == support.reason
    assert not mixers.build(name, seq_len, dim, causal=False).causal


def test_the_fnet_family_says_it_has_no_causal_form():
    for name in ("fft", "hartley", "dct", "hadamard", "gfnet", "dft-matrix", "dft-monarch"):
        assert name in NOT_CAUSAL
        assert "no causal form" in mixers.get(name).causal_refusal()


def test_a_new_mixer_is_not_assumed_causal():
    class Plain(mixers.TokenMixer):  # not registered: the registry stays as it is
        def forward(self, x):
            return x

    assert Plain.supports(8, 4)
    support = Plain.supports(8, 4, causal=True)
    assert not support and "Plain declares no causal form" in support.reason


def test_every_causal_form_takes_the_causal_option():
    for name in CAUSAL:
        seq_len, dim = shape_for(name)
        assert mixers.get(name)(seq_len, dim, causal=True).causal


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16], ids=str)
@pytest.mark.parametrize("name", CAUSAL)
def test_causal_forms_on_cuda_leak_nothing(name, dtype):
    """SDPA's causal kernels and the chunked forms in half precision: later tokens leave earlier outputs alone."""
    seq_len, dim = 200, 128  # linear attention: several chunks and a padded one
    torch.manual_seed(0)
    module = mixers.build(name, seq_len, dim, dtype=dtype, device="cuda", causal=True)
    x = torch.randn(2, seq_len, dim, dtype=dtype, device="cuda")
    changed = x.clone()
    changed[:, 120:] = torch.randn(2, seq_len - 120, dim, dtype=dtype, device="cuda")
    with torch.no_grad():
        out, moved = module(x), module(changed)
    assert torch.isfinite(out).all()
    # FFT convolutions (hyena) and some convolution kernels leave round-off, a leak would be of the output's size
    tolerance = 1e-5 if dtype == torch.float32 else 2e-2
    leak = (moved[:, :120] - out[:, :120]).abs().max()
    assert leak <= tolerance * out.abs().max(), leak
    assert not torch.equal(moved[:, 120:], out[:, 120:])


def test_a_mixer_without_a_causal_form_never_sees_the_option():
    class Strict(mixers.TokenMixer):  # a check() written before causal existed, without **options
        @classmethod
        def check(cls, seq_len, dim, dtype, device):
            return None

        def forward(self, x):
            return x

    assert Strict.supports(8, 4, causal=False)
    assert not Strict.supports(8, 4, causal=True)
