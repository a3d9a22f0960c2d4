"""What `make install` needs to know before it calls pip (stdlib only: it runs before anything is installed).

A GPU machine often has no network but already has torch, pandas and the rest, sometimes in several site
directories (e.g. Debian's dist-packages beside /usr/local); imports are checked first, so pip runs only for
what is really missing.

  python scripts/setup_check.py site-dirs         the directories holding the runtime packages this Python
                                                  can import (torch's first), one per line
  python scripts/setup_check.py missing GROUP     the pip names of GROUP's packages that do not import, on one line
  python scripts/setup_check.py require GROUP     exit 1 with one line naming each package of GROUP that does not
                                                  import (and why) where any does not

GROUP: runtime (what `make bench` needs: pyproject's dependencies) or extras (the optional [progress] and [test]
extras: tqdm's progress bar, and the packages only `make test` needs).
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys

# import name -> pip name; the same lists as pyproject.toml's dependencies and extras (tests/test_setup.py)
RUNTIME = {"torch": "torch", "numpy": "numpy", "pandas": "pandas", "matplotlib": "matplotlib",
           "pytest_benchmark": "pytest-benchmark", "pynvml": "nvidia-ml-py"}
EXTRAS = {"tqdm": "tqdm", "pytest": "pytest", "scipy": "scipy", "hypothesis": "hypothesis", "xdist": "pytest-xdist"}
GROUPS = {"runtime": RUNTIME, "extras": EXTRAS}


def failures(group: dict[str, str]) -> dict[str, str]:
    """import name -> why it does not import, for each of the group's packages that does not."""
    failed = {}
    for name in group:
        try:
            importlib.import_module(name)
        except Exception as exc:  # a broken install (an ABI mismatch, say) counts as missing
            failed[name] = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return failed


def site_dirs() -> list[str]:
    """The directories the runtime packages (and pytest, which pytest-benchmark needs) are found in."""
    found = []
    for name in (*RUNTIME, "pytest"):
        spec = importlib.util.find_spec(name)
        if spec is None or spec.origin in (None, "built-in", "frozen"):
            continue
        path = spec.origin
        for _ in range(2 if spec.submodule_search_locations else 1):  # pkg/__init__.py or module.py
            path = os.path.dirname(path)
        if path not in found:
            found.append(path)
    return found


def main(argv: list[str]) -> int:
    if argv == ["site-dirs"]:
        print("\n".join(site_dirs()))
        return 0
    if len(argv) == 2 and argv[0] in ("missing", "require") and argv[1] in GROUPS:
        group = GROUPS[argv[1]]
        failed = failures(group)
        if argv[0] == "missing":
            print(" ".join(group[name] for name in failed))
            return 0
        if failed:
            why = "; ".join(f"{group[name]} ({reason})" for name, reason in failed.items())
            print(f"install: {sys.executable} cannot import what mixbench needs: {why}. Install them into the "
                  "Python given as PYTHON=..., or carry their wheels in .whl/ (pip download ... -d .whl)",
                  file=sys.stderr)
            return 1
        return 0
    print("usage: setup_check.py site-dirs | missing runtime|extras | require runtime|extras", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
