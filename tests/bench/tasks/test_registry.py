"""The task registry's own side (build, repr, a new file is a new task, the package's imports), and `split_seed`.

The registry itself (refusals, unknown names, plugins) is `mixbench_registry`, tested for mixers and tasks
alike in tests/test_mixbench_registry.py.
"""

import ast
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import mixbench_registry
from bench import tasks

PACKAGE = Path(tasks.__file__).parent
REGISTRY_MODULE = Path(mixbench_registry.__file__)


@pytest.fixture
def registry(monkeypatch):
    """The global registry's map, restored after the test so test classes never leak into other tests."""
    monkeypatch.setattr(tasks.REGISTRY, "classes", dict(tasks.REGISTRY.classes))
    return tasks.REGISTRY


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


def test_a_task_shows_its_class_name_length_and_options(registry):
    cls = tasks.register("test-shown")(make_task_class("Shown"))
    assert repr(cls(seq_len=8, symbols=5)) == "Constant('test-shown', seq_len=8, symbols=5)"
    assert repr(tasks.build("mqar", seq_len=64, num_kv_pairs=4)) == (
        "MultiQueryAssociativeRecall('mqar', seq_len=64, vocab_size=256, num_kv_pairs=4, num_queries=4, power_a=0.01)")
    bare = tasks.register("test-bare")(type("Bare", (tasks.Task,), {}))
    assert repr(bare(seq_len=3)) == "Bare('test-bare', seq_len=3)"


def test_a_task_without_generate_says_so(registry):
    cls = tasks.register("test-no-generate")(type("NoGenerate", (tasks.Task,), {}))
    with pytest.raises(NotImplementedError, match="NoGenerate"):
        cls().batch(1, 0)


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
    shutil.copy(REGISTRY_MODULE, tmp_path)
    (tmp_path / "bench" / "tasks" / "copy.py").write_text(NEW_TASK)
    check = f"""
import sys
import mixbench_registry
from bench import tasks
assert tasks.__file__.startswith({str(tmp_path)!r}), tasks.__file__
assert {{"copy", "mqar", "listops", "majority"}} <= set(tasks.available()), tasks.available()
task = tasks.build("copy", 8)
inputs, targets, mask = task.batch(3, 0)
assert inputs.shape == (3, 8) and mask.all() and (targets == inputs).all()
for name in tasks.available():
    tasks.build(name).batch(2, 0)
assert mixbench_registry.__file__.startswith({str(tmp_path)!r}), mixbench_registry.__file__
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
def test_imports_only_torch_numpy_the_standard_library_the_registry_and_itself(path):
    for module in imported_modules(path):
        top = module.split(".")[0]
        allowed = top in ("torch", "numpy", "__future__", "mixbench_registry") or top in sys.stdlib_module_names or \
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
