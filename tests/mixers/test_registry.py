"""The registry: a plain name -> class map that refuses mistakes loudly and finds plugins."""

import importlib.metadata
import sys
import textwrap

import pytest
import torch

import mixers


@pytest.fixture
def registry():
    """The global registry, restored after the test so test classes never leak into other tests."""
    saved = dict(mixers._REGISTRY)
    yield mixers._REGISTRY
    mixers._REGISTRY.clear()
    mixers._REGISTRY.update(saved)


def make_mixer_class(qualname):
    class Identity(mixers.TokenMixer):
        def __init__(self, seq_len, dim, scale=1.0):
            super().__init__(seq_len, dim)
            self.scale = scale

        def forward(self, x):
            return x * self.scale

    Identity.__qualname__ = qualname
    return Identity


def test_register_then_build_passes_options(registry):
    cls = mixers.register("test-identity")(make_mixer_class("TestIdentity"))
    assert cls.name == "test-identity"
    assert "test-identity" in mixers.available()
    assert mixers.get("test-identity") is cls
    module = mixers.build("test-identity", 4, 8, scale=3.0, dtype=torch.float64)
    assert isinstance(module, cls) and module.scale == 3.0
    assert (module.seq_len, module.dim) == (4, 8)
    assert module(torch.ones(1, 4, 8, dtype=torch.float64)).sum() == 96


def test_duplicate_name_is_refused_naming_both_classes(registry):
    first = mixers.register("test-dup")(make_mixer_class("FirstMixer"))
    assert mixers.register("test-dup")(first) is first  # the same class again is harmless
    with pytest.raises(ValueError) as error:
        mixers.register("test-dup")(make_mixer_class("SecondMixer"))
    assert "FirstMixer" in str(error.value) and "SecondMixer" in str(error.value)
    assert mixers.get("test-dup") is first


def test_builtin_name_cannot_be_taken(registry):
    with pytest.raises(ValueError, match="fft"):
        mixers.register("fft")(make_mixer_class("Impostor"))


@pytest.mark.parametrize("thing", [object, lambda x: x, torch.nn.Identity], ids=["object", "function", "nn.Module"])
def test_non_subclass_is_refused(registry, thing):
    with pytest.raises(TypeError, match="TokenMixer"):
        mixers.register("test-not-a-mixer")(thing)
    assert "test-not-a-mixer" not in mixers.available()


def test_empty_name_is_refused():
    with pytest.raises(TypeError):
        mixers.register("")


def test_unknown_name_lists_the_available_names():
    for call in (lambda: mixers.get("no-such-mixer"), lambda: mixers.build("no-such-mixer", 8, 8)):
        with pytest.raises(mixers.UnknownMixerError) as error:
            call()
        assert "no-such-mixer" in str(error.value)
        for name in mixers.available():
            assert name in str(error.value)


def test_available_is_sorted_and_holds_the_builtins():
    names = mixers.available()
    assert names == sorted(names)
    builtins = ["fft", "dft-matrix", "hartley", "dct", "hadamard", "linear", "mlp-mixer", "attention", "attention-naive"]
    assert set(builtins) <= set(names)


def fake_entry_points(*entry_points):
    def entry_points_for(group=None, **kwargs):
        return [ep for ep in entry_points if group is None or ep.group == group]
    return entry_points_for


def test_entry_point_plugins_are_loaded(registry, tmp_path, monkeypatch):
    (tmp_path / "mixbench_test_plugin.py").write_text(textwrap.dedent("""
        import mixers

        @mixers.register("test-plugin")
        class PluginMixer(mixers.TokenMixer):
            def forward(self, x):
                return -x
    """))
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "mixbench_test_plugin", raising=False)
    entry_point = importlib.metadata.EntryPoint("plugin", "mixbench_test_plugin", mixers.ENTRY_POINT_GROUP)
    other_group = importlib.metadata.EntryPoint("other", "no_such_module", "some.other.group")
    monkeypatch.setattr(importlib.metadata, "entry_points", fake_entry_points(entry_point, other_group))
    mixers._load_entry_points()
    assert "test-plugin" in mixers.available()
    assert mixers.build("test-plugin", 2, 3)(torch.ones(1, 2, 3)).sum() == -6
    sys.modules.pop("mixbench_test_plugin", None)


def test_a_broken_plugin_warns_and_does_not_take_the_registry_down(registry, monkeypatch):
    broken = importlib.metadata.EntryPoint("broken", "no_such_module_for_mixbench", mixers.ENTRY_POINT_GROUP)
    monkeypatch.setattr(importlib.metadata, "entry_points", fake_entry_points(broken))
    before = mixers.available()
    with pytest.warns(RuntimeWarning, match="broken"):
        mixers._load_entry_points()
    assert mixers.available() == before
