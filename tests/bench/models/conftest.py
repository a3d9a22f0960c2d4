"""Small sizes for building blocks and encoders from every registered mixer on a CPU."""

import pytest
import torch

import mixers

# Each mixer gets the first shape it supports in float32 and float64 (attention needs dim % 64 == 0,
# hadamard powers of two), as tests/mixers/test_conformance.py chooses them.
CANDIDATE_SHAPES = [(16, 64), (16, 128), (8, 64), (15, 12)]


def shape_for(name: str) -> tuple[int, int]:
    """(seq_len, dim) for mixer `name`, or a skip that gives the mixer's reason for refusing them all."""
    cls = mixers.get(name)
    for seq_len, dim in CANDIDATE_SHAPES:
        if all(cls.supports(seq_len, dim, dtype, "cpu") for dtype in mixers.CPU_DTYPES):
            return seq_len, dim
    pytest.skip(f"{name} refuses every small shape: {cls.supports(*CANDIDATE_SHAPES[0]).reason}")


@pytest.fixture
def small():
    """`small(name)` -> (seq_len, dim) that mixer `name` supports, skipping with its reason if none."""
    return shape_for


def train_step(model: torch.nn.Module, inputs: torch.Tensor, loss_fn) -> torch.Tensor:
    """One forward, backward and AdamW step; returns the output of the forward."""
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    out = model(inputs)
    loss_fn(out).backward()
    optimizer.step()
    return out


@pytest.fixture
def step():
    """`step(model, inputs, loss_fn)`: one training step with AdamW; returns the forward's output."""
    return train_step
