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
# a machine without network fails fast instead of waiting minutes per package
NET    := --retries 0 --timeout 20
# wheels in .whl/ (e.g. carried to an offline GPU machine: `pip download tqdm scipy hypothesis pytest-xdist -d .whl`
# with the GPU machine's --python-version) are used first
FIND_WHL = $(if $(wildcard .whl/*.whl),--find-links .whl)
ARGS ?=
QUALITY_ARGS ?=

.PHONY: install test bench bench-plan bench-pytest bench-baseline bench-compare clean mutate

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	@# a python without ensurepip (some GPU images) still gets a venv; pip then comes from the host below
	@test -x $(VPY) || $(PYTHON) -m venv $(VENV) 2>/dev/null || { rm -rf $(VENV); $(PYTHON) -m venv --without-pip $(VENV); }
	@# a $(PYTHON) that has torch (a CUDA build on a GPU machine) lends the venv its packages through a .pth file,
	@# every site dir that holds one of them (torch, pandas, ... may lie in different ones), and nothing is downloaded
	@if $(PYTHON) -c 'import torch' 2>/dev/null && ! $(VPY) -c 'import torch' 2>/dev/null; then \
	  dirs=$$($(PYTHON) scripts/setup_check.py site-dirs) && echo "install: reusing the packages in" $$dirs && \
	  echo "$$dirs" > "$$($(VPY) -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')/_mixbench_host.pth"; \
	fi
	@$(VPY) -c 'import torch' 2>/dev/null || $(PIP) $(FIND_WHL) torch==$(TORCH_VERSION)
	@# the other runtime packages: imports are checked first, so pip runs only for what is missing
	@missing=$$($(VPY) scripts/setup_check.py missing runtime); \
	if [ -n "$$missing" ]; then echo "install: installing $$missing"; $(PIP) $(NET) $(FIND_WHL) $$missing; fi; \
	$(VPY) scripts/setup_check.py require runtime
	@# mixbench itself, editable, from this checkout (its dependencies are there now: --no-deps, nothing fetched).
	@# Without build isolation that needs setuptools >= 70.1 (earlier ones need the `wheel` package); where that
	@# cannot be had (offline with an old setuptools, or none: Python 3.12+ venvs), a .pth file puts this
	@# checkout on the path instead (`python -m bench` and .venv/bin/mixbench work the same)
	@$(VPY) -c 'import setuptools, sys; sys.exit(int(setuptools.__version__.split(".")[0]) < 71)' 2>/dev/null \
	  || $(PIP) $(NET) $(FIND_WHL) 'setuptools>=71' >/dev/null 2>&1 \
	  || echo "install: could not get setuptools>=71 (offline?); trying with the one there"
	@purelib=$$($(VPY) -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])'); \
	if $(PIP) $(NET) --no-build-isolation --no-deps $(FIND_WHL) -e . >$(VENV)/editable.log 2>&1; then \
	  rm -f "$$purelib/_mixbench_checkout.pth"; \
	else \
	  echo "install: the editable install failed here (see $(VENV)/editable.log); putting $(CURDIR) on the path instead"; \
	  echo "$(CURDIR)" > "$$purelib/_mixbench_checkout.pth"; \
	  printf '#!%s\nimport sys\nfrom bench.cli import main\nsys.exit(main())\n' "$(CURDIR)/$(VPY)" > $(VENV)/bin/mixbench; \
	  chmod +x $(VENV)/bin/mixbench; \
	fi
	@# optional, best-effort: tqdm's progress bar ([progress]) and what only `make test` needs ([test]); offline,
	@# `make bench` goes on without them (plain progress lines; their tests skip)
	@missing=$$($(VPY) scripts/setup_check.py missing extras); \
	if [ -n "$$missing" ]; then $(PIP) $(NET) $(FIND_WHL) $$missing >/dev/null 2>&1 \
	  || echo "install: could not install $$missing (no network?): progress prints plain lines, and make test" \
	    "needs them (carry their wheels in .whl/: pip download $$missing -d .whl)"; fi
	@# Ray (--backend ray) is optional: a machine without network, or without room to carry its ~80 MB wheel, goes on
	@$(VPY) -c 'import ray' 2>/dev/null || $(PIP) $(NET) --no-build-isolation \
	  $(FIND_WHL) -e '.[ray]' >/dev/null 2>&1 \
	  || echo "install: ray was not installed (no network?): --backend ray and its tests are unavailable; add it later with $(VPY) -m pip install -e '.[ray]'"
	@PYTHONDONTWRITEBYTECODE= $(VPY) scripts/compile_imports.py \
	  || echo "install: bytecode was not compiled ahead (above: why); modules are compiled as they are imported"
	@touch $@

# The suite on every core (pytest-xdist; TEST_JOBS=0 runs it in this process alone). --dist loadgroup keeps the
# tests marked xdist_group on one worker: the Ray tests (one local cluster) and the pytest-benchmark ones (one timed run).
# The test-only packages (pyproject's [test]) are installed by `make install` where it can; without pytest-xdist
# the suite runs in one process, and tests that need scipy or hypothesis skip, saying so.
TEST_JOBS ?= auto
test: install
	@missing=$$($(VPY) scripts/setup_check.py missing extras); [ -z "$$missing" ] \
	  || echo "test: $$missing not installed (offline?): their tests skip, and without pytest-xdist the suite runs in one process"
	$(VPY) -m pytest -q $$($(VPY) -c 'import xdist' 2>/dev/null && echo "-n $(TEST_JOBS) --dist loadgroup")

# The cost frontier (a timing sweep), then the speed-accuracy frontier (training runs) into the same run folder
# (results/<cpu|gpu>-<device>); the quality run ends by drawing the report with both. On a GPU both are the `gpu`
# presets, sized together to finish within 15 minutes on one H100 (`gpu-full` are the big ones); on a CPU the quality
# run is the `quick` preset (minutes); QUALITY_ARGS="--preset cpu" trains the full CPU preset (about an hour).
QUALITY_PRESET = $(shell $(VPY) -c 'from bench.measuring.plan import resolve_device; print("gpu" if resolve_device("auto") == "cuda" else "quick")' 2>/dev/null)
bench: install
	$(VPY) -m bench sweep --no-report $(ARGS)
	$(VPY) -m bench quality --preset $(QUALITY_PRESET) $(QUALITY_ARGS)

# What `make bench` would run on a GPU, estimated without one: the `gpu` sweep's and the `gpu` quality preset's
# plans and estimated wall times on TARGET (h100, h200 or cpu), then their sum; nothing is measured or written.
TARGET ?= h100
bench-plan: install
	@{ $(VPY) -m bench sweep --preset gpu --no-report --dry-run --target $(TARGET) && \
	  $(VPY) -m bench quality --preset gpu --dry-run --target $(TARGET); } | awk '{ print } \
	  /^estimate for [a-z0-9]+: / { sum += $$4; n++ } END { if (n != 2) exit 1; \
	  printf "estimate for make bench on %s: %.1f min (the sweep and the quality run above)\n", "$(TARGET)", sum }'

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
