"""bench.models stays below the rest of bench: it imports only mixers, torch and the standard library."""

import ast
import sys
from pathlib import Path

import bench.models

PACKAGE = Path(bench.models.__file__).parent


def imported_modules(path):
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            yield node.module


def test_imports_only_mixers_torch_and_the_standard_library():
    files = sorted(PACKAGE.glob("*.py"))
    assert len(files) >= 4
    for path in files:
        for module in imported_modules(path):
            top = module.split(".")[0]
            allowed = (top in ("mixers", "torch", "__future__") or top in sys.stdlib_module_names
                       or module == "bench.models" or module.startswith("bench.models."))
            assert allowed, f"{path.name} imports {module}"
