"""Each built-in mixer against an independent float64 reference of the math in DESIGN.md."""

import math

import numpy as np
import pytest

pytest.importorskip("scipy", reason="the references are scipy's (pyproject's [test] extra)")
import scipy.fft  # noqa: E402
import scipy.linalg  # noqa: E402
import scipy.special  # noqa: E402
import torch  # noqa: E402

import mixers  # noqa: E402
from mixers import dct as dct_module  # noqa: E402

SHAPES = [(2, 15, 12), (3, 32, 24), (1, 63, 10)]  # seq_len ≠ dim, odd lengths
POW2_SHAPES = [(2, 16, 8), (3, 32, 64), (1, 1, 4), (2, 128, 2)]


def relative_error(out, ref):
    out = out.detach().double().numpy() if isinstance(out, torch.Tensor) else out
    return np.linalg.norm(out - ref) / np.linalg.norm(ref)


def random_input(shape, seed=0, dtype=torch.float64):
    return torch.randn(shape, dtype=dtype, generator=torch.Generator().manual_seed(seed))


def run(name, shape, dtype=torch.float64, **options):
    """(out, x, module) for a fresh random input; the module's weights come from a fixed seed."""
    torch.manual_seed(1)
    module = mixers.build(name, shape[1], shape[2], dtype=dtype, **options)
    x = random_input(shape, seed=sum(shape), dtype=dtype)
    with torch.no_grad():
        return module(x), x, module


def check(name, shape, reference, **options):
    """float64 within 1e-9 of the reference, float32 within 1e-5."""
    out, x, module = run(name, shape, **options)
    assert relative_error(out, reference(x.numpy(), module)) <= 1e-9
    out32, x32, module32 = run(name, shape, torch.float32, **options)
    assert out32.dtype == torch.float32
    assert relative_error(out32, reference(x32.double().numpy(), module32.double())) <= 1e-5


def dft_real(x, module=None):
    return np.fft.fft2(x).real


def explicit_dft_real(x):
    seq_len, dim = x.shape[-2:]
    f_n = np.exp(-2j * np.pi * np.outer(np.arange(seq_len), np.arange(seq_len)) / seq_len)
    f_d = np.exp(-2j * np.pi * np.outer(np.arange(dim), np.arange(dim)) / dim)
    return (f_n @ x @ f_d).real


@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("name", ["fft", "dft-matrix"])
def test_real_part_of_the_2d_dft(name, shape):
    check(name, shape, dft_real)


@pytest.mark.parametrize("name", ["fft", "dft-matrix"])
def test_real_part_against_explicit_dft_matrices(name):
    out, x, _ = run(name, (2, 9, 6))
    assert relative_error(out, explicit_dft_real(x.numpy())) <= 1e-12


def test_dft_matrix_is_accurate_at_a_long_length():
    # angles reduced as integers (j·l mod k) before scaling keep float64 precision at large k
    out, x, _ = run("dft-matrix", (1, 1000, 6))
    assert relative_error(out, dft_real(x.numpy())) <= 1e-12


@pytest.mark.parametrize("shape", SHAPES + [(2, 16, 64)], ids=str)
def test_fft_and_dft_matrix_agree(shape):
    for dtype, tolerance in ((torch.float64, 1e-12), (torch.float32, 1e-5)):
        fft_out, _, _ = run("fft", shape, dtype)
        dft_out, _, _ = run("dft-matrix", shape, dtype)
        assert relative_error(fft_out, dft_out.double().numpy()) <= tolerance


@pytest.mark.parametrize("name", ["fft", "hartley", "dft-matrix", "dct"])
def test_transforms_return_a_contiguous_real_tensor(name):
    out, x, _ = run(name, (2, 15, 12), torch.float32)
    assert out.is_contiguous() and not out.is_complex() and out.dtype == torch.float32


@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_hartley_is_re_minus_im_of_the_2d_dft(shape):
    check("hartley", shape, lambda x, m: np.fft.fft2(x).real - np.fft.fft2(x).imag)


def test_hartley_is_the_cas_kernel_of_the_2d_dft_not_separable():
    seq_len, dim = 5, 7
    out, x, _ = run("hartley", (1, seq_len, dim))
    j, m = np.arange(seq_len), np.arange(dim)
    # phase[k, l, j, m] = 2π(jk/n + ml/d); cas = cos + sin
    phase = 2 * np.pi * (np.outer(j, j)[:, None, :, None] / seq_len + np.outer(m, m)[None, :, None, :] / dim)
    ref = np.einsum("jm,kljm->kl", x[0].numpy(), np.cos(phase) + np.sin(phase))
    assert relative_error(out[0], ref) <= 1e-12
    cas_n = np.cos(2 * np.pi * np.outer(j, j) / seq_len) + np.sin(2 * np.pi * np.outer(j, j) / seq_len)
    cas_d = np.cos(2 * np.pi * np.outer(m, m) / dim) + np.sin(2 * np.pi * np.outer(m, m) / dim)
    assert relative_error(out[0], cas_n @ x[0].numpy() @ cas_d) > 1e-3


@pytest.mark.parametrize("method", ["fft", "matmul", "auto"])
@pytest.mark.parametrize("shape", SHAPES + [(2, 1, 7), (2, 4, 1), (1, 128, 96)], ids=str)
def test_dct_is_the_orthonormal_2d_dct_ii(shape, method):
    check("dct", shape, lambda x, m: scipy.fft.dctn(x, type=2, norm="ortho", axes=(-2, -1)), method=method)


def test_dct_auto_takes_both_paths():
    assert dct_module.resolve(16, 64) == "matmul"
    assert dct_module.resolve(128, 512) == "fft"
    assert dct_module.resolve(16, 64, "fft") == "fft"


@pytest.mark.parametrize("method", ["fft", "matmul"])
@pytest.mark.parametrize("shape", SHAPES + [(1, 300, 96), (2, 1, 7), (2, 4, 1), (1, 2, 2)], ids=str)
def test_dct_inverse_is_the_orthonormal_2d_dct_iii(shape, method):
    # idctn of type 2 with norm="ortho" is the orthonormal DCT-III, the adjoint the backward applies
    x = random_input(shape, seed=sum(shape))
    ref = scipy.fft.idctn(x.numpy(), type=2, norm="ortho", axes=(-2, -1))
    assert relative_error(dct_module.idct2(x, method), ref) <= 1e-9
    out32 = dct_module.idct2(x.float(), method)
    assert out32.dtype == torch.float32 and out32.is_contiguous()
    assert relative_error(out32, ref) <= 1e-5
    assert relative_error(dct_module.idct2(dct_module.dct2(x, method), method), x.numpy()) <= 1e-12


@pytest.mark.parametrize("method", ["fft", "matmul"])
@pytest.mark.parametrize("shape", [(2, 7, 6), (1, 8, 5), (1, 1, 4), (2, 3, 1)], ids=str)
def test_dct_backward_matches_finite_differences_on_each_path(shape, method):
    module = mixers.build("dct", shape[1], shape[2], dtype=torch.float64, method=method)
    x = random_input(shape, seed=sum(shape)).requires_grad_(True)
    if method == "fft":  # the hand-written adjoint, not autograd's replay of the FFT path, computes the gradient
        assert "WithAdjoint" in type(module(x).grad_fn).__name__
    assert torch.autograd.gradcheck(module, (x,), eps=1e-6, atol=1e-8, rtol=1e-6)


def test_dct_backward_keeps_half_precision():
    module = mixers.build("dct", 16, 24, method="fft")
    x = random_input((2, 16, 24), dtype=torch.float32)
    weights = random_input((2, 16, 24), seed=5, dtype=torch.float32)
    half = x.to(torch.bfloat16).requires_grad_(True)
    (grad,) = torch.autograd.grad(module(half), half, weights.to(torch.bfloat16))
    assert grad.dtype == torch.bfloat16
    ref = scipy.fft.idctn(weights.to(torch.bfloat16).double().numpy(), type=2, norm="ortho", axes=(-2, -1))
    assert relative_error(grad, ref) <= 1e-2


@pytest.mark.parametrize("shape", POW2_SHAPES, ids=str)
def test_hadamard_is_orthonormal_sylvester(shape):
    def reference(x, module):
        h_n = scipy.linalg.hadamard(x.shape[-2]) / math.sqrt(x.shape[-2])
        h_d = scipy.linalg.hadamard(x.shape[-1]) / math.sqrt(x.shape[-1])
        return h_n @ x @ h_d
    check("hadamard", shape, reference)


def test_hadamard_with_several_factors_per_axis(monkeypatch):
    monkeypatch.setattr(mixers.hadamard, "MAX_FACTOR_LOG2", 3)  # 2^7 = 8·4·4, 2^5 = 8·4
    assert mixers.hadamard.factors(128) == [8, 4, 4]
    check("hadamard", (2, 128, 32), lambda x, m: scipy.linalg.hadamard(128) @ x @ scipy.linalg.hadamard(32)
          / math.sqrt(128 * 32))


@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_linear_is_w_n_x_w_d(shape):
    check("linear", shape, lambda x, m: m.seq_weight.detach().numpy() @ x @ m.dim_weight.detach().numpy())


def gelu(x):
    return 0.5 * x * (1 + scipy.special.erf(x / math.sqrt(2)))


@pytest.mark.parametrize("expansion", [2, 0.5])
@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_mlp_mixer_is_a_per_channel_mlp(shape, expansion):
    def reference(x, module):
        w1, b1 = module.fc1.weight.detach().numpy(), module.fc1.bias.detach().numpy()
        w2, b2 = module.fc2.weight.detach().numpy(), module.fc2.bias.detach().numpy()
        out = np.empty_like(x)
        for sample in range(x.shape[0]):
            for channel in range(x.shape[2]):
                out[sample, :, channel] = w2 @ gelu(w1 @ x[sample, :, channel] + b1) + b2
        return out
    check("mlp-mixer", shape, reference, expansion=expansion)


def attention_reference(x, module):
    """softmax(Q_h K_hᵀ / √h) V_h per head, concatenated, through the output projection; float64 numpy."""
    w_qkv, b_qkv = module.qkv.weight.detach().numpy(), module.qkv.bias.detach().numpy()
    w_out, b_out = module.out.weight.detach().numpy(), module.out.bias.detach().numpy()
    dim, head_dim = x.shape[-1], module.head_dim
    out = np.empty_like(x)
    for sample in range(x.shape[0]):
        qkv = x[sample] @ w_qkv.T + b_qkv
        heads = []
        for head in range(dim // head_dim):
            columns = slice(head * head_dim, (head + 1) * head_dim)
            q, k, v = (qkv[:, part * dim:(part + 1) * dim][:, columns] for part in range(3))
            scores = q @ k.T / math.sqrt(head_dim)
            weights = np.exp(scores - scores.max(axis=1, keepdims=True))
            heads.append(weights / weights.sum(axis=1, keepdims=True) @ v)
        out[sample] = np.concatenate(heads, axis=1) @ w_out.T + b_out
    return out


@pytest.mark.parametrize("shape, head_dim", [((2, 15, 12), 4), ((3, 32, 24), 8), ((1, 63, 64), 64), ((2, 9, 128), 64)],
                         ids=str)
@pytest.mark.parametrize("name", ["attention", "attention-naive"])
def test_attention_is_softmax_qk_v(name, shape, head_dim):
    check(name, shape, attention_reference, head_dim=head_dim)


def test_attention_and_naive_attention_agree():
    out, _, _ = run("attention", (2, 20, 128))
    naive, _, _ = run("attention-naive", (2, 20, 128))
    assert relative_error(out, naive.numpy()) <= 1e-12


# --- half precision: what computes, and the upcast path (runnable on CPU) -------------------------

@pytest.mark.parametrize("name", ["fft", "hartley"])
def test_fft_mixers_upcast_where_cufft_cannot(name):
    cls = mixers.get(name)
    assert cls.compute_dtype(torch.bfloat16, "cuda", seq_len=16, dim=64) == torch.float32
    assert cls.compute_dtype(torch.float16, "cuda", seq_len=16, dim=64) == torch.float16
    assert cls.compute_dtype(torch.float16, "cuda", seq_len=15, dim=64) == torch.float32
    assert cls.compute_dtype(torch.float16, "cuda") == torch.float32  # sizes unknown: may upcast
    assert cls.compute_dtype(torch.float32, "cuda") == torch.float32
    assert cls.compute_dtype(torch.float16, "cpu", seq_len=16, dim=64) == torch.float32


def test_dct_upcasts_only_on_its_fft_path():
    cls = mixers.get("dct")
    assert cls.compute_dtype(torch.bfloat16, "cuda", seq_len=16, dim=64) == torch.bfloat16  # matmul
    assert cls.compute_dtype(torch.bfloat16, "cuda", seq_len=512, dim=512) == torch.float32  # fft
    assert cls.compute_dtype(torch.bfloat16, "cuda", method="matmul") == torch.bfloat16
    assert cls.compute_dtype(torch.float16, "cuda", seq_len=512, dim=512) == torch.float32


@pytest.mark.parametrize("name", ["dft-matrix", "hadamard", "linear", "mlp-mixer", "attention"])
def test_matmul_mixers_compute_in_the_input_dtype(name):
    for dtype in (torch.bfloat16, torch.float16, torch.float32):
        assert mixers.get(name).compute_dtype(dtype, "cuda", seq_len=16, dim=64) == dtype


HALF_REFERENCES = {
    "fft": lambda x: np.fft.fft2(x).real,
    "hartley": lambda x: np.fft.fft2(x).real - np.fft.fft2(x).imag,
    "dct": lambda x: scipy.fft.dctn(x, type=2, norm="ortho", axes=(-2, -1)),
}


@pytest.mark.parametrize("name, options", [("fft", {}), ("hartley", {}), ("dct", {"method": "fft"})])
def test_half_precision_input_is_upcast_and_returned_in_its_dtype(name, options):
    # CPU FFTs have no half precision at all, so the same upcast path runs here: the transform of the
    # bfloat16-rounded input, computed in float32 and rounded once to bfloat16 (1.6e-3 relative error here).
    module = mixers.build(name, 16, 24, **options)
    half = random_input((2, 16, 24), dtype=torch.float32).to(torch.bfloat16)
    with torch.no_grad():
        out = module(half)
    assert out.dtype == torch.bfloat16
    reference = HALF_REFERENCES[name](half.double().numpy())
    assert relative_error(out, reference) <= 4e-3
