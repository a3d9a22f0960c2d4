#!/usr/bin/env bash
# Does a pool of workers pay? The same sweep of slow CPU points through one worker, two local workers and two
# Ray workers (a local Ray cluster started beforehand, as a user's would be), 1 thread each; prints each wall
# time, its ratio to one worker's, and whether the three runs measured the same points with the same statuses.
#
#   scripts/pool_speedup.sh [OUT]      (default results/pool-speedup; one run folder per pool inside it)
#
# Each sweep is timed from the command's start to its end (worker start-up and calibration included). On two
# cores the ideal ratio is 0.5; issue 12 asks for at most 0.65.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-results/pool-speedup}
py=.venv/bin/python
sweep=(sweep --mixers attention-naive,dft-matrix,mlp-mixer,linear --seq-lens 1024,2048 --dims 256,384 --batch 1
       --modes forward,train --rounds 1 --budget 1.0 --min-reps 5 --threads 1 --device cpu --no-report --quiet)

timed() {  # timed NAME ARGS...: run a sweep into $out/NAME, print its wall time in seconds
  local name=$1; shift
  rm -rf "${out:?}/$name"
  local start end
  start=$(date +%s.%N)
  "$py" -m bench "${sweep[@]}" --out "$out/$name" "$@" >"$out/$name.log" 2>&1 || { cat "$out/$name.log"; exit 1; }
  end=$(date +%s.%N)
  awk -v a="$start" -v b="$end" 'BEGIN { printf "%.1f\n", b - a }'
}

mkdir -p "$out"
one=$(timed one-worker --workers 1)
two=$(timed two-workers --workers 2)
ray_s=""
if "$py" -c 'import ray' 2>/dev/null; then
  .venv/bin/ray stop --force >/dev/null 2>&1 || true
  .venv/bin/ray start --head --num-cpus 2 --include-dashboard false --disable-usage-stats >"$out/ray-start.log" 2>&1
  trap '.venv/bin/ray stop --force >/dev/null 2>&1 || true' EXIT
  ray_s=$(timed two-ray-workers --workers 2 --backend ray --ray-address auto)
fi
"$py" - "$out" "$one" "$two" "$ray_s" <<'EOF'
import sys
from pathlib import Path

from bench.measuring.store import RunFolder

out, one = Path(sys.argv[1]), float(sys.argv[2])
runs = {"one-worker": one, "two-workers": float(sys.argv[3])}
if sys.argv[4]:
    runs["two-ray-workers"] = float(sys.argv[4])
keys = ("mixer", "seq_len", "dim", "batch", "dtype", "mode")
points = {name: {tuple(row[k] for k in keys): row["status"] for row in RunFolder(out / name).rows()} for name in runs}
print(f"{'pool':<16} {'wall s':>7} {'/ one':>6} {'points':>6}  same points and statuses as one worker")
for name, seconds in runs.items():
    same = points[name] == points["one-worker"]
    print(f"{name:<16} {seconds:7.1f} {seconds / one:6.2f} {len(points[name]):6d}  {'yes' if same else 'NO'}")
sys.exit(0 if all(points[name] == points["one-worker"] for name in runs) else 1)
EOF
