# mixbench: `make bench` measures, `make test` checks, `make install` only sets up .venv/.
PYTHON ?= python3
VENV   := .venv
VPY    := $(VENV)/bin/python
# The CPU wheel that a machine without a GPU gets quickly; a torch already importable by
# $(PYTHON) (e.g. a CUDA build on a GPU machine) is reused instead and nothing is downloaded.
TORCH_VERSION ?= 2.13.0
ARGS ?=

.PHONY: install test bench bench-pytest bench-compare clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	@test -x $(VPY) || $(PYTHON) -m venv $(VENV)
	@host=$$($(PYTHON) -c 'import os, torch; print(os.path.dirname(os.path.dirname(torch.__file__)))' 2>/dev/null); \
	if [ -n "$$host" ] && ! $(VPY) -c 'import torch' 2>/dev/null; then \
	  echo "install: reusing the torch in $$host"; \
	  echo "$$host" > "$$($(VPY) -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')/_mixbench_host.pth"; \
	fi
	@$(VPY) -c 'import torch' 2>/dev/null || $(VPY) -m pip install -q torch==$(TORCH_VERSION)
	$(VPY) -m pip install -q --no-build-isolation -e '.[test]'
	@touch $@

test: install
	$(VPY) -m pytest -q

bench: install
	$(VPY) -m bench sweep $(ARGS)

clean:
	rm -rf $(VENV) *.egg-info .pytest_cache
