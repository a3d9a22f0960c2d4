"""The mixer registry's own side: `build` passes options and refuses unknown names, and the built-ins are there.

The registry itself (refusals, unknown names, plugins) is `mixbench_registry`, tested for mixers and tasks
alike in tests/test_mixbench_registry.py.
"""

import pytest
import torch

import mixers


@pytest.fixture
def registry(monkeypatch):
    """The global registry's map, restored after the test so test classes never leak into other tests."""
    monkeypatch.setattr(mixers.REGISTRY, "classes", dict(mixers.REGISTRY.classes))
    return mixers.REGISTRY


class Identity(mixers.TokenMixer):
    def __init__(self, seq_len, dim, scale=1.0):
        super().__init__(seq_len, dim)
        self.scale = scale

    def forward(self, x):
        return x * self.scale


def test_register_then_build_passes_options(registry):
    cls = mixers.register("test-identity")(Identity)
    assert cls.name == "test-identity"
    assert "test-identity" in mixers.available()
    assert mixers.get("test-identity") is cls
    module = mixers.build("test-identity", 4, 8, scale=3.0, dtype=torch.float64)
    assert isinstance(module, cls) and module.scale == 3.0
    assert (module.seq_len, module.dim) == (4, 8)
    assert module(torch.ones(1, 4, 8, dtype=torch.float64)).sum() == 96


def test_build_of_an_unknown_name_lists_the_available_names():
    with pytest.raises(mixers.UnknownMixerError) as error:
        mixers.build("no-such-mixer", 8, 8)
    assert str(error.value) == f"unknown mixer 'no-such-mixer' (available: {', '.join(mixers.available())})"


def test_available_is_sorted_and_holds_the_builtins():
    names = mixers.available()
    assert names == sorted(names)
    builtins = ["fft", "dft-matrix", "hartley", "dct", "hadamard", "linear", "mlp-mixer", "attention", "attention-naive"]
    assert set(builtins) <= set(names)
