"""Every registered mixer — built in, README example, or added later — against the TokenMixer contract."""

import pytest
import torch

import mixers
from mixers import _spectral

# Small shapes; each mixer gets the first one it supports (attention needs dim % 64 == 0, hadamard powers of two).
CANDIDATE_SHAPES = [(16, 64), (16, 128), (8, 64), (15, 12)]
# Points a mixer may refuse: an unsupported dtype on CPU (every built-in refuses it), odd sizes, nonsense.
CANDIDATE_REFUSALS = [(16, 64, torch.bfloat16), (16, 64, torch.float16), (12, 100, torch.float32),
                      (100, 12, torch.float32), (0, 64, torch.float32)]
NAMES = mixers.available()


def shape_for(name):
    cls = mixers.get(name)
    for seq_len, dim in CANDIDATE_SHAPES:
        if all(cls.supports(seq_len, dim, dtype, "cpu") for dtype in mixers.CPU_DTYPES):
            return seq_len, dim
    pytest.fail(f"{name} supports none of {CANDIDATE_SHAPES} in float32 and float64 on CPU")


def make(name, dtype=torch.float64, seed=0):
    seq_len, dim = shape_for(name)
    torch.manual_seed(seed)
    module = mixers.build(name, seq_len, dim, dtype=dtype, device="cpu")
    x = torch.randn(2, seq_len, dim, dtype=dtype, generator=torch.Generator().manual_seed(seed + 1))
    return module, x


@pytest.mark.parametrize("dtype", mixers.CPU_DTYPES, ids=str)
@pytest.mark.parametrize("name", NAMES)
def test_forward_keeps_shape_dtype_and_is_finite(name, dtype):
    module, x = make(name, dtype)
    out = module(x)
    assert out.shape == x.shape
    assert out.dtype == dtype
    assert out.device == x.device
    assert torch.isfinite(out).all()
    assert mixers.get(name).compute_dtype(dtype, "cpu", seq_len=x.shape[1], dim=x.shape[2]) == dtype


@pytest.mark.parametrize("name", NAMES)
def test_gradients_reach_input_and_every_parameter(name):
    module, x = make(name)
    x.requires_grad_(True)
    out = module(x)
    # random weights: a plain sum can cancel (the sum of an FFT's outputs sees only x[0, 0])
    (out * torch.randn(out.shape, dtype=out.dtype, generator=torch.Generator().manual_seed(7))).sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    for param_name, param in module.named_parameters():
        assert param.grad is not None, param_name
        assert param.grad.abs().sum() > 0, param_name


@pytest.mark.parametrize("name", NAMES)
def test_input_gradient_matches_finite_differences(name):
    """Catches a wrong hand-written backward (e.g. a self-adjoint shortcut on a map that is not)."""
    module, x = make(name)
    x = x[:1].clone().requires_grad_(True)
    assert torch.autograd.gradcheck(module, (x,), eps=1e-6, atol=1e-7, rtol=1e-5, fast_mode=True)


@pytest.mark.parametrize("name", NAMES)
def test_samples_in_a_batch_do_not_influence_each_other(name):
    module, x = make(name)
    with torch.no_grad():
        out = module(x)
        perturbed = x.clone()
        perturbed[0] += torch.randn(perturbed[0].shape, dtype=x.dtype, generator=torch.Generator().manual_seed(3))
        torch.testing.assert_close(module(perturbed)[1], out[1], rtol=1e-12, atol=1e-12)
        one_at_a_time = torch.cat([module(x[:1]), module(x[1:])])
        torch.testing.assert_close(out, one_at_a_time, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("name", NAMES)
def test_runs_in_inference_mode_then_trains(name):
    # Cached constants built under inference_mode must still be usable in a backward later.
    _spectral.clear_caches()
    module, x = make(name)
    with torch.inference_mode():
        module(x)
    x.requires_grad_(True)
    module(x).square().sum().backward()
    assert x.grad is not None


@pytest.mark.parametrize("name", NAMES)
def test_param_count_matches_the_module(name):
    module, x = make(name)
    cls = mixers.get(name)
    assert cls.param_count(*x.shape[1:]) == sum(p.numel() for p in module.parameters())


@pytest.mark.parametrize("name", NAMES)
def test_class_methods_answer_without_building(name):
    cls = mixers.get(name)
    seq_len, dim = shape_for(name)
    for dtype in (torch.float32, torch.float64, torch.bfloat16, torch.float16):
        for device in ("cpu", "cuda"):
            assert isinstance(cls.compute_dtype(dtype, device), torch.dtype)
            assert isinstance(cls.compute_dtype(dtype, device, seq_len=seq_len, dim=dim), torch.dtype)
    for mode in ("forward", "train"):
        for dtype in (torch.float32, torch.float16):
            cost = cls.cost(seq_len, dim, batch=3, dtype=dtype, mode=mode)
            for value in cost:
                assert type(value) is int and value >= 0, (mode, cost)
    assert type(cls.param_count(seq_len, dim)) is int
    assert isinstance(cls.constraints, str)


@pytest.mark.parametrize("name", NAMES)
def test_build_honours_refusals_with_the_same_reason(name):
    cls = mixers.get(name)
    refused = [(n, d, dtype) for n, d, dtype in CANDIDATE_REFUSALS if not cls.supports(n, d, dtype, "cpu")]
    assert (16, 64, torch.bfloat16) in refused  # every mixer runs only float32/float64 on CPU
    for seq_len, dim, dtype in refused:
        reason = cls.supports(seq_len, dim, dtype, "cpu").reason
        assert reason, (seq_len, dim, dtype)
        with pytest.raises(mixers.UnsupportedError) as error:
            mixers.build(name, seq_len, dim, dtype=dtype, device="cpu")
        assert str(error.value) == reason
