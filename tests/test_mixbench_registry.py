"""mixbench_registry: the one name -> class registry behind `mixers` and `bench.tasks`.

Each test runs against both registries (they are the same code), and against a bare one where the
registry itself is the subject. A test's classes never leak: the `registry` fixture restores the map.
"""

import importlib.metadata
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

import mixbench_registry
import mixers
from bench import tasks

REPO = Path(__file__).resolve().parent.parent


def make_mixer(qualname):
    class Identity(mixers.TokenMixer):
        def forward(self, x):
            return x

    Identity.__qualname__ = qualname
    return Identity


def make_task(qualname):
    class Constant(tasks.Task):
        def generate(self, size, seed):
            return torch.zeros(size, self.seq_len, dtype=torch.int64), torch.zeros(size, dtype=torch.int64), None

    Constant.__qualname__ = qualname
    return Constant


# (package, a class factory, a built-in name, how the base class is named in refusals, the plugin's source)
KINDS = {
    "mixer": (mixers, make_mixer, "fft", "mixers.TokenMixer", """
        import mixers

        @mixers.register("test-plugin")
        class PluginMixer(mixers.TokenMixer):
            def forward(self, x):
                return -x
    """),
    "task": (tasks, make_task, "mqar", "bench.tasks.Task", """
        from bench import tasks

        @tasks.register("test-plugin")
        class PluginTask(tasks.Task):
            pass
    """),
}


@pytest.fixture(params=sorted(KINDS))
def kind(request):
    return request.param


@pytest.fixture
def package(kind, monkeypatch):
    """`mixers` or `bench.tasks`, its registry's map restored after the test."""
    package = KINDS[kind][0]
    monkeypatch.setattr(package.REGISTRY, "classes", dict(package.REGISTRY.classes))
    return package


def test_both_packages_use_the_one_registry_and_support_type():
    assert type(mixers.REGISTRY) is type(tasks.REGISTRY) is mixbench_registry.Registry
    assert mixers.Support is tasks.Support is mixbench_registry.Support
    assert (mixers.REGISTRY.base, tasks.REGISTRY.base) == (mixers.TokenMixer, tasks.Task)
    assert (mixers.ENTRY_POINT_GROUP, tasks.ENTRY_POINT_GROUP) == ("mixbench.mixers", "mixbench.tasks")
    assert mixers.register == mixers.REGISTRY.register and tasks.get == tasks.REGISTRY.get


def test_support_is_truthy_only_when_ok():
    assert mixbench_registry.SUPPORTED and mixbench_registry.SUPPORTED.reason == ""
    refused = mixbench_registry.Support(False, "why")
    assert not refused and refused.reason == "why"


def test_register_names_the_class_and_get_returns_it(kind, package):
    cls = package.register("test-entry")(KINDS[kind][1]("TestEntry"))
    assert cls.name == "test-entry" and package.get("test-entry") is cls
    assert "test-entry" in package.available() and package.available() == sorted(package.available())


def test_duplicate_name_is_refused_naming_both_classes(kind, package):
    make = KINDS[kind][1]
    first = package.register("test-dup")(make("First"))
    assert package.register("test-dup")(first) is first  # the same class again is harmless
    with pytest.raises(ValueError) as error:
        package.register("test-dup")(make("Second"))
    assert str(error.value) == (f"{kind} name 'test-dup' is taken by {first.__module__}.First; cannot register "
                                f"{first.__module__}.Second under it")
    assert package.get("test-dup") is first


def test_a_builtin_name_cannot_be_taken(kind, package):
    builtin = KINDS[kind][2]
    with pytest.raises(ValueError, match=f"{kind} name '{builtin}' is taken"):
        package.register(builtin)(KINDS[kind][1]("Impostor"))


@pytest.mark.parametrize("thing", [object, lambda x: x, torch.nn.Identity], ids=["object", "function", "other class"])
def test_a_non_subclass_is_refused_naming_the_base(kind, package, thing):
    with pytest.raises(TypeError) as error:
        package.register("test-not-one")(thing)
    assert str(error.value) == f"cannot register {thing!r} as {kind} 'test-not-one': it does not subclass {KINDS[kind][3]}"
    assert "test-not-one" not in package.available()


@pytest.mark.parametrize("name", ["", None, 3])
def test_an_empty_or_non_string_name_is_refused(kind, package, name):
    with pytest.raises(TypeError) as refused:
        package.register(name)
    assert str(refused.value) == f"register() takes a non-empty {kind} name, got {name!r}"


@pytest.mark.parametrize("name", ["no-such-entry", ["unhashable"]], ids=["unknown", "unhashable"])
def test_an_unknown_name_is_one_line_listing_the_available_names(kind, package, name):
    error_class = {"mixer": mixers.UnknownMixerError, "task": tasks.UnknownTaskError}[kind]
    with pytest.raises(error_class) as error:
        package.get(name)
    assert isinstance(error.value, ValueError)
    assert str(error.value) == f"unknown {kind} {name!r} (available: {', '.join(package.available())})"


def fake_entry_points(*entry_points):
    def entry_points_for(group=None, **kwargs):
        return [ep for ep in entry_points if group is None or ep.group == group]
    return entry_points_for


def test_entry_point_plugins_of_its_own_group_are_loaded(kind, package, tmp_path, monkeypatch):
    module = f"mixbench_test_{kind}_plugin"
    (tmp_path / f"{module}.py").write_text(textwrap.dedent(KINDS[kind][4]))
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, module, raising=False)
    own = importlib.metadata.EntryPoint("plugin", module, package.ENTRY_POINT_GROUP)
    other_group = importlib.metadata.EntryPoint("other", "no_such_module", "some.other.group")
    monkeypatch.setattr(importlib.metadata, "entry_points", fake_entry_points(own, other_group))
    package.REGISTRY.load_entry_points()
    assert "test-plugin" in package.available()
    sys.modules.pop(module, None)


def test_a_broken_plugin_warns_and_does_not_take_the_registry_down(kind, package, monkeypatch):
    broken = importlib.metadata.EntryPoint("broken", "no_such_module_for_mixbench", package.ENTRY_POINT_GROUP)
    elsewhere = importlib.metadata.EntryPoint("elsewhere", "no_such_other_module", "some.other.group")  # not read
    monkeypatch.setattr(importlib.metadata, "entry_points", fake_entry_points(broken, elsewhere))
    before = package.available()
    with pytest.warns(RuntimeWarning) as warned:
        package.REGISTRY.load_entry_points()
    assert [str(w.message) for w in warned] == [
        f"mixbench: could not load {kind} plugin 'broken' (no_such_module_for_mixbench): ModuleNotFoundError: "
        "No module named 'no_such_module_for_mixbench'"]
    assert package.available() == before


def test_import_all_imports_the_public_modules_of_a_package(tmp_path, monkeypatch):
    package = tmp_path / "widgets_for_mixbench_test"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "round.py").write_text("import widgets_for_mixbench_test as w\nw.seen = [*getattr(w, 'seen', []), 'round']\n")
    (package / "_private.py").write_text("raise AssertionError('a private module is imported')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    registry = mixbench_registry.Registry("widget", object, "mixbench.widgets")
    registry.import_all("widgets_for_mixbench_test", [str(package)])
    assert sys.modules["widgets_for_mixbench_test"].seen == ["round"]
    for name in ("widgets_for_mixbench_test", "widgets_for_mixbench_test.round"):
        monkeypatch.delitem(sys.modules, name)


def test_the_module_is_torch_free_and_needs_neither_package():
    check = "import sys, mixbench_registry; assert not {'torch', 'mixers', 'bench'} & set(sys.modules), sys.modules"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    result = subprocess.run([sys.executable, "-c", check], env=env, cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
