#!/usr/bin/env bash
# A Ray cluster inside a SLURM allocation, and a mixbench run against it (Ray head on the first node, one Ray
# worker node per other node, the mixbench driver beside the head):
#
#   sbatch --nodes=4 --gpus-per-node=8 scripts/slurm_ray_sweep.sh sweep --preset gpu --gpu-type H100
#   sbatch --nodes=2 --gpus-per-node=4 scripts/slurm_ray_sweep.sh quality --preset gpu-campaign
#
# The arguments are a mixbench command (sweep or quality) and its options; `--backend ray --ray-address` are
# added. Every node runs the same checkout and .venv (`make install` once, on a shared file system), and Ray's
# token (~/.ray/auth_token, written by the head unless there is one) reaches the other nodes and the driver
# through the shared home (RAY_AUTH_MODE=token: Ray asks for it when an address is given). Rows go to
# the run folder the driver prints (results/<preset>-<gpu name>/ by default), one folder per GPU type: on
# nodes with several types give --gpu-type, one job per type. A job that runs out of time resumes from that
# folder when submitted again. RAY_PORT (default 6379) and NUM_CPUS (default: the allocation's) can be set.
#SBATCH --job-name=mixbench-ray
#SBATCH --nodes=2
#SBATCH --ntasks-per-node=1
#SBATCH --exclusive
#SBATCH --time=04:00:00
#SBATCH --output=mixbench-ray-%j.log
set -euo pipefail
cd "${SLURM_SUBMIT_DIR:-$(dirname "$0")/..}"
command=${1:-sweep}
shift || true
py=$PWD/.venv/bin/python
ray=$PWD/.venv/bin/ray
[ -x "$ray" ] || { echo "slurm_ray_sweep: $ray is missing: run make install where ray can be downloaded" >&2; exit 2; }

mapfile -t nodes < <(scontrol show hostnames "$SLURM_JOB_NODELIST")
head=${nodes[0]}
head_ip=$(srun --nodes=1 --ntasks=1 -w "$head" hostname --ip-address | awk '{print $1}')
address=$head_ip:${RAY_PORT:-6379}
gpus=${SLURM_GPUS_ON_NODE:-0}
cpus=${NUM_CPUS:-${SLURM_CPUS_ON_NODE:-$(nproc)}}
gres=()
[ "$gpus" -gt 0 ] && gres=(--gres="gpu:$gpus")
temp=/tmp/ray-$SLURM_JOB_ID  # short: Ray's socket paths must fit in 107 characters
export RAY_AUTH_MODE=token
trap 'kill $(jobs -p) 2>/dev/null || true' EXIT

echo "slurm_ray_sweep: head $head ($address), ${#nodes[@]} node(s), $gpus GPU(s) and $cpus CPU(s) each"
srun --nodes=1 --ntasks=1 --overlap -w "$head" "${gres[@]}" "$ray" start --head --node-ip-address="$head_ip" \
  --port="${RAY_PORT:-6379}" --num-cpus="$cpus" --num-gpus="$gpus" --temp-dir="$temp" --include-dashboard=false \
  --block &
for node in "${nodes[@]:1}"; do
  sleep 5  # the head answers first
  srun --nodes=1 --ntasks=1 --overlap -w "$node" "${gres[@]}" "$ray" start --address="$address" \
    --num-cpus="$cpus" --num-gpus="$gpus" --block &
done

# wait (up to 5 minutes) until every node has joined
sleep 10
"$py" - "$address" "${#nodes[@]}" <<'EOF'
import sys, time
import ray
address, wanted = sys.argv[1], int(sys.argv[2])
deadline = time.monotonic() + 300
while True:
    try:
        ray.init(address=address, logging_level="ERROR")
        break
    except Exception as exc:  # noqa: BLE001 - the head may still be starting
        if time.monotonic() > deadline:
            sys.exit(f"slurm_ray_sweep: no Ray head at {address} after 5 minutes ({exc})")
        time.sleep(5)
while (alive := sum(node["Alive"] for node in ray.nodes())) < wanted:
    if time.monotonic() > deadline:
        sys.exit(f"slurm_ray_sweep: {alive} of {wanted} Ray nodes joined in 5 minutes")
    time.sleep(5)
print(f"slurm_ray_sweep: {alive} Ray nodes, resources {ray.cluster_resources()}")
EOF

"$py" -m bench "$command" --backend ray --ray-address "$address" "$@"
