#!/usr/bin/env bash
# Set-up on a GPU machine with no network, simulated on this one: a Python that has only what such a machine
# brings (torch, pandas, matplotlib, pytest-benchmark, nvidia-ml-py, and the setuptools a plain venv has), the
# package index unreachable, then a fresh clone's `make install PYTHON=that-python`, a small sweep, and the GPU
# tests' collection (tests needing scipy or hypothesis must skip, saying why, not fail to import).
#
#   scripts/offline_install_check.sh
#
# STANDIN   the stand-in Python's venv (default /tmp/mixbench-offline-standin); built once, with the network,
#           then reused: the only step that downloads (torch is pinned: TORCH_VERSION, default 2.13.0)
# KEEP=1    keep the clone (its path is printed) instead of removing it
# Exit status 0 when every step passed; the step that failed and its log's tail otherwise.
set -uo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
standin=${STANDIN:-/tmp/mixbench-offline-standin}
torch_version=${TORCH_VERSION:-2.13.0}
start=$(date +%s)
say() { echo "[offline-check $(($(date +%s) - start))s] $*"; }
fail() { say "FAILED: $1"; [[ -f ${2:-} ]] && tail -25 "$2"; exit 1; }

if [[ ! -e $standin/.ready ]]; then
  say "building the stand-in Python in $standin (once; the only step with network)"
  rm -rf "$standin"
  python3 -m venv "$standin" || fail "python3 -m venv $standin"
  "$standin/bin/python" -m pip install -q --no-compile "torch==$torch_version" pandas matplotlib pytest-benchmark \
    nvidia-ml-py >"$standin.log" 2>&1 || fail "pip install into the stand-in" "$standin.log"
  touch "$standin/.ready"
fi
"$standin/bin/python" - <<'PY' || fail "the stand-in has a package it must not have"
import importlib.util, sys
extra = [name for name in ("tqdm", "scipy", "hypothesis", "xdist", "ray") if importlib.util.find_spec(name)]
import setuptools
print(f"stand-in: Python {sys.version.split()[0]}, setuptools {setuptools.__version__}, without tqdm, scipy, "
      "hypothesis, pytest-xdist and ray" if not extra else f"stand-in has {extra}")
sys.exit(bool(extra))
PY

# offline from here: no index, no extra index or find-links from pip's config or the environment, no proxy
export PIP_NO_INDEX=1 PIP_CONFIG_FILE=/dev/null
unset PIP_FIND_LINKS PIP_INDEX_URL PIP_EXTRA_INDEX_URL http_proxy https_proxy HTTP_PROXY HTTPS_PROXY all_proxy ALL_PROXY
unset PYTHONPATH VIRTUAL_ENV

work=$(mktemp -d /tmp/mixbench-offline-XXXXXX)
[[ ${KEEP:-} == 1 ]] && say "keeping $work" || trap 'rm -rf "$work"' EXIT
git clone -q "$repo" "$work/repo" || fail "git clone $repo"
cd "$work/repo" || exit 1
say "fresh clone of $(git log -1 --format='%h %s' | cut -c1-70)"

say "make install PYTHON=$standin/bin/python (offline)"
make install PYTHON="$standin/bin/python" >"$work/install.log" 2>&1 || fail "make install" "$work/install.log"
grep '^install:' "$work/install.log" | sed 's/^/  /'
.venv/bin/python -c 'import bench, mixers, sys; sys.exit(not bench.__file__.startswith(sys.argv[1]))' "$PWD" \
  || fail "the venv does not import this checkout's bench"

say "a small sweep"
.venv/bin/python -m bench sweep --mixers fft,hadamard --seq-lens 128 --dims 64 --device cpu --rounds 1 \
  --out "$work/sweep" --no-report >"$work/sweep.log" 2>&1 || fail "the sweep" "$work/sweep.log"
tail -2 "$work/sweep.log" | sed 's/^/  /'
ok=$(.venv/bin/python -c 'import csv, sys; print(sum(r["status"] == "ok" for r in csv.DictReader(open(sys.argv[1]))))' \
  "$work/sweep/results.csv" 2>/dev/null)
[[ ${ok:-0} -ge 4 ]] || fail "the sweep measured $ok points ok, 4 expected ($work/sweep/results.csv)" "$work/sweep.log"

say "pytest -m gpu --collect-only"
.venv/bin/python -m pytest -m gpu --collect-only -q -p no:cacheprovider >"$work/collect.log" 2>&1 \
  || fail "collecting the GPU tests" "$work/collect.log"
grep -E 'tests? collected|selected|SKIPPED' "$work/collect.log" | sed 's/^/  /' | head -8
say "passed: make install, a sweep and the GPU tests' collection work offline with only the runtime packages"
