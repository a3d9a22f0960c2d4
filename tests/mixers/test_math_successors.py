"""gfnet, hyena, linear-attention, mamba, pool, gmlp and dft-monarch against independent float64
references written from their papers' equations (numpy and explicit loops), plus their FLOPs, refusals
and half-precision paths. The registry-wide checks (shapes, gradients by finite differences, batch
independence) are in test_conformance.py.
"""

import copy
import math

import numpy as np
import pytest
import torch
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.flop_counter import FlopCounterMode

import mixers
from bench.measuring import plan
from mixers import mamba as mamba_module
from mixers import pool as pool_module

NEW = ["gfnet", "hyena", "linear-attention", "mamba", "pool", "gmlp", "dft-monarch"]


def relative_error(out, ref):
    out = out.detach().double().numpy() if isinstance(out, torch.Tensor) else out
    return np.linalg.norm(out - ref) / np.linalg.norm(ref)


def run(name, shape, dtype=torch.float64, **options):
    """(out, x as numpy, module): a fresh module (fixed seed) on a random input."""
    torch.manual_seed(1)
    module = mixers.build(name, shape[1], shape[2], dtype=dtype, **options)
    x = torch.randn(shape, dtype=dtype, generator=torch.Generator().manual_seed(sum(shape)))
    with torch.no_grad():
        return module(x), x.double().numpy(), module


def params(module):
    """The module's parameters as float64 numpy arrays, by name."""
    return {name: p.detach().double().numpy() for name, p in module.named_parameters()}


def check(name, shape, reference, **options):
    """float64 within 1e-9 of the reference, float32 within 1e-5."""
    out, x, module = run(name, shape, **options)
    assert relative_error(out, reference(x, params(module))) <= 1e-9
    out32, x32, module32 = run(name, shape, torch.float32, **options)
    assert out32.dtype == torch.float32
    assert relative_error(out32, reference(x32, params(module32))) <= 1e-5


def silu(x):
    return x / (1 + np.exp(-x))


def softplus(x):
    return np.log1p(np.exp(x))


# --- gfnet ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("shape", [(2, 15, 12), (3, 8, 7), (1, 1, 4)], ids=str)
def test_gfnet_is_a_global_filter_in_the_2d_spectrum(shape):
    def reference(x, p):
        weight = p["complex_weight"][..., 0] + 1j * p["complex_weight"][..., 1]
        return np.fft.irfft2(np.fft.rfft2(x, norm="ortho") * weight, s=x.shape[-2:], norm="ortho")
    check("gfnet", shape, reference)


def test_gfnet_with_a_unit_filter_is_the_identity():
    module = mixers.build("gfnet", 9, 6, dtype=torch.float64)
    with torch.no_grad():
        module.complex_weight.copy_(torch.tensor([1.0, 0.0]))
    x = torch.randn(2, 9, 6, dtype=torch.float64)
    assert relative_error(module(x), x.numpy()) <= 1e-12
    assert module.complex_weight.shape == (9, 4, 2)


# --- hyena ---------------------------------------------------------------------------------------

def hyena_reference(x, p, causal):
    """Hyena of order 2 with loops over lags, from the paper's equations; filters from safari's recipe."""
    batch, n, d = x.shape
    t = np.linspace(0, 1, n)
    angle = 1e-4 * 2 * np.pi * np.arange(n) / n
    h = np.stack([t, np.cos(angle), -np.sin(angle)], axis=1)
    for i in range(3):
        h = np.sin(p["filter_freq"] * (h @ p[f"filter_layers.{i}.weight"].T + p[f"filter_layers.{i}.bias"]))
    h = h @ p["filter_out.weight"].T  # (n, directions·d)
    deltas = np.abs(np.linspace(math.log(1e-2) / 1.5, math.log(1e-2) / 0.3, d))
    window = np.exp(-t[:, None] * deltas)
    forward_filter = h[:, :d] * window
    backward_filter = None if causal else h[:, d:] * window
    conv_w, conv_b = p["short_conv.weight"][:, 0, :], p["short_conv.bias"]  # (3d, 3)
    offsets = [-2, -1, 0] if causal else [-1, 0, 1]
    out = np.zeros_like(x)
    for sample in range(batch):
        u = x[sample] @ p["in_proj.weight"].T + p["in_proj.bias"]  # (n, 3d)
        uc = np.tile(conv_b, (n, 1))
        for k, offset in enumerate(offsets):
            for step in range(n):
                if 0 <= step + offset < n:
                    uc[step] += conv_w[:, k] * u[step + offset]
        x0, x1, v = uc[:, :d], uc[:, d:2 * d], uc[:, 2 * d:]
        w = x1 * v
        y = p["skip"] * w
        for step in range(n):
            for s in range(n):
                if s <= step:
                    y[step] += forward_filter[step - s] * w[s]
                if not causal and s >= step:
                    y[step] += backward_filter[s - step] * w[s]
        out[sample] = (x0 * y) @ p["out_proj.weight"].T + p["out_proj.bias"]
    return out


@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("shape", [(2, 9, 6), (1, 16, 8)], ids=str)
def test_hyena_matches_explicit_convolutions(shape, causal):
    check("hyena", shape, lambda x, p: hyena_reference(x, p, causal), causal=causal)


@pytest.mark.parametrize("causal", [False, True])
def test_hyena_sees_the_future_only_when_bidirectional(causal):
    torch.manual_seed(0)
    module = mixers.build("hyena", 12, 8, dtype=torch.float64, causal=causal)
    x = torch.randn(1, 12, 8, dtype=torch.float64)
    changed = x.clone()
    changed[:, 7:] += 1
    with torch.no_grad():
        difference = (module(changed) - module(x))[:, :7].abs().max().item()
    # the FFT convolution leaves float64 round-off (~1e-17) where the causal filter has exact zeros
    assert (difference < 1e-12) == causal, difference


def test_hyena_default_is_bidirectional_with_two_filters_per_channel():
    module = mixers.build("hyena", 12, 8)
    assert not module.causal and module.filter_out.out_features == 16
    assert mixers.build("hyena", 12, 8, causal=True).filter_out.out_features == 8
    assert mixers.get("hyena").param_count(12, 8) == sum(p.numel() for p in module.parameters())


# --- linear attention ----------------------------------------------------------------------------

def elu_plus_one(x):
    return np.where(x > 0, x + 1, np.exp(x))


def linear_attention_reference(x, p, head_dim):
    """Katharopoulos et al. eq. 6 per head: φ(Q)(φ(K)ᵀV) / (φ(Q)(φ(K)ᵀ1)), then the output projection."""
    dim = x.shape[-1]
    out = np.empty_like(x)
    for sample in range(x.shape[0]):
        qkv = x[sample] @ p["qkv.weight"].T + p["qkv.bias"]
        heads = []
        for head in range(dim // head_dim):
            columns = slice(head * head_dim, (head + 1) * head_dim)
            q, k, v = (qkv[:, part * dim:(part + 1) * dim][:, columns] for part in range(3))
            q, k = elu_plus_one(q), elu_plus_one(k)
            heads.append((q @ (k.T @ v)) / (q @ k.sum(axis=0))[:, None])
        out[sample] = np.concatenate(heads, axis=1) @ p["out.weight"].T + p["out.bias"]
    return out


@pytest.mark.parametrize("shape, head_dim", [((2, 15, 12), 4), ((3, 32, 24), 8), ((1, 63, 64), 64)], ids=str)
def test_linear_attention_is_katharopoulos_eq_6(shape, head_dim):
    check("linear-attention", shape, lambda x, p: linear_attention_reference(x, p, head_dim), head_dim=head_dim)


def test_linear_attention_refuses_dims_the_heads_do_not_divide():
    assert "divisible by head_dim=64" in mixers.get("linear-attention").supports(16, 96).reason


# --- mamba ---------------------------------------------------------------------------------------

def recurrence(u, delta, A, B, C):
    """h_t = exp(Δ_t A) ⊙ h_{t−1} + Δ_t u_t B_t, y_t = h_t C_t, one step at a time (numpy float64)."""
    batch, n, e = u.shape
    y = np.zeros((batch, n, e))
    for sample in range(batch):
        h = np.zeros(A.shape)
        for t in range(n):
            h = np.exp(delta[sample, t][:, None] * A) * h + (delta[sample, t] * u[sample, t])[:, None] * B[sample, t]
            y[sample, t] = h @ C[sample, t]
    return y


def scan_inputs(n, e=3, d_state=4, batch=2, dtype=torch.float64, delta_scale=1.0, seed=0):
    g = torch.Generator().manual_seed(seed)
    u = torch.randn(batch, n, e, generator=g, dtype=dtype)
    delta = torch.rand(batch, n, e, generator=g, dtype=dtype) * delta_scale
    A = -torch.rand(e, d_state, generator=g, dtype=dtype) * 4 - 0.1
    B = torch.randn(batch, n, d_state, generator=g, dtype=dtype)
    C = torch.randn(batch, n, d_state, generator=g, dtype=dtype)
    return u, delta, A, B, C


@pytest.mark.parametrize("chunk_len", [1, 3, 4, 7, 13, 20])
def test_chunked_scan_matches_the_step_by_step_recurrence(chunk_len):
    inputs = scan_inputs(13)
    y = mamba_module.selective_scan_chunked(*inputs, chunk_len)
    assert relative_error(y, recurrence(*(t.numpy() for t in inputs))) <= 1e-9


def test_chunked_scan_is_safe_where_decays_are_extreme():
    # Δ·A down to about −400: exp of the cumulative sum underflows to 0, it never overflows
    inputs = scan_inputs(40, delta_scale=100.0, seed=3)
    reference = recurrence(*(t.numpy() for t in inputs))
    y32 = mamba_module.selective_scan_chunked(*(t.float() for t in inputs), 8)
    assert torch.isfinite(y32).all()
    assert relative_error(y32, reference) <= 1e-5


def test_chunked_scan_gradients_match_finite_differences():
    inputs = [t.requires_grad_(True) for t in scan_inputs(5, e=2, d_state=2, batch=1)]
    assert torch.autograd.gradcheck(lambda *args: mamba_module.selective_scan_chunked(*args, 2), inputs)


def mamba_reference(x, p, d_state=16, d_conv=4):
    """Mamba's block from the paper's equations, the scan one step at a time."""
    batch, n, d = x.shape
    inner, rank = p["D"].shape[0], math.ceil(d / 16)
    xz = x @ p["in_proj.weight"].T
    u, z = xz[..., :inner], xz[..., inner:]
    conv = np.tile(p["conv1d.bias"], (batch, n, 1))
    for k in range(d_conv):  # tap k sees token t − (d_conv − 1) + k
        lag = d_conv - 1 - k
        conv[:, lag:] += p["conv1d.weight"][:, 0, k] * u[:, :n - lag]
    u = silu(conv)
    dbc = u @ p["x_proj.weight"].T
    dt, B, C = dbc[..., :rank], dbc[..., rank:rank + d_state], dbc[..., rank + d_state:]
    delta = softplus(dt @ p["dt_proj.weight"].T + p["dt_proj.bias"])
    y = recurrence(u, delta, -np.exp(p["A_log"]), B, C) + p["D"] * u
    return (y * silu(z)) @ p["out_proj.weight"].T


@pytest.mark.parametrize("options", [{}, {"chunk_len": 3}, {"d_state": 2, "expand": 1}], ids=str)
def test_mamba_matches_the_explicit_block(options):
    d_state = options.get("d_state", 16)
    check("mamba", (2, 11, 8), lambda x, p: mamba_reference(x, p, d_state), **options)


def test_mamba_is_causal_and_reports_its_scan_path():
    module = mixers.build("mamba", 12, 8, dtype=torch.float64)
    assert "scan_path=not run yet" in repr(module)
    x = torch.randn(1, 12, 8, dtype=torch.float64)
    changed = x.clone()
    changed[:, 7:] += 1
    with torch.no_grad():
        assert torch.equal(module(changed)[:, :7], module(x)[:, :7])
    assert module.scan_path == "chunked" and "scan_path=chunked" in repr(module)
    assert module.dt_rank == 1 and module.A_log.shape == (16, 16)


def test_mamba_kernel_option_is_validated():
    cls = mixers.get("mamba")
    if mamba_module.fused_scan() is None:
        reason = cls.supports(16, 64, kernel="cuda").reason
        assert "mamba_ssm" in reason and "CUDA" in reason
    assert "unknown kernel 'triton'" in cls.supports(16, 64, kernel="triton").reason
    assert "chunk_len=0" in cls.supports(16, 64, chunk_len=0).reason
    assert cls.supports(16, 64, kernel="chunked")


# --- pool ----------------------------------------------------------------------------------------

def pool_reference(x, window):
    pad = window // 2
    n = x.shape[1]
    out = np.empty_like(x)
    for t in range(n):
        lo, hi = max(0, t - pad), min(n, t + pad + 1)
        out[:, t] = x[:, lo:hi].mean(axis=1) - x[:, t]
    return out


@pytest.mark.parametrize("shape, window", [((2, 15, 12), 3), ((1, 9, 4), 5), ((2, 2, 3), 5), ((3, 4, 2), 7)],
                         ids=str)
def test_pool_is_window_mean_minus_input(shape, window):
    check("pool", shape, lambda x, p: pool_reference(x, window), window=window)


def test_pool_refuses_an_even_window():
    assert "odd window" in mixers.get("pool").supports(16, 64, window=4).reason


# --- gmlp ----------------------------------------------------------------------------------------

def gmlp_reference(x, p):
    half = x.shape[-1] // 2
    u, v = x[..., :half], x[..., half:]
    mean, var = v.mean(axis=-1, keepdims=True), v.var(axis=-1, keepdims=True)
    v = (v - mean) / np.sqrt(var + 1e-5) * p["norm.weight"] + p["norm.bias"]
    gate = np.einsum("ts,bsc->btc", p["seq_weight"], v) + p["seq_bias"][:, None]
    return (u * gate) @ p["proj.weight"].T + p["proj.bias"]


@pytest.mark.parametrize("shape", [(2, 15, 12), (1, 7, 2), (3, 32, 24)], ids=str)
def test_gmlp_is_the_spatial_gating_unit(shape):
    check("gmlp", shape, gmlp_reference)


def test_gmlp_starts_near_the_identity_gate_and_refuses_odd_dims():
    module = mixers.build("gmlp", 16, 8)
    assert torch.equal(module.seq_bias, torch.ones(16))
    assert module.seq_weight.abs().max() <= 1e-3 / 16
    assert "dim must be even, got dim=7" in mixers.get("gmlp").supports(16, 7).reason


# --- dft-monarch ---------------------------------------------------------------------------------

@pytest.mark.parametrize("shape", [(2, 15, 12), (3, 16, 64), (1, 13, 7), (2, 1, 1), (1, 96, 30)], ids=str)
def test_dft_monarch_is_the_real_part_of_the_2d_dft(shape):
    check("dft-monarch", shape, lambda x, p: np.fft.fft2(x).real)


def test_dft_monarch_factors_and_refusals():
    cls = mixers.get("dft-monarch")
    assert cls.factors(384, 768) == (16, 24, 32, 24)  # n1 · n2, d1 · d2; n1 and d2 the small factors
    assert cls.supports(13, 64) and cls.supports(1000, 30) and cls.supports(64, 62)
    assert "seq_len=17 = 1·17" in cls.supports(17, 64).reason
    assert "dim=74 = 2·37" in cls.supports(16, 74).reason


# --- FLOPs ---------------------------------------------------------------------------------------

def counted_flops(name, seq_len, dim, batch, **options):
    module = mixers.build(name, seq_len, dim, **options)
    with torch.no_grad(), sdpa_kernel(SDPBackend.MATH), FlopCounterMode(display=False) as counter:
        module(torch.randn(batch, seq_len, dim))
    return counter.get_total_flops()


@pytest.mark.parametrize("name, seq_len, dim, options", [
    ("linear-attention", 20, 24, {"head_dim": 8}),
    ("gmlp", 20, 24, {}),
    ("dft-monarch", 20, 24, {}),
    ("dft-monarch", 13, 7, {}),
    ("hyena", 20, 24, {}),
    ("hyena", 20, 24, {"causal": True}),
], ids=str)
def test_matrix_product_flops_equal_the_counters(name, seq_len, dim, options):
    cls = mixers.get(name)
    batch = 3
    if name == "hyena":  # the filter network runs once per call, whatever the batch
        expected = cls.matmul_flops(seq_len, dim, batch, **options)
    else:
        expected = batch * cls.matmul_flops(seq_len, dim, **options)
    assert counted_flops(name, seq_len, dim, batch, **options) == expected


def test_mamba_matrix_product_flops_equal_the_counters():
    cls = mixers.get("mamba")
    seq_len, dim, batch, d_state, chunk_len = 20, 24, 3, 4, 6
    counted = counted_flops("mamba", seq_len, dim, batch, d_state=d_state, chunk_len=chunk_len)
    # the scan's h·C products: every padded token inside chunks, and again for chunks after the first
    inner, padded, carried = 2 * dim, 24, 18
    scan_products = 2 * inner * d_state * (padded + carried)
    assert counted == batch * (cls.matmul_flops(seq_len, dim, d_state=d_state) + scan_products)


def test_elementwise_flops_by_hand():
    # gfnet: rfft2 and irfft2 (8 real FFTs of 16, 9 complex of 8 each) and a complex multiply per kept value
    assert mixers.get("gfnet").flops(8, 16, batch=2) == 2 * (2 * (8 * 2.5 * 16 * 4 + 9 * 5 * 8 * 3) + 6 * 8 * 9)
    # pool, window 3 over 4 tokens: windows of 2, 3, 3, 2 terms -> (terms − 1) adds, a divide, a subtract
    assert mixers.get("pool").flops(4, 2) == 2 * (1 + 2 + 2 + 1 + 4 * 2)
    assert pool_module.window_terms(2, 5) == 4 and pool_module.window_terms(9, 5) == 9 * 5 - 2 * 3
    # the chunked scan at n=5, L=2 (3 chunks, 6 padded tokens), e=2, N=3: inside the chunks 7 per
    # (t, e, N) and 1 per (t, e), but 3 per (e, N) at each chunk's first step; then the carried state
    inside = 6 * 2 * (7 * 3 + 1) - 3 * 2 * 3 * 4
    assert mamba_module.scan_flops(5, 2, 3, 2) == inside + 2 * (2 * 2 * (6 * 3 + 1) + 2 * 2 * 3)
    # dft-monarch at 16×64: n = 4·4, d = 8·8
    assert mixers.get("dft-monarch").flops(16, 64) == 16 * 64 * (4 * 8 + 8 * 8 + 8 * 4 + 4 * 4 + 14)


def test_long_preset_takes_the_new_mixers_whose_flops_grow_as_n_log_n():
    names = set(plan.mixer_names(plan.PRESETS["long"][1])) & set(NEW)
    assert names == {"gfnet", "hyena", "linear-attention", "mamba", "pool"}
    assert mixers.get("linear-attention").flops(2048, 64) == 2 * mixers.get("linear-attention").flops(1024, 64)
    # gmlp's n×n matrix is quadratic; dft-monarch's two-level factorisation grows as n^1.5
    monarch = mixers.get("dft-monarch")
    assert 2.5 < monarch.flops(131072, 768) / monarch.flops(65536, 768) < 2 ** 1.5


# --- half precision (the same code path as on CUDA, run on CPU by converting the module) --------

@pytest.mark.parametrize("name", NEW)
def test_half_precision_runs_and_returns_its_dtype(name):
    torch.manual_seed(0)
    module = mixers.build(name, 16, 64)
    x = torch.randn(2, 16, 64)
    with torch.no_grad():
        reference = module(x)
        for dtype, tolerance in ((torch.bfloat16, 2e-2), (torch.float16, 3e-3)):
            out = copy.deepcopy(module).to(dtype)(x.to(dtype))
            assert out.dtype == dtype
            assert relative_error(out, reference.double().numpy()) <= tolerance


def test_compute_dtypes_state_the_upcasts():
    assert mixers.get("gfnet").compute_dtype(torch.bfloat16, "cuda") == torch.float32
    assert mixers.get("gfnet").compute_dtype(torch.float16, "cuda", seq_len=16, dim=64) == torch.float32
    for name in ("hyena", "mamba", "linear-attention", "gmlp", "dft-monarch", "pool"):
        for dtype in (torch.bfloat16, torch.float16, torch.float32):
            assert mixers.get(name).compute_dtype(dtype, "cuda", seq_len=16, dim=64) == dtype
