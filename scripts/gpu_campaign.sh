#!/usr/bin/env bash
# The GPU campaign in ONE command that fits a 10-minute limit and brings data back even when it is killed.
#
#   scripts/gpu_campaign.sh [BUDGET_S]            (default 540: a 600 s command limit, less a margin)
#
# Steps, in order, each bounded by the time left (`timeout`, SIGTERM: a sweep keeps every finished point) and
# packed into $OUT as soon as it ends, so a call killed at any moment returns every finished step:
#   install  `make install` (offline: reuses the machine's torch, pandas, ...)          -> install.log
#   check    the GPU tests of tests/mixers/test_cuda.py and tests/bench/measuring/test_measure.py, once, at most
#            90 s; the result is recorded, a failure blocks nothing                     -> check.log
#   sweep    every registered mixer at 5 lengths (512-16384), d=1024, bfloat16 and float32, forward and train
#            (the `gpu` preset)                                                          -> sweep.tar.gz
#   fnet     the FNet paper's 512-token rows: BERT-Base, attention, fft, linear, dft-matrix and fft+attention:2
#            at mixer, block and encoder scope, bfloat16 and float32, forward and train  -> fnet.tar.gz
#   quality  a short quality run (the `gpu` quality preset: MQAR, every mixer)            -> quality.tar.gz
#   reports  only where time is left after every step is packed                         -> reports.tar.gz
# campaign.log (what ran, nvidia-smi, the time of each step) is written as it goes: at most 7 files in $OUT.
#
# DEVICE   cuda (default) or cpu: `DEVICE=cpu scripts/gpu_campaign.sh 120` is the dry run on a CPU, at tiny sizes
# OUT      where the packs go (default results/_campaign/out)
# RUNS     where the run folders live (default results/_campaign/<device>; ignored by git); a later call with
#          the same folders resumes each unfinished sweep and measures nothing twice
# PY       the Python to run with; given, `make install` is skipped (default .venv/bin/python after it)
# Only the CLI (`python -m bench ...`) is used: nothing here depends on how the package is laid out inside.
set -uo pipefail
cd "$(dirname "$0")/.."
budget=${1:-540}
device=${DEVICE:-cuda}
out=${OUT:-results/_campaign/out}
runs=${RUNS:-results/_campaign/$device}
[[ $budget =~ ^[0-9]+$ ]] || { echo "usage: scripts/gpu_campaign.sh [BUDGET_S] (whole seconds, got '$budget')" >&2; exit 2; }
[[ $device == cuda || $device == cpu ]] || { echo "DEVICE must be cuda or cpu, got '$device'" >&2; exit 2; }
mkdir -p "$out" "$runs" || exit 2
start=$(date +%s)
left() { echo $((budget - ($(date +%s) - start))); }
log() { echo "[campaign $(($(date +%s) - start))s] $*" | tee -a "$out/campaign.log"; }
# limit RESERVE CAP: the seconds a step may take: what is left less RESERVE percent of the budget (kept for the
# steps after it), at most CAP
limit() { local t=$(($(left) - budget * $1 / 100)); echo $((t < $2 ? t : $2)); }

# step NAME SECONDS COMMAND...: run a bounded step (SIGTERM at its limit, SIGKILL 10 s later), its output in
# $runs/NAME.log. It runs in the background so that a signal to this script reaches it at once (see the trap).
child= current=
step() {
  local name=$1 secs=$2; shift 2
  if ((secs < 10)); then log "$name: skipped, ${secs}s left for it"; return 1; fi
  log "$name (at most ${secs}s): $*"
  timeout --signal=TERM --kill-after=10 "$secs" "$@" >"$runs/$name.log" 2>&1 &
  child=$! current=$name
  wait "$child"
  local rc=$?
  child= current=
  tail -3 "$runs/$name.log" | tee -a "$out/campaign.log"
  log "$name: exit status $rc$( ((rc == 124)) && echo ' (stopped at its limit; finished points are kept)')"
}
# killed (the command limit, ^C): stop the running step the way its limit would (a sweep keeps its finished
# points), pack what it has, and go; the steps packed before are in $out already
on_signal() {
  trap - TERM INT HUP
  log "stopped by a signal${current:+ during $current}"
  if [[ -n $child ]]; then
    kill -TERM "$child" 2>/dev/null && wait "$child" 2>/dev/null
    [[ $current == check ]] || pack "$current"
  fi
  exit 143
}
trap on_signal TERM INT HUP

# pack NAME: the run folder of step NAME into $OUT/NAME.tar.gz (written aside, then moved: never half a pack)
pack() {
  local name=$1 folder=$runs/$1
  [[ -d $folder ]] || { log "$name: no run folder to pack"; return; }
  tar czf "$runs/.$name.tar.gz" --exclude=.lock -C "$runs" "$name" "$name.log" 2>/dev/null \
    || tar czf "$runs/.$name.tar.gz" --exclude=.lock -C "$runs" "$name"
  if (($(stat -c %s "$runs/.$name.tar.gz") > 16 * 1024 * 1024)); then  # over what one file may bring back
    tar czf "$runs/.$name.tar.gz" -C "$runs" --wildcards --no-recursion "$name" "$name/*.csv" "$name/*.json" \
      "$name/*.jsonl"
  fi
  mv -f "$runs/.$name.tar.gz" "$out/$name.tar.gz" && log "$name: packed $(du -h "$out/$name.tar.gz" | cut -f1) into $out/$name.tar.gz"
}

log "budget ${budget}s on $device; run folders in $runs, packs in $out"
if [[ -n ${PY:-} ]]; then
  py=$PY
else
  log "install (make install, reusing the machine's packages)"
  timeout "$(limit 70 240)" make install >"$out/install.log" 2>&1 \
    || { log "make install failed: see install.log"; tail -5 "$out/install.log" | tee -a "$out/campaign.log"; exit 1; }
  py=.venv/bin/python
fi
command -v nvidia-smi >/dev/null && nvidia-smi 2>&1 | head -20 >>"$out/campaign.log"
"$py" -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda,
  "gpu", torch.cuda.get_device_name(0) if torch.cuda.is_available() else None)' 2>&1 | tee -a "$out/campaign.log"

# sizes: the real ones on a GPU, tiny ones for the dry run on a CPU (the same steps and commands)
if [[ $device == cuda ]]; then
  sweep_args=(--preset gpu --budget 0.05 --min-reps 5)  # the preset at a shorter budget per point
  fnet_args=(--preset fnet-paper --seq-lens 512 --rounds 1)
  quality_args=(--preset gpu)
else
  sweep_args=(--preset gpu --seq-lens 32,64 --dims 64 --tokens 128 --dtypes float32 --budget 0.01 --min-reps 2)
  fnet_args=(--preset fnet-paper --seq-lens 32 --rounds 1 --model tiny --vocab 64 --dtypes float32 --modes forward
             --budget 0.01 --min-reps 2)
  quality_args=(--preset quick --tasks majority --mixers fft,linear --seq-lens 16 --dims 16 --steps 20 --seeds 0)
fi

# check: once (a resumed call skips it), at most 90 s, never blocks the steps after it
if [[ -e $runs/.checked ]]; then
  log "check: done by an earlier call (see its check.log)"
else
  step check "$(limit 55 90)" "$py" -m pytest -q -p no:cacheprovider -m gpu \
    tests/mixers/test_cuda.py tests/bench/measuring/test_measure.py
  cp "$runs/check.log" "$out/check.log" 2>/dev/null && touch "$runs/.checked"
fi

step sweep "$(limit 30 600)" "$py" -m bench sweep "${sweep_args[@]}" --device "$device" --out "$runs/sweep" \
  --no-report --quiet
pack sweep
step fnet "$(limit 12 600)" "$py" -m bench sweep "${fnet_args[@]}" \
  --mixers attention,fft,linear,dft-matrix,fft+attention:2 --device "$device" --out "$runs/fnet" --no-report --quiet
pack fnet
step quality "$(limit 2 600)" "$py" -m bench quality "${quality_args[@]}" --device "$device" \
  --out "$runs/quality" --no-report --quiet
pack quality

# reports: only with time left, after every pack; the packs above stand whatever happens here
if (($(left) > 40)); then
  for name in sweep fnet quality; do
    [[ -d $runs/$name ]] || continue
    secs=$(limit 3 120)
    ((secs >= 10)) || break
    timeout "$secs" "$py" -m bench report "$runs/$name" >>"$runs/reports.log" 2>&1 \
      && log "report: $runs/$name drawn" || log "report: $runs/$name not drawn (time or error: $runs/reports.log)"
  done
  (cd "$runs" && tar czf .reports.tar.gz --exclude='*.csv' --exclude='*.json*' --exclude=.lock reports.log \
    $(for name in sweep fnet quality; do [[ -e $name/report.html ]] && echo "$name/report.html $name/plots"; done) \
    2>/dev/null) && mv -f "$runs/.reports.tar.gz" "$out/reports.tar.gz" && log "reports: packed into $out/reports.tar.gz"
else
  log "reports: not drawn ($(left)s left); draw them later with: python -m bench report <folder>"
fi
log "done in $(($(date +%s) - start))s of ${budget}s"
