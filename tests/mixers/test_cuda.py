"""Every mixer on a CUDA GPU against its own float64 CPU result (skipped where there is no GPU)."""

import copy

import pytest
import torch

import mixers

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")]

# relative error ||out - ref|| / ||ref||; fp32 runs with TF32 off (PyTorch's default for matmul)
TOLERANCE = {torch.float32: 1e-4, torch.float16: 1e-2, torch.bfloat16: 3e-2}
SHAPES = [(2, 256, 128), (2, 384, 192), (1, 2048, 256)]


@pytest.mark.parametrize("dtype", list(TOLERANCE), ids=str)
@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("name", mixers.available())
def test_cuda_matches_float64_reference(name, shape, dtype):
    batch, seq_len, dim = shape
    cls = mixers.get(name)
    if not cls.supports(seq_len, dim, dtype, "cuda"):
        pytest.skip(cls.supports(seq_len, dim, dtype, "cuda").reason)
    torch.manual_seed(0)
    reference_module = mixers.build(name, seq_len, dim, dtype=torch.float64)
    module = copy.deepcopy(reference_module).to(device="cuda", dtype=dtype).eval()
    x = torch.randn(batch, seq_len, dim, dtype=torch.float64)
    with torch.inference_mode():
        out = module(x.to(device="cuda", dtype=dtype))
        reference = reference_module.eval()(x)
    assert out.dtype == dtype and out.shape == x.shape and out.device.type == "cuda"
    assert torch.isfinite(out).all()
    error = (out.double().cpu() - reference).norm() / reference.norm()
    assert error < TOLERANCE[dtype], f"{name} {dtype}: relative error {error:.2e} (computes in " \
                                     f"{cls.compute_dtype(dtype, 'cuda')})"


@pytest.mark.parametrize("name", mixers.available())
def test_cuda_train_step_reaches_input_and_parameters(name):
    cls = mixers.get(name)
    if not cls.supports(256, 128, torch.bfloat16, "cuda"):
        pytest.skip("unsupported at this size")
    module = mixers.build(name, 256, 128, dtype=torch.bfloat16, device="cuda")
    x = torch.randn(2, 256, 128, device="cuda", dtype=torch.bfloat16, requires_grad=True)
    module(x).float().square().mean().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()
    for parameter in module.parameters():
        assert parameter.grad is not None
