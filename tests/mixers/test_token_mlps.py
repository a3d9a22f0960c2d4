"""MLP-Mixer's token MLP and gMLP's spatial gate as one product over the transposed input: the same function
as the per-sample products with the weight expanded over the batch (`baddbmm`) they replace, in the
output and in every gradient (float64), and with one weight gradient computed, not one per sample."""

import pytest
import torch
import torch.nn.functional as F

import mixers


def mlp_mixer_expanded(module, x):
    """The previous formula: W_2·GELU(W_1·X[b] + b_1) + b_2 per sample, the weights expanded over the batch."""
    *batch, seq_len, dim = x.shape
    x3 = x.reshape(-1, seq_len, dim)
    count = x3.shape[0]
    hidden = torch.baddbmm(module.fc1.bias[:, None], module.fc1.weight.expand(count, -1, -1), x3)
    out = torch.baddbmm(module.fc2.bias[:, None], module.fc2.weight.expand(count, -1, -1), F.gelu(hidden))
    return out.view(x.shape)


def gmlp_expanded(module, x):
    """The previous formula: (U ⊙ (W·LN(V)[b] + b)) W_p + b_p, W expanded over the batch."""
    *batch, seq_len, dim = x.shape
    u, v = x.chunk(2, dim=-1)
    v = module.norm(v).reshape(-1, seq_len, dim // 2)
    gate = torch.baddbmm(module.seq_bias[:, None], module.seq_weight.expand(v.shape[0], -1, -1), v)
    return module.proj(u * gate.view(u.shape))


def gradients(module, x, forward):
    x = x.clone().requires_grad_(True)
    module.zero_grad()
    out = forward(x)
    weights = torch.randn(out.shape, dtype=out.dtype, generator=torch.Generator().manual_seed(5))
    (out * weights).sum().backward()
    return out.detach(), x.grad, {name: p.grad.clone() for name, p in module.named_parameters()}


CASES = [("mlp-mixer", {}, mlp_mixer_expanded), ("mlp-mixer", {"expansion": 0.5}, mlp_mixer_expanded),
         ("gmlp", {}, gmlp_expanded)]


@pytest.mark.parametrize("shape", [(3, 16, 8), (1, 7, 6), (4, 33, 10)], ids=str)
@pytest.mark.parametrize("name, options, expanded", CASES, ids=["mlp-mixer", "mlp-mixer-e0.5", "gmlp"])
def test_one_product_is_the_per_sample_formula_in_output_and_gradients(name, options, expanded, shape):
    torch.manual_seed(0)
    module = mixers.build(name, shape[1], shape[2], dtype=torch.float64, **options)
    if name == "gmlp":  # away from its near-zero start, so the gate's product matters
        torch.nn.init.normal_(module.seq_weight)
    x = torch.randn(shape, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    out, x_grad, grads = gradients(module, x, module)
    ref_out, ref_x_grad, ref_grads = gradients(module, x, lambda t: expanded(module, t))
    tight = {"rtol": 1e-12, "atol": 1e-12}
    torch.testing.assert_close(out, ref_out, **tight)
    torch.testing.assert_close(x_grad, ref_x_grad, **tight)
    assert grads.keys() == ref_grads.keys() and len(grads) >= 3
    for param_name in grads:
        torch.testing.assert_close(grads[param_name], ref_grads[param_name], **tight, msg=param_name)


def batched_products(forward, x):
    """Names of the batched matrix products (bmm, baddbmm) a forward and backward run."""
    seen = []

    class Record(torch.utils._python_dispatch.TorchDispatchMode):
        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            if func.__name__.split(".")[0] in ("bmm", "baddbmm"):
                seen.append(func.__name__.split(".")[0])
            return func(*args, **(kwargs or {}))

    with Record():
        forward(x).sum().backward()
    return seen


@pytest.mark.parametrize("name, expanded", [("mlp-mixer", mlp_mixer_expanded), ("gmlp", gmlp_expanded)])
def test_no_product_runs_per_sample(name, expanded):
    """Plain matrix products only: no per-sample products, so no per-sample weight gradient summed afterwards."""
    module = mixers.build(name, 16, 8)
    x = torch.randn(6, 16, 8, requires_grad=True)
    assert batched_products(module, x) == []
    assert "baddbmm" in batched_products(lambda t: expanded(module, t), x)  # what the previous formula ran
