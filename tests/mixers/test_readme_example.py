"""The README's "Add a mixer" example works as written: one new file, found, built and conformant."""

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import mixbench_registry
import mixers

REPO = Path(__file__).resolve().parents[2]
CONFORMANCE = Path(__file__).with_name("test_conformance.py")


def readme_example() -> tuple[str, str, str]:
    """(file name, registered name, source) of the example under '## Add a mixer'."""
    text = (REPO / "README.md").read_text()
    section = text.split("\n## Add a mixer", 1)[1]
    match = re.search(r"```python\n(.*?)```", section, re.DOTALL)
    assert match, "no ```python block under '## Add a mixer' in README.md"
    source = match.group(1)
    file_name = re.match(r"# mixers/(\w+\.py)\n", source)
    name = re.search(r"@mixers\.register\(\"([\w-]+)\"\)", source)
    assert file_name and name, "the example starts with '# mixers/<file>.py' and registers one name"
    return file_name.group(1), name.group(1), source


def test_readme_example_is_one_new_file(tmp_path):
    file_name, name, source = readme_example()
    # new, so that what is tested is the example and not a built-in of the same name
    assert not (Path(mixers.__file__).parent / file_name).exists(), f"mixers/{file_name} already exists"
    assert name not in mixers.available(), f"{name!r} is already a registered mixer"
    # `-k name` below must select only the example's conformance tests
    assert not any(name in other for other in mixers.available()), name
    shutil.copytree(Path(mixers.__file__).parent, tmp_path / "mixers",
                    ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(mixbench_registry.__file__, tmp_path)
    (tmp_path / "mixers" / file_name).write_text(source)
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    check = f"""
import torch, mixers
assert mixers.__file__.startswith({str(tmp_path)!r}), mixers.__file__
assert {name!r} in mixers.available(), mixers.available()
for dtype in (torch.float32, torch.float64):
    module = mixers.build({name!r}, 16, 8, dtype=dtype)
    x = torch.randn(2, 16, 8, dtype=dtype)
    out = module(x)
    assert out.shape == x.shape and out.dtype == dtype, (out.shape, out.dtype)
"""
    result = subprocess.run([sys.executable, "-c", check], env=env, cwd=tmp_path, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    # the same conformance checks every built-in passes
    result = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--import-mode=importlib",
                             str(CONFORMANCE), "-k", name], env=env, cwd=tmp_path, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert " passed" in result.stdout and "deselected" in result.stdout
