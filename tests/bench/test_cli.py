"""The command line: bad input is one line and exit status 2, with nothing written."""

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
import torch

from bench import cli
from bench.measuring import forkserver

BAD_INPUT = [
    (["sweep", "--mixers", "fft,nosuchmixer"], "unknown mixer 'nosuchmixer'"),
    (["sweep", "--dtypes", "float8"], "unknown dtype 'float8'"),
    (["sweep", "--modes", "backward"], "unknown mode 'backward'"),
    (["sweep", "--preset", "huge"], "unknown preset 'huge'"),
    (["sweep", "--seq-lens", "512,abc"], "--seq-lens takes positive integers"),
    (["sweep", "--seq-lens", "0,512"], "--seq-lens takes positive integers"),
    (["sweep", "--seq-lens", "512,,1024"], "--seq-lens needs a comma-separated list"),
    (["sweep", "--dims", "-768"], "--dims takes positive integers"),
    (["sweep", "--batch", "0"], "--batch takes positive integers"),
    (["sweep", "--timeout", "0"], "--timeout must be a positive number"),
    (["sweep", "--timeout", "soon"], "invalid float value"),
    (["sweep", "--device", "tpu"], "unknown device 'tpu'"),
    (["sweep", "--dtypes", "bf16", "--device", "cpu"], "bfloat16 cannot run on cpu"),
    (["sweep", "--frobnicate"], "unrecognized arguments"),
    (["sweep", "--scope", "model"], "unknown scope 'model'"),
    (["sweep", "--tokens", "10", "--seq-lens", "64"], "--tokens 10 is fewer than one sequence of 64 tokens"),
    (["sweep", "--model", "huge"], "unknown model 'huge'"),
    (["sweep", "--model", "base", "--dims", "512"], "--model base sets the width"),
    (["sweep", "--mixers", "fft+"], "malformed layout 'fft+'"),
    (["sweep", "--mixers", "fft+nosuch:2"], "unknown mixer 'nosuch'"),
    (["sweep", "--mixers", "fft+attention:13", "--scope", "encoder"], "the last 13 layers, but the encoder has 12"),
    (["sweep", "--rounds", "0"], "--rounds takes positive integers"),
    (["sweep", "--workers", "0"], "--workers takes positive integers"),
    (["sweep", "--norm", "middle"], "unknown norm 'middle'"),
    (["quality", "--weight-decays", "0,-0.1"], "--weight-decays takes non-negative numbers"),
    (["quality", "--weight-decays", "0,,0.1"], "--weight-decays needs a comma-separated list"),
    (["sweep", "--vocab", "-1"], "--vocab takes non-negative integers"),
    (["sweep", "--devices", "0"], "--devices names GPUs"),
    (["quality", "--tasks", "nosuchtask"], "unknown task 'nosuchtask'"),
    (["quality", "--mixers", "attention+fft:3"], "the last 3 layers, but the model has 2"),
    (["quality", "--lrs", "fast"], "--lrs takes positive numbers"),
    (["quality", "--steps", "0"], "--steps takes positive integers"),
    (["quality", "--preset", "paper"], "unknown preset 'paper' for quality"),
    (["quality", "--tasks", "mqar", "--seq-lens", "4"], "task mqar cannot run at --seq-lens 4"),
    (["launch"], "invalid choice"),
    (["sweep", "--dry-run", "--target", "h300"], "unknown target 'h300' in --target (allowed: h100, h200, cpu)"),
    (["quality", "--dry-run", "--target", "tpu"], "unknown target 'tpu'"),
    (["sweep", "--target", "h100"], "add --dry-run"),
    (["sweep", "--dry-run", "--target", "h100", "--device", "cpu"], "--target h100 runs on cuda"),
    (["sweep", "--dry-run", "--preset", "gpu", "--target", "cpu"], "bfloat16 cannot run on cpu"),
]


@pytest.mark.parametrize("argv, message", BAD_INPUT, ids=[" ".join(a) for a, _ in BAD_INPUT])
def test_bad_input_is_one_line_exit_2_and_nothing_written(argv, message, tmp_path, capsys):
    out = tmp_path / "run"
    if argv[0] in ("sweep", "quality"):  # on a CPU wherever the test runs, as the messages expect (a GPU's presets differ)
        argv = [*argv, "--out", str(out), *([] if "--device" in argv else ["--device", "cpu"])]
    with pytest.raises(SystemExit) as info:
        raise SystemExit(cli.main(argv))
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert message in err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert not out.exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")
def test_device_cuda_without_a_gpu_is_refused(tmp_path, capsys):
    assert cli.main(["sweep", "--device", "cuda", "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert "no CUDA GPU" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("command", ["plot", "report"])
def test_plot_and_report_refuse_a_folder_without_results(command, tmp_path, capsys):
    assert cli.main([command, str(tmp_path)]) == 2
    assert "not a run folder" in capsys.readouterr().err


def processes_with(marker: str) -> list[int]:
    """The pids of live processes whose environment holds `marker` (Linux's /proc)."""
    pids = []
    for environ in Path("/proc").glob("[0-9]*/environ"):
        try:
            if marker.encode() in environ.read_bytes():
                pids.append(int(environ.parent.name))
        except OSError:  # gone meanwhile, or not ours to read
            continue
    return pids


@pytest.mark.skipif(not Path("/proc/self/environ").exists(), reason="needs Linux's /proc")
def test_bad_input_end_to_end_has_no_traceback_and_leaves_no_process(tmp_path):
    # a CPU sweep starts its workers' forkserver first thing (it imports torch for seconds); refused, it ends it
    # too. Output goes to files: a process left behind would hold a pipe open and subprocess.run would wait for it
    marker = f"{uuid.uuid4().hex}"
    with open(tmp_path / "out", "w+") as out, open(tmp_path / "err", "w+") as err:
        done = subprocess.run([sys.executable, "-m", "bench", "sweep", "--mixers", "nosuchmixer", "--device", "cpu",
                               "--out", str(tmp_path / "run")], env={**os.environ, "MIXBENCH_TEST_MARK": marker},
                              stdout=out, stderr=err, timeout=120)
        left = processes_with(f"MIXBENCH_TEST_MARK={marker}")
    stdout, stderr = (tmp_path / "out").read_text(), (tmp_path / "err").read_text()
    assert done.returncode == 2 and stdout == ""
    assert stderr.count("\n") == 1 and "unknown mixer 'nosuchmixer' in --mixers (allowed: " in stderr
    assert not (tmp_path / "run").exists()
    assert left == []


SWEEP, QUALITY = forkserver.PRELOAD, forkserver.TRAINING_PRELOAD


@pytest.mark.parametrize("argv, preload", [
    (["sweep", "--device", "cpu"], SWEEP), (["quality", "--device=cpu", "--tasks", "mqar"], QUALITY),
    (["sweep", "--device", "cpu", "--backend", "ray"], None), (["sweep", "--backend=ray", "--device=cpu"], None),
    (["quality", "--device", "cpu", "--backend", "ray"], None),
    (["sweep", "--device", "cuda"], None), (["sweep", "--device=cuda"], None), (["list"], None),
    (["report", "results/x"], None), (["sweep", "--backend", "local", "--device", "cpu"], SWEEP),
    (["sweep", "--device", "cpu", "--dry-run"], None), (["quality", "--device", "cpu", "--dry-run"], None),
])
def test_the_command_tells_from_its_arguments_what_its_cpu_workers_are_forked_with(argv, preload):
    assert cli._forkserver_preload(cli.build_parser().parse_args(argv)) == preload


def test_the_parser_is_built_and_argv_parsed_before_anything_imports_torch():
    # so the workers' forkserver starts importing torch beside the command, not after it
    code = ("import sys; from bench import cli; cli.build_parser().parse_args(['sweep', '--device', 'cpu']); "
            "print(sorted(name for name in sys.modules if name == 'torch' or name.startswith('torch.')))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                          cwd=Path(__file__).parents[2])
    assert done.returncode == 0 and done.stdout.strip() == "[]", done.stderr


# A worker as forked for a sweep (PRELOAD imported), running a training run: what it imports on the way.
FIRST_RUN_IMPORTS = """
import importlib, json, sys
from bench.measuring import forkserver
for name in forkserver.PRELOAD:
    importlib.import_module(name)
from bench.measuring import train
before = set(sys.modules)
from bench.measuring.points import TrainingRun
row = train.train_run(TrainingRun("majority", "", "fft", 8, 8, 1, 16, "pre", False, 4, 2, 1e-3, 0, "float32", "cpu"),
                      "cpu").row
print(json.dumps({"status": row["status"], "new": sorted(set(sys.modules) - before)}))
"""


def test_what_a_quality_runs_server_imports_beyond_a_sweeps_is_what_a_first_training_run_would_import():
    # the optimizer's first step imports torch._dynamo (seconds): a quality run's server imports it once, so no
    # worker's first run pays it inside its timeout
    done = subprocess.run([sys.executable, "-c", FIRST_RUN_IMPORTS], capture_output=True, text=True, timeout=120,
                          cwd=Path(__file__).parents[2])
    assert done.returncode == 0, done.stderr
    first_run = json.loads(done.stdout)
    assert first_run["status"] == "ok"
    extra = [name for name in forkserver.TRAINING_PRELOAD if name not in forkserver.PRELOAD]
    assert extra and set(extra) <= set(first_run["new"])


def test_a_sweep_on_the_default_device_forks_cpu_workers_only_without_an_nvidia_driver(monkeypatch):
    for driver in (True, False):
        monkeypatch.setattr(cli.os.path, "exists", lambda path, driver=driver: driver)
        args = cli.build_parser().parse_args(["sweep", "--mixers", "fft"])
        assert (cli._forkserver_preload(args) is None) is driver


def test_list_names_every_registered_mixer(capsys):
    import mixers

    assert cli.main(["list"]) == 0
    out = capsys.readouterr().out
    for name in mixers.available():
        assert name in out


def test_list_shows_a_plugin_mixer(mixbench, planted_path):
    done = mixbench("list", extra_path=planted_path)
    assert done.returncode == 0 and "planted-identity" in done.stdout


def test_help_explains_presets_and_examples(capsys):
    with pytest.raises(SystemExit):
        cli.main(["sweep", "--help"])
    out = capsys.readouterr().out
    for word in ("presets:", "cpu", "gpu", "paper", "long", "examples:", "--seq-lens", "--timeout"):
        assert word in out


def test_a_dry_run_prints_the_plan_and_an_estimate_and_writes_nothing(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "run"
    assert cli.main(["sweep", "--preset", "gpu", "--dry-run", "--target", "h100", "--no-report", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "320 points (gpu preset, 1 round) for h100" in printed and "unsupported: 0 points" in printed
    hadamard = next(line for line in printed.splitlines() if line.split()[:1] == ["hadamard"])
    assert hadamard.split() == ["hadamard", "20"]  # every hadamard point runnable at d=1024 on the GPU
    assert "ESTIMATE" in printed and printed.strip().splitlines()[-1].startswith("estimate for h100: ")
    assert not out.exists() and list(tmp_path.iterdir()) == []


def test_a_dry_run_lists_a_refused_point_with_its_reason(tmp_path, capsys):
    argv = ["sweep", "--dry-run", "--target", "cpu", "--mixers", "hadamard,fft", "--seq-lens", "1000,1024",
            "--dims", "64", "--modes", "forward", "--out", str(tmp_path / "run")]
    assert cli.main(argv) == 0
    lines = capsys.readouterr().out.splitlines()
    assert next(line for line in lines if line.split()[:1] == ["hadamard"]).split() == ["hadamard", "1/2"]
    assert "unsupported: 1 point (one line per reason):" in lines
    assert any(line.split()[:1] == ["1"] and "powers of two, got seq_len=1000" in line for line in lines)
    assert not (tmp_path / "run").exists()


def test_a_quality_dry_run_estimates_the_training_runs_and_writes_no_default_folder(capsys):
    results = Path(cli.__file__).parents[1] / "results"  # where a sweep or quality run writes by default
    before = sorted(results.iterdir()) if results.is_dir() else []
    assert cli.main(["quality", "--preset", "gpu", "--dry-run", "--target", "h200", "--mixers", "fft,attention"]) == 0
    printed = capsys.readouterr().out
    assert "6 runs (gpu preset) for h200" in printed and "report" in printed
    assert printed.strip().splitlines()[-1].startswith("estimate for h200: ")
    assert (sorted(results.iterdir()) if results.is_dir() else []) == before
