"""Byte-compile what mixbench and its tests import, once, by importing it (run by `make install`).

`make install` tells pip not to byte-compile: pip compiles every file of torch, scipy, pandas and Ray, a minute of
one core on a 2-core machine, and most of those files are never imported. Importing the modules that mixbench, its
workers and its tests use, with bytecode writing on, compiles just those; the packages whose files many processes
use (Ray's nodes and agents, pytest and its plugins) are compiled whole, on every core. Every process started later
(workers, test processes, the CLI, a Ray cluster) then loads them as bytecode, even where PYTHONDONTWRITEBYTECODE
is set; anything else is compiled when first imported, as Python always does.
Usage: PYTHONDONTWRITEBYTECODE= python scripts/compile_imports.py
"""

from __future__ import annotations

import compileall
import importlib
import importlib.util
import os
import pkgutil
import sys
import time

REQUIRED = ["torch", "torch._dynamo", "torch.utils.flop_counter", "torch.utils._python_dispatch", "numpy", "pandas",
            "matplotlib.pyplot", "pytest_benchmark.plugin", "pynvml"]
# the test extra's: imported where installed
OPTIONAL = ["tqdm", "scipy.fft", "scipy.linalg", "scipy.special"]
OWN = ["bench", "mixers"]
# compiled whole where installed: a Ray cluster starts a dozen processes that import much of Ray, and the test
# processes much of pytest, its plugins and Hypothesis
WHOLE = ["ray", "pytest", "_pytest", "pluggy", "xdist", "execnet", "hypothesis", "pytest_benchmark"]


def own_modules() -> list[str]:
    """Every module of the packages in OWN (a module that needs an optional dependency is skipped below)."""
    names = []
    for package_name in OWN:
        package = importlib.import_module(package_name)
        names += [package_name] + [info.name for info in pkgutil.walk_packages(package.__path__, package_name + ".")
                                   if not info.name.endswith(".__main__")]  # `python -m bench` would run the CLI
    return names


def main() -> int:
    if sys.flags.dont_write_bytecode:
        print("compile_imports: bytecode writing is off here (unset PYTHONDONTWRITEBYTECODE)", file=sys.stderr)
        return 2
    os.environ.setdefault("MPLBACKEND", "Agg")
    start = time.perf_counter()
    for name in REQUIRED:
        try:
            importlib.import_module(name)
        except ImportError as exc:
            print(f"compile_imports: cannot import {name}: {exc}", file=sys.stderr)
            return 1
    rest, skipped = OPTIONAL + own_modules(), []
    for name in rest:
        try:
            importlib.import_module(name)
        except ImportError as exc:  # an optional dependency that is not installed (Ray, say)
            skipped.append(f"{name} (no {exc.name or exc})")
    imported = len(REQUIRED) + len(rest) - len(skipped)
    whole = [spec for spec in map(importlib.util.find_spec, WHOLE) if spec is not None]
    skipped += [name for name in WHOLE if name not in {spec.name for spec in whole}]
    for spec in whole:
        for folder in spec.submodule_search_locations:
            compileall.compile_dir(folder, quiet=2, workers=0)
    print(f"compile_imports: imported {imported} modules and compiled {len(whole)} packages whole in "
          f"{time.perf_counter() - start:.0f} s" + (f"; not installed: {', '.join(skipped)}" if skipped else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
