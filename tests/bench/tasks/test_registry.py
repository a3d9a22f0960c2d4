"""The task registry: a plain name -> class map that refuses mistakes loudly, finds new files and
plugins, and depends on nothing but torch, numpy and the standard library; and `split_seed`."""

import ast
import importlib.metadata
import math
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from bench import tasks

PACKAGE = Path(tasks.__file__).parent


@pytest.fixture
def registry():
    """The global registry, restored after the test so test classes never leak into other tests."""
    saved = dict(tasks._REGISTRY)
    yield tasks._REGISTRY
    tasks._REGISTRY.clear()
    tasks._REGISTRY.update(saved)


def make_task_class(qualname):
    class Constant(tasks.Task):
        defaults = {"symbols": 3}

        def __init__(self, seq_len=None, **options):
            super().__init__(seq_len, **options)
            self.vocab = [str(i) for i in range(self.options["symbols"])]
            self.num_classes, self.baseline = self.options["symbols"], 1 / self.options["symbols"]

        def generate(self, size, seed):
            return torch.zeros(size, self.seq_len, dtype=torch.int64), torch.zeros(size, dtype=torch.int64), None

    Constant.__qualname__ = qualname
    return Constant


def test_register_then_build_passes_options(registry):
    cls = tasks.register("test-constant")(make_task_class("TestConstant"))
    assert cls.name == "test-constant" and tasks.get("test-constant") is cls
    assert "test-constant" in tasks.available()
    task = tasks.build("test-constant", 12, symbols=5)
    assert isinstance(task, cls) and task.seq_len == 12 and task.options == {"symbols": 5}
    assert task.batch(2, 0)[0].shape == (2, 12)
    assert tasks.build("test-constant").seq_len == tasks.Task.default_seq_len


def test_duplicate_name_is_refused_naming_both_classes(registry):
    first = tasks.register("test-dup")(make_task_class("FirstTask"))
    assert tasks.register("test-dup")(first) is first  # the same class again is harmless
    with pytest.raises(ValueError) as error:
        tasks.register("test-dup")(make_task_class("SecondTask"))
    assert "FirstTask" in str(error.value) and "SecondTask" in str(error.value)
    assert tasks.get("test-dup") is first


def test_builtin_name_cannot_be_taken(registry):
    with pytest.raises(ValueError, match="mqar"):
        tasks.register("mqar")(make_task_class("Impostor"))


@pytest.mark.parametrize("thing", [object, lambda x: x, torch.nn.Identity], ids=["object", "function", "class"])
def test_non_subclass_is_refused(registry, thing):
    with pytest.raises(TypeError, match="Task"):
        tasks.register("test-not-a-task")(thing)
    assert "test-not-a-task" not in tasks.available()


@pytest.mark.parametrize("name", ["", None, 3])
def test_empty_or_non_string_name_is_refused(name):
    with pytest.raises(TypeError) as refused:
        tasks.register(name)
    assert str(refused.value) == f"register() takes a non-empty task name, got {name!r}"


def test_a_task_shows_its_class_name_length_and_options(registry):
    cls = tasks.register("test-shown")(make_task_class("Shown"))
    assert repr(cls(seq_len=8, symbols=5)) == "Constant('test-shown', seq_len=8, symbols=5)"
    assert repr(tasks.build("mqar", seq_len=64, num_kv_pairs=4)) == (
        "MultiQueryAssociativeRecall('mqar', seq_len=64, vocab_size=256, num_kv_pairs=4, num_queries=4, power_a=0.01)")
    bare = tasks.register("test-bare")(type("Bare", (tasks.Task,), {}))
    assert repr(bare(seq_len=3)) == "Bare('test-bare', seq_len=3)"


def test_unknown_name_is_one_line_listing_the_available_names():
    for call in (lambda: tasks.get("no-such-task"), lambda: tasks.build("no-such-task", 64)):
        with pytest.raises(tasks.UnknownTaskError) as error:
            call()
        message = str(error.value)
        assert isinstance(error.value, ValueError) and "\n" not in message
        assert "no-such-task" in message and all(name in message for name in tasks.available())


def test_a_task_without_generate_says_so(registry):
    cls = tasks.register("test-no-generate")(type("NoGenerate", (tasks.Task,), {}))
    with pytest.raises(NotImplementedError, match="NoGenerate"):
        cls().batch(1, 0)


def fake_entry_points(*entry_points):
    def entry_points_for(group=None, **kwargs):
        return [ep for ep in entry_points if group is None or ep.group == group]
    return entry_points_for


def test_entry_point_plugins_are_loaded(registry, tmp_path, monkeypatch):
    (tmp_path / "mixbench_test_task_plugin.py").write_text(textwrap.dedent("""
        from bench import tasks

        @tasks.register("test-plugin")
        class PluginTask(tasks.Task):
            pass
    """))
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "mixbench_test_task_plugin", raising=False)
    entry_point = importlib.metadata.EntryPoint("plugin", "mixbench_test_task_plugin", tasks.ENTRY_POINT_GROUP)
    mixer_group = importlib.metadata.EntryPoint("mixer", "no_such_module", "mixbench.mixers")
    monkeypatch.setattr(importlib.metadata, "entry_points", fake_entry_points(entry_point, mixer_group))
    tasks._load_entry_points()
    assert "test-plugin" in tasks.available()
    sys.modules.pop("mixbench_test_task_plugin", None)


def test_a_broken_plugin_warns_and_does_not_take_the_registry_down(registry, monkeypatch):
    broken = importlib.metadata.EntryPoint("broken", "no_such_module_for_mixbench", tasks.ENTRY_POINT_GROUP)
    elsewhere = importlib.metadata.EntryPoint("elsewhere", "no_such_mixer_module", "mixbench.mixers")  # not read here
    monkeypatch.setattr(importlib.metadata, "entry_points", fake_entry_points(broken, elsewhere))
    before = tasks.available()
    with pytest.warns(RuntimeWarning) as warned:
        tasks._load_entry_points()
    assert [str(w.message) for w in warned] == [
        "mixbench: could not load task plugin 'broken' (no_such_module_for_mixbench): ModuleNotFoundError: "
        "No module named 'no_such_module_for_mixbench'"]
    assert tasks.available() == before


NEW_TASK = '''
"""Copy: repeat each token (a per-position task written as a user would)."""

import numpy as np
import torch

from bench import tasks


@tasks.register("copy")
class Copy(tasks.Task):
    per_position = True
    default_seq_len = 16
    defaults = {"vocab_size": 10}

    def __init__(self, seq_len=None, **options):
        super().__init__(seq_len, **options)
        self.vocab = [str(i) for i in range(self.options["vocab_size"])]
        self.num_classes = self.options["vocab_size"]
        self.baseline = 1 / self.num_classes

    def generate(self, size, seed):
        inputs = torch.from_numpy(np.random.default_rng(seed).integers(0, self.num_classes, (size, self.seq_len)))
        return inputs, inputs.clone(), torch.ones(size, self.seq_len, dtype=torch.bool)
'''


def test_a_new_file_is_a_new_task_and_the_package_needs_nothing_else_from_bench(tmp_path):
    # an empty bench/ beside the copy: bench.tasks must not reach for the rest of bench (nor mixers)
    (tmp_path / "bench").mkdir()
    (tmp_path / "bench" / "__init__.py").write_text("")
    shutil.copytree(PACKAGE, tmp_path / "bench" / "tasks", ignore=shutil.ignore_patterns("__pycache__"))
    (tmp_path / "bench" / "tasks" / "copy.py").write_text(NEW_TASK)
    check = f"""
import sys
from bench import tasks
assert tasks.__file__.startswith({str(tmp_path)!r}), tasks.__file__
assert {{"copy", "mqar", "listops", "majority"}} <= set(tasks.available()), tasks.available()
task = tasks.build("copy", 8)
inputs, targets, mask = task.batch(3, 0)
assert inputs.shape == (3, 8) and mask.all() and (targets == inputs).all()
for name in tasks.available():
    tasks.build(name).batch(2, 0)
loaded = sorted(m for m in sys.modules if m.split(".")[0] in ("bench", "mixers"))
assert all(m in ("bench", "bench.tasks") or m.startswith("bench.tasks.") for m in loaded), loaded
"""
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    result = subprocess.run([sys.executable, "-c", check], env=env, cwd=tmp_path, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def imported_modules(path):
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                yield "bench.tasks"  # a relative import stays inside the package
            else:
                yield from (f"{node.module}.{alias.name}" for alias in node.names)


@pytest.mark.parametrize("path", sorted(PACKAGE.glob("*.py")), ids=lambda path: path.name)
def test_imports_only_torch_numpy_the_standard_library_and_itself(path):
    for module in imported_modules(path):
        top = module.split(".")[0]
        allowed = top in ("torch", "numpy", "__future__") or top in sys.stdlib_module_names or \
            module == "bench.tasks" or module.startswith("bench.tasks.")
        assert allowed, f"{path.name} imports {module}"


def test_split_seed_formula():
    high = 2**32
    assert tasks.split_seed("train", 0) == 1 * high
    assert tasks.split_seed("val", 5) == 2 * high + 5
    assert tasks.split_seed("test", high - 1) == 4 * high - 1
    assert tasks.split_seed("train", 7, run_seed=2) == 9 * high + 7


def test_split_seed_ranges_are_disjoint_and_skip_the_reserved_seeds():
    ranges = sorted((tasks.split_seed(split, 0, run), tasks.split_seed(split, 2**32 - 1, run))
                    for run in range(5) for split in tasks.SPLITS)
    assert all(lo > 0 and hi > lo for lo, hi in ranges)
    assert all(previous[1] < current[0] for previous, current in zip(ranges, ranges[1:]))
    assert all((lo >> 32) % 4 for lo, _ in ranges), "high parts that are multiples of 4 stay reserved"
    assert min(lo for lo, _ in ranges) >= 2**32, "seeds below 2**32 are free for ad hoc batches"


@pytest.mark.parametrize("args, match", [(("dev", 0), "train, val, test"), (("train", -1), "index"),
                                         (("train", 2**32), "index"), (("train", 1.0), "index"),
                                         (("train", 0, -1), "run_seed"), (("train", 0, 0.5), "run_seed")])
def test_split_seed_refuses_bad_arguments(args, match):
    with pytest.raises(ValueError, match=match):
        tasks.split_seed(*args)


@pytest.mark.parametrize("value, low, inclusive, reason", [
    (0.5, 0.0, False, ""), (0.0, 0.0, True, ""), (0.0, 0.0, False, "a=0.0 is out of range (allowed: > 0.0)"),
    (-1, 0.0, True, "a=-1 is out of range (allowed: >= 0.0)"),
    (True, 0.0, False, "a must be a finite number, got True"), ("x", 0.0, False, "a must be a finite number, got 'x'"),
    (math.nan, 0.0, False, "a must be a finite number, got nan"),
])
def test_check_float_says_why_a_value_is_refused(value, low, inclusive, reason):
    assert tasks.check_float("a", value, low, low_inclusive=inclusive) == reason


@pytest.mark.parametrize("make, message", [
    (lambda: tasks.build("majority", 16, foo=1), "majority: unknown option foo (allowed: margin, num_symbols)"),
    (lambda: tasks.build("majority", 16, foo=1, bar=2),
     "majority: unknown options bar, foo (allowed: margin, num_symbols)"),
    (lambda: tasks.build("majority", 0), "majority: seq_len=0 is out of range (allowed: >= 1)"),
    (lambda: tasks.build("majority", 16).batch(0, 1), "majority: batch size=0 is out of range (allowed: >= 1)"),
    (lambda: tasks.build("majority", 16).batch(2, -1), "majority: seed=-1 is out of range (allowed: >= 0)"),
    (lambda: tasks.get("nope"), f"unknown task 'nope' (available: {', '.join(tasks.available())})"),
])
def test_refusals_name_the_option_and_what_is_allowed(make, message):
    with pytest.raises((tasks.TaskOptionError, tasks.UnknownTaskError)) as refused:
        make()
    assert str(refused.value) == message


def test_a_task_without_options_says_none_are_allowed(registry):
    bare = tasks.register("test-bare-options")(type("BareOptions", (tasks.Task,), {}))
    with pytest.raises(tasks.TaskOptionError, match=r"unknown option size \(allowed: none\)$"):
        bare(seq_len=4, size=2)
