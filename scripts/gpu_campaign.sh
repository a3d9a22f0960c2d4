#!/usr/bin/env bash
# The GPU reference campaign in one resumable script: set up, check, sweep, train, draw, pack.
#
#   scripts/gpu_campaign.sh [SECONDS] [STEPS]
#
# SECONDS  wall-clock budget of this call (default 540: under a 10-minute command limit)
# STEPS    what to run, in order (default "check rounds paper fnet-paper quality long gpu"):
#            check       the GPU tests (every mixer on CUDA against float64; timing and memory on the device)
#            rounds      the same small sweep in 3 rounds: do GPU rounds agree? (chooses the CUDA --rounds default)
#            <preset>    `mixbench sweep --preset <preset>` (paper, fnet-paper, long, gpu, ...)
#            quality     `mixbench quality --preset gpu-campaign`: the speed-accuracy frontier at GPU sizes
# DEVICE   environment variable, default cuda; `DEVICE=cpu scripts/gpu_campaign.sh 200 "rounds encoder"` is the
#          dry run on a CPU
#
# Run folders live in results/_campaign/<step>/ (ignored by git). A call that runs out of time stops the
# step with SIGTERM (every finished point is already on disk; the sweep records the interruption) and the
# next call resumes it: carry results/_campaign to a fresh machine and nothing is measured twice. Every call
# ends by drawing each folder's report and packing them into $OUT/campaign.tar.gz (OUT defaults to
# results/_campaign/out). No step needs the network: wheels the GPU image lacks (tqdm, hypothesis, pytest-xdist) are
# installed from .whl/ when present (`pip download tqdm hypothesis pytest-xdist -d .whl` beforehand, then carry .whl).
set -uo pipefail
cd "$(dirname "$0")/.."
budget=${1:-540}
steps=${2:-"check rounds paper fnet-paper quality long gpu"}
device=${DEVICE:-cuda}
out=${OUT:-results/_campaign/out}
mkdir -p "$out" results/_campaign
start=$(date +%s)
left() { echo $((budget - ($(date +%s) - start))); }
log() { echo "[campaign $(($(date +%s) - start))s] $*" | tee -a "$out/campaign.log"; }
reserve=75  # seconds kept for drawing and packing

log "set-up (make install, reusing the machine's torch)"
timeout 180 make install >"$out/install.log" 2>&1 || { log "make install failed: see install.log"; tail -20 "$out/install.log"; exit 1; }
command -v nvidia-smi >/dev/null && nvidia-smi >"$out/nvidia-smi.txt" 2>&1
.venv/bin/python -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda,
  "gpu", torch.cuda.get_device_name(0) if torch.cuda.is_available() else None)' | tee -a "$out/campaign.log"

# run_step NAME SECONDS COMMAND...: a bounded, resumable step; SIGTERM at the limit, the next call resumes it
run_step() {
  local name=$1 limit=$2; shift 2
  ((limit > 20)) || { log "no time left for $name"; return 1; }
  log "$name (at most ${limit}s): $*"
  timeout --signal=TERM --kill-after=20 "$limit" "$@" 2>&1 | tail -4 | tee -a "$out/campaign.log"
}

for step in $steps; do
  t=$(($(left) - reserve))
  case $step in
    check)
      [[ $device == cuda && ! -e results/_campaign/.checked ]] || continue
      if run_step check "$((t < 240 ? t : 240))" .venv/bin/python -m pytest -q -m gpu tests; then
        touch results/_campaign/.checked
      fi
      ;;
    rounds)
      # one small sweep measured in 3 worker processes: the spread between them decides the CUDA default
      run_step rounds "$t" .venv/bin/python -m bench sweep --device "$device" --mixers fft,attention,linear,dft-matrix \
        --seq-lens 512,2048,8192 --dims 768 --batch 8 --dtypes bfloat16,float32 --rounds 3 \
        --out results/_campaign/rounds --no-report --quiet
      .venv/bin/python - results/_campaign/rounds <<'PY' | tee -a "$out/campaign.log"
import sys
from bench.reporting import analysis
table = analysis.ok_rows(analysis.load_results(sys.argv[1]))
if len(table):
    spread = (table["time_ms_hi"] / table["time_ms_lo"] - 1)
    print(f"between-round spread over {len(table)} points: median {spread.median():.1%}, max {spread.max():.1%}")
PY
      ;;
    quality)
      run_step quality "$t" .venv/bin/python -m bench quality --preset gpu-campaign --device "$device" \
        --out results/_campaign/quality --no-report --quiet
      ;;
    *)
      run_step "$step" "$t" .venv/bin/python -m bench sweep --preset "$step" --device "$device" \
        --out "results/_campaign/$step" --no-report --quiet
      ;;
  esac
done

for run in results/_campaign/*/; do
  [[ -f $run/results.csv || -f $run/quality.csv ]] || continue
  log "report $run"
  timeout 90 .venv/bin/python -m bench report "$run" 2>&1 | tail -1 | tee -a "$out/campaign.log"
  .venv/bin/python - "$run" <<'PY' | tee -a "$out/campaign.log"
import sys
from bench.reporting import analysis
table = analysis.load_results(sys.argv[1])
if len(table):
    print(table.groupby(["scope", "status"]).size().to_string())
    ok = table[(table.status == "ok") & (table["mode"] == "forward") & (table.scope == "mixer")]
    for dtype in sorted(ok.dtype.unique()):
        longest = ok[ok.dtype == dtype].sort_values("seq_len").groupby("mixer").tail(1)
        print(f"{dtype} forward, each mixer at its longest measured length:")
        print(longest[["mixer", "seq_len", "batching", "time_ms", "roofline_frac", "bound"]].to_string(index=False))
PY
done
tar czf "$out/campaign.tar.gz" --exclude=out --exclude=.lock -C results/_campaign . && log "packed $(du -h "$out/campaign.tar.gz" | cut -f1) into $out/campaign.tar.gz"
