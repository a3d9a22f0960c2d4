# mixbench: `make bench` measures, `make test` checks, `make install` only sets up .venv/.
PYTHON ?= python3
VENV   := .venv
VPY    := $(VENV)/bin/python
# pip does not byte-compile (a minute of one core for every file of torch, scipy, pandas, Ray); the last step of
# install compiles what mixbench and its tests import (scripts/compile_imports.py)
PIP    := $(VPY) -m pip install -q --no-compile
# The CPU wheel that a machine without a GPU gets quickly; a torch already importable by
# $(PYTHON) (e.g. a CUDA build on a GPU machine) is reused instead and nothing is downloaded.
TORCH_VERSION ?= 2.13.0
ARGS ?=
QUALITY_ARGS ?=

.PHONY: install test bench bench-pytest bench-baseline bench-compare clean mutate

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	@# a python without ensurepip (some GPU images) still gets a venv; pip then comes from the host below
	@test -x $(VPY) || $(PYTHON) -m venv $(VENV) 2>/dev/null || { rm -rf $(VENV); $(PYTHON) -m venv --without-pip $(VENV); }
	@host=$$($(PYTHON) -c 'import os, torch; print(os.path.dirname(os.path.dirname(torch.__file__)))' 2>/dev/null); \
	if [ -n "$$host" ] && ! $(VPY) -c 'import torch' 2>/dev/null; then \
	  echo "install: reusing the torch in $$host"; \
	  echo "$$host" > "$$($(VPY) -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')/_mixbench_host.pth"; \
	fi
	@$(VPY) -c 'import torch' 2>/dev/null || $(PIP) torch==$(TORCH_VERSION)
	@# editable install without build isolation (no network on GPU machines) needs setuptools >= 70.1
	@$(VPY) -c 'import setuptools, sys; sys.exit(int(setuptools.__version__.split(".")[0]) < 71)' 2>/dev/null \
	  || $(PIP) 'setuptools>=71' \
	  || echo "install: could not get setuptools>=71 (offline?); trying with the one there"
	@# wheels in .whl/ (e.g. carried to an offline GPU machine: `pip download tqdm hypothesis pytest-xdist -d .whl`) are used first
	$(PIP) --no-build-isolation $(if $(wildcard .whl/*.whl),--find-links .whl) -e '.[test]'
	@# Ray (--backend ray) is optional: a machine without network, or without room to carry its ~80 MB wheel, goes on
	@$(VPY) -c 'import ray' 2>/dev/null || $(PIP) --retries 0 --timeout 20 --no-build-isolation \
	  $(if $(wildcard .whl/*.whl),--find-links .whl) -e '.[ray]' >/dev/null 2>&1 \
	  || echo "install: ray was not installed (no network?): --backend ray and its tests are unavailable; add it later with $(VPY) -m pip install -e '.[ray]'"
	@PYTHONDONTWRITEBYTECODE= $(VPY) scripts/compile_imports.py \
	  || echo "install: bytecode was not compiled ahead (above: why); modules are compiled as they are imported"
	@touch $@

# The suite on every core (pytest-xdist; TEST_JOBS=0 runs it in this process alone). --dist loadgroup keeps the
# tests marked xdist_group on one worker: the Ray tests (one local cluster) and the pytest-benchmark ones (one timed run).
TEST_JOBS ?= auto
test: install
	$(VPY) -m pytest -q -n $(TEST_JOBS) --dist loadgroup

# The cost frontier (a timing sweep), then the speed-accuracy frontier (training runs) into the same run folder
# (results/<cpu|gpu>-<device>); the quality run ends by drawing the report with both. On a CPU the quality run
# is the `quick` preset (minutes); QUALITY_ARGS="--preset cpu" trains the full CPU preset (about an hour).
QUALITY_PRESET = $(shell $(VPY) -c 'from bench.measuring.plan import resolve_device; 	print("gpu-campaign" if resolve_device("auto") == "cuda" else "quick")' 2>/dev/null)
bench: install
	$(VPY) -m bench sweep --no-report $(ARGS)
	$(VPY) -m bench quality --preset $(QUALITY_PRESET) $(QUALITY_ARGS)

clean:
	rm -rf $(VENV) *.egg-info .pytest_cache mutants

# Mutation testing of the core modules (not part of `make test`): mutmut, pinned here, mutates bench/ and mixers/
# in a copy (mutants/) and runs the fast tests listed in pyproject.toml ([tool.mutmut]) against each mutant;
# tests/mutation/mutate.py prints the killed share per module and the survivors not listed as equivalent in
# tests/mutation/equivalents.txt (and fails when there are any). MODULES="analysis compare" runs some of them.
MUTMUT_VERSION ?= 3.8.1
MODULES ?=
mutate: install
	@$(VPY) -c 'import importlib.metadata as m, sys; sys.exit(m.version("mutmut") != "$(MUTMUT_VERSION)")' 2>/dev/null \
	  || $(PIP) 'mutmut==$(MUTMUT_VERSION)'
	OMP_NUM_THREADS=1 $(VPY) tests/mutation/mutate.py $(MODULES)

# pytest-benchmark suite (tests/benchmarks/): every mixer, forward and train, at one point per device.
# Runs are kept per device and machine under results/pytest-benchmark/<device>/<machine-id>/.
# bench-pytest saves a numbered run; bench-baseline saves one named "baseline"; bench-compare runs the
# suite again and fails when a median is more than 10% above the newest baseline's (BENCH_GATE).
# CPU timings use one thread (BENCH_THREADS; empty: torch's default): on a shared machine two threads
# waiting on each other made medians swing by up to 40x between runs here, one thread by ~5-25%.
BENCH_STORE := results/pytest-benchmark
BENCH_THREADS ?= 1
BENCH_GATE ?= median:10%
BENCH_SUITE = $(if $(BENCH_THREADS),OMP_NUM_THREADS=$(BENCH_THREADS) )$(VPY) -m pytest \
	tests/benchmarks/test_mixer_benchmarks.py -q -p no:cacheprovider --benchmark-enable \
	--benchmark-sort=name --benchmark-columns=median,iqr,min,max,rounds,iterations
BENCH_HOME = $(VPY) -c 'from bench.measuring.plan import resolve_device; from pytest_benchmark.utils import get_machine_id; \
	print(resolve_device("auto"), get_machine_id(), sep="/")'

bench-pytest: install
	@home=$$($(BENCH_HOME)) || exit 1; \
	$(BENCH_SUITE) --benchmark-storage=file://$(BENCH_STORE)/$${home%/*} --benchmark-autosave $(ARGS)

bench-baseline: install
	@home=$$($(BENCH_HOME)) || exit 1; \
	$(BENCH_SUITE) --benchmark-storage=file://$(BENCH_STORE)/$${home%/*} --benchmark-save=baseline $(ARGS)

bench-compare: install
	@home=$$($(BENCH_HOME)) || exit 1; baseline=$$(ls $(BENCH_STORE)/$$home/*_baseline.json 2>/dev/null | tail -n 1); \
	if [ -z "$$baseline" ]; then \
	  echo "bench-compare: no baseline in $(BENCH_STORE)/$$home/ yet; save one with 'make bench-baseline' on the code to compare against" >&2; \
	  exit 1; \
	fi; \
	echo "bench-compare: against $$baseline, failing on $(BENCH_GATE)"; \
	$(BENCH_SUITE) --benchmark-storage=file://$(BENCH_STORE)/$${home%/*} --benchmark-compare=$$baseline \
	  --benchmark-compare-fail=$(BENCH_GATE) $(ARGS)
