#!/usr/bin/env bash
# The GPU reference campaign in one resumable script: set up, check, calibrate and sweep, draw, pack.
#
#   scripts/gpu_campaign.sh [SECONDS] [PRESETS]
#
# SECONDS  wall-clock budget of this call (default 540: under a 10-minute command limit)
# PRESETS  presets to run, in order (default "paper gpu")
# DEVICE   environment variable, default cuda; `DEVICE=cpu scripts/gpu_campaign.sh 150 cpu` is the dry run
#
# Run folders live in results/_campaign/<preset>/ (ignored by git). A call that runs out of time stops
# the sweep with SIGINT (every finished point is already on disk) and the next call resumes it: carry
# results/_campaign to a fresh machine and nothing is measured twice. Every call ends by drawing the
# plots and report of each folder and packing them into $OUT/campaign.tar.gz (OUT defaults to
# results/_campaign/out). No step needs the network.
set -uo pipefail
cd "$(dirname "$0")/.."
budget=${1:-540}
presets=${2:-"paper gpu"}
device=${DEVICE:-cuda}
out=${OUT:-results/_campaign/out}
mkdir -p "$out" results/_campaign
start=$(date +%s)
left() { echo $((budget - ($(date +%s) - start))); }
log() { echo "[campaign $(($(date +%s) - start))s] $*" | tee -a "$out/campaign.log"; }

log "set-up (make install, reusing the machine's torch)"
timeout 180 make install >"$out/install.log" 2>&1 || { log "make install failed: see install.log"; tail -20 "$out/install.log"; exit 1; }
command -v nvidia-smi >/dev/null && nvidia-smi >"$out/nvidia-smi.txt" 2>&1
.venv/bin/python -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda,
  "gpu", torch.cuda.get_device_name(0) if torch.cuda.is_available() else None)' | tee -a "$out/campaign.log"

if [[ $device == cuda && ! -e results/_campaign/.checked ]]; then
  log "GPU tests (every mixer on CUDA against float64 references; timing and memory on the device)"
  if timeout 240 .venv/bin/python -m pytest -q -m gpu tests >"$out/gpu-tests.log" 2>&1; then
    touch results/_campaign/.checked
  fi
  tail -3 "$out/gpu-tests.log" | tee -a "$out/campaign.log"
fi

reserve=75  # seconds kept for drawing and packing
for preset in $presets; do
  t=$(($(left) - reserve))
  ((t > 20)) || { log "no time left for preset $preset"; break; }
  log "sweep --preset $preset (at most ${t}s)"
  timeout --signal=INT --kill-after=20 "$t" .venv/bin/python -m bench sweep --preset "$preset" --device "$device" \
    --out "results/_campaign/$preset" --no-report --quiet 2>&1 | tail -3 | tee -a "$out/campaign.log"
done

for run in results/_campaign/*/; do
  [[ -f $run/results.csv ]] || continue
  log "report $run"
  timeout 60 .venv/bin/python -m bench report "$run" 2>&1 | tail -1 | tee -a "$out/campaign.log"
  .venv/bin/python - "$run" <<'PY' | tee -a "$out/campaign.log"
import sys
import pandas as pd
table = pd.read_csv(f"{sys.argv[1]}/results.csv")
print(table.groupby(["status"]).size().to_string())
ok = table[(table.status == "ok") & (table["mode"] == "forward")]
for dtype in sorted(ok.dtype.unique()):
    longest = ok[ok.dtype == dtype].sort_values("seq_len").groupby("mixer").tail(1)
    print(f"{dtype} forward, each mixer at its longest measured length:")
    print(longest[["mixer", "seq_len", "batching", "time_ms", "roofline_frac", "bound"]].to_string(index=False))
PY
done
tar czf "$out/campaign.tar.gz" --exclude=out --exclude=.lock -C results/_campaign . && log "packed $(du -h "$out/campaign.tar.gz" | cut -f1) into $out/campaign.tar.gz"
