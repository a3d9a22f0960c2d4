"""Set-up without network: what make install checks (scripts/setup_check.py), tqdm optional, GPU presets that
measure every mixer, and the offline install simulated (scripts/offline_install_check.sh, slow)."""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import mixers
from bench import cli
from bench.measuring import plan
from bench.measuring.points import mixer_point
from bench.measuring.timing import TORCH_DTYPES

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("setup_check", ROOT / "scripts" / "setup_check.py")
setup_check = importlib.util.module_from_spec(spec)
spec.loader.exec_module(setup_check)


def test_the_install_lists_match_pyproject():
    tomllib = pytest.importorskip("tomllib")
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    names = {re.split(r"[<>=!~ ]", dep)[0] for dep in project["dependencies"]}
    assert names == set(setup_check.RUNTIME.values())
    extras = project["optional-dependencies"]
    assert set(extras["progress"]) | set(extras["test"]) == set(setup_check.EXTRAS.values())
    assert "tqdm" not in names  # optional: the runtime needs nothing the GPU image lacks


def test_a_missing_runtime_package_is_one_line(monkeypatch, capsys):
    monkeypatch.setattr(setup_check, "GROUPS", {"runtime": {"numpy": "numpy", "no_such_module_q": "no-such-pkg"}})
    assert setup_check.main(["missing", "runtime"]) == 0
    assert capsys.readouterr().out.split() == ["no-such-pkg"]
    assert setup_check.main(["require", "runtime"]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "no-such-pkg (No module named 'no_such_module_q')" in err
    assert setup_check.main(["bogus"]) == 2


def test_site_dirs_start_with_torchs():
    dirs = setup_check.site_dirs()
    assert dirs[0] == os.path.dirname(os.path.dirname(torch.__file__))
    assert all(Path(d).is_dir() for d in dirs) and len(dirs) == len(set(dirs))


def test_progress_prints_plain_lines_without_tqdm_even_on_a_terminal(monkeypatch, capsys):
    class Terminal:
        def isatty(self):
            return True

        def write(self, text):
            written.append(text)

        def flush(self):
            pass

    written: list[str] = []
    monkeypatch.delenv("CI", raising=False)
    monkeypatch.setitem(sys.modules, "tqdm", None)  # not installed
    monkeypatch.setattr(sys, "stderr", Terminal())
    point = mixer_point("fft", 128, 64, 1, "float32", "forward", "cpu")
    progress = cli.Progress(quiet=False)
    progress(1, 4, point, None)
    progress(4, 4, None, None)
    assert "".join(written) == f"1/4 {point.label()}\n"


@pytest.mark.parametrize("name", ["gpu", "gpu-full", "long"])
def test_gpu_presets_measure_every_mixer(name):
    axes = plan.apply_model(plan.PRESETS[name][1])
    points = plan.expand(axes, "cuda")
    runnable = {p.mixer for p in points
                if mixers.get(p.mixer).supports(p.seq_len, p.dim, TORCH_DTYPES[p.dtype], "cuda")}
    assert runnable == set(plan.mixer_names(axes))
    if name != "long":
        assert runnable == set(mixers.available()) and "hadamard" in runnable


def test_the_make_bench_gpu_sweep_is_compact():
    axes = plan.PRESETS[plan.default_preset("cuda")][1]
    assert axes.mixers == () and len(axes.seq_lens) == 5 and axes.rounds == 1
    assert set(axes.dtypes) == {"bfloat16", "float32"} and set(axes.modes) == {"forward", "train"}
    assert min(axes.seq_lens) == 512 and max(axes.seq_lens) == 16384
    assert plan.default_preset("cuda") in plan.QUALITY_PRESETS


def test_each_preset_states_its_count():
    for name, (description, axes) in plan.PRESETS.items():
        stated = re.search(r"(\d+) points", description)
        assert stated and int(stated.group(1)) == len(plan.expand(plan.apply_model(axes), "cpu")), name
    for name, (description, axes) in plan.QUALITY_PRESETS.items():
        stated = re.search(r"(\d+) runs", description)
        assert stated and int(stated.group(1)) == len(plan.expand_quality(axes, "cpu")), name


STANDIN = Path(os.environ.get("STANDIN", "/tmp/mixbench-offline-standin"))


@pytest.mark.slow
@pytest.mark.skipif(not (STANDIN / ".ready").exists(), reason="no stand-in Python (scripts/offline_install_check.sh "
                    "builds it once, with the network; this test never downloads)")
def test_offline_install_on_a_fresh_clone():
    done = subprocess.run(["bash", str(ROOT / "scripts" / "offline_install_check.sh")], capture_output=True,
                          text=True, timeout=600, env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"})
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    assert "passed:" in done.stdout
