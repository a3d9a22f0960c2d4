"""scripts/compile_imports.py, the last step of `make install`: what it imports, and its refusal."""

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "scripts" / "compile_imports.py"


def load_script():
    spec = importlib.util.spec_from_file_location("compile_imports", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_module_of_ours_is_imported_but_the_command_line_entry():
    names = load_script().own_modules()
    assert {"bench", "bench.cli", "bench.measuring.timing", "bench.tasks.listops", "mixers", "mixers.fft"} <= set(names)
    assert not [name for name in names if name.endswith("__main__")]  # importing bench.__main__ runs the CLI
    assert len(names) == len(set(names))


def test_it_refuses_to_run_where_bytecode_is_not_written():
    done = subprocess.run([sys.executable, str(SCRIPT)], env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"},
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr == "compile_imports: bytecode writing is off here (unset PYTHONDONTWRITEBYTECODE)\n"
