"""`make mutate` names only what exists: pyproject's [tool.mutmut] paths, mutate.py's SCOPE patterns and the
mutants listed in equivalents.txt all point at files, functions and methods of the code as it is, so a renamed
module or function cannot silently drop out of mutation testing. Read with `ast`; mutmut itself is not run."""

import ast
import fnmatch
import importlib.util
import re
import tomllib
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
CONFIG = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["mutmut"]
# mutmut's names: module.x_function__mutmut_N or module.xǁClassǁmethod__mutmut_N (a pattern may end in *)
MUTANT = re.compile(r"^(?P<module>[\w.*]+?)\.(?P<function>xǁ[^.]+|x_[^.]+?)__mutmut_(?P<number>\d+|\*)$")


def load_mutate():
    spec = importlib.util.spec_from_file_location("mutate_under_test", HERE / "mutate.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


mutate = load_mutate()


def module_files(module_pattern: str) -> list[Path]:
    """The source files a mutmut module name (or a pattern like bench.tasks.*) stands for."""
    path = module_pattern.replace(".", "/")
    found = sorted(REPO.glob(f"{path}.py")) + sorted(REPO.glob(f"{path}/__init__.py"))
    return [file for file in found if "__pycache__" not in file.parts]


def mangled_functions(path: Path) -> set[str]:
    """mutmut's mangled names of the top-level functions and class methods of a file."""
    names = set()
    for node in ast.parse(path.read_text(encoding="utf-8")).body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            names.add(f"x_{node.name}")
        elif isinstance(node, ast.ClassDef):
            names |= {f"xǁ{node.name}ǁ{item.name}" for item in node.body
                      if isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef))}
    return names


def what_is_missing(pattern: str) -> str | None:
    """Why `pattern` (a SCOPE pattern or a listed mutant) names nothing in the code, or None when it names something."""
    match = MUTANT.match(pattern)
    module = match.group("module") if match else pattern.removesuffix(".*")
    files = module_files(module)
    if not files:
        return f"{pattern}: no module {module}"
    if match and not any(fnmatch.fnmatchcase(name, match.group("function"))
                         for file in files for name in mangled_functions(file)):
        return f"{pattern}: no function or method {match.group('function')} in {', '.join(map(str, files))}"
    return None


def mutated(path: Path) -> bool:
    """Whether mutmut writes mutants of `path` (under a source path and matched by only_mutate)."""
    relative = path.relative_to(REPO).as_posix()
    under = any(relative == source or relative.startswith(f"{source}/") for source in CONFIG["source_paths"])
    return under and any(fnmatch.fnmatch(relative, pattern) for pattern in CONFIG["only_mutate"])


def test_every_path_in_the_mutmut_settings_exists():
    for path in CONFIG["source_paths"] + CONFIG["pytest_add_cli_args_test_selection"]:
        assert (REPO / path).exists(), f"pyproject.toml [tool.mutmut] names {path}, which does not exist"
    for pattern in CONFIG["only_mutate"]:
        assert list(REPO.glob(pattern)), f"only_mutate's {pattern} matches no file"


def test_every_module_imported_by_the_mutated_packages_is_copied():
    # mutmut runs the tests in mutants/, which holds only the source paths: a top-level module that bench or
    # mixers import (the registry) must be one of them
    top_level = {path.stem for path in REPO.glob("*.py")}
    imported = set()
    for package in ("bench", "mixers"):
        for file in (REPO / package).rglob("*.py"):
            for node in ast.walk(ast.parse(file.read_text(encoding="utf-8"))):
                if isinstance(node, ast.Import):
                    imported |= {alias.name.split(".")[0] for alias in node.names}
                elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                    imported.add(node.module.split(".")[0])
    for module in sorted(imported & top_level):
        assert f"{module}.py" in CONFIG["source_paths"], f"bench or mixers import {module}; mutmut would not copy it"


@pytest.mark.parametrize("module", sorted(mutate.SCOPE))
def test_every_scope_pattern_names_a_function_that_mutmut_mutates(module):
    for pattern in mutate.SCOPE[module]:
        assert what_is_missing(pattern) is None, what_is_missing(pattern)
        name = MUTANT.match(pattern).group("module") if MUTANT.match(pattern) else pattern.removesuffix(".*")
        assert all(mutated(file) for file in module_files(name)), f"{pattern}: its file is not in only_mutate"


def test_every_pattern_left_out_names_a_function():
    for pattern in mutate.NOT_MUTATED_IN_TESTS:
        assert what_is_missing(pattern) is None, what_is_missing(pattern)


def test_every_listed_equivalent_names_a_function_in_scope():
    listed = mutate.equivalents()
    assert listed, "equivalents.txt lists nothing"
    for name, reason in listed.items():
        assert MUTANT.match(name), f"{name} is not a mutmut mutant name"
        assert reason, f"{name} is listed without a reason"
        assert what_is_missing(name) is None, what_is_missing(name)
        assert mutate.module_of(name, list(mutate.SCOPE)) is not None, f"{name} is in no module of SCOPE"


def test_a_name_that_is_gone_is_caught():
    assert what_is_missing("bench.tasks.x__import_builtins__mutmut_*")  # the function the registry replaced
    assert what_is_missing("bench.measuring.worker.x_metrics__mutmut_*")  # the module timing.py replaced
    assert what_is_missing("mixbench_registry.xǁRegistryǁsupports__mutmut_3")
    assert what_is_missing("mixbench_registry.xǁRegistryǁimport_all__mutmut_3") is None
