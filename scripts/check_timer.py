"""Check mixbench's timer against torch.utils.benchmark on the same mixer, input and device.

    python scripts/check_timer.py [--device cpu|cuda] [--mixers fft,attention] [--seq-len 1024] [--dim 128]

Both time the same forward call with the same number of threads (torch.utils.benchmark defaults to one) (built by `bench.measuring.timing.prepare_call`, under inference mode); the
table shows both medians and their ratio. Agreement within the spread of either is the expectation.
"""

import argparse

import torch
import torch.utils.benchmark as tbench

import mixers
from bench.measuring import measure
from bench.measuring.points import mixer_point
from bench.measuring.timing import prepare_call


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--mixers", default=",".join(mixers.available()))
    parser.add_argument("--seq-len", type=int, default=1024)
    parser.add_argument("--dim", type=int, default=128)
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--dtype", default="float32")
    parser.add_argument("--budget", type=float, default=1.0)
    args = parser.parse_args()
    policy = measure.TimingPolicy(budget_s=args.budget, min_reps=10)
    print(f"device={args.device} seq_len={args.seq_len} dim={args.dim} batch={args.batch} dtype={args.dtype}")
    print(f"{'mixer':16} {'mixbench ms':>12} {'p20-p80':>17} {'torch.utils.benchmark ms':>25} {'IQR':>8} {'ratio':>6}")
    for name in args.mixers.split(","):
        point = mixer_point(name, args.seq_len, args.dim, args.batch, args.dtype, "forward", args.device)
        if not mixers.get(name).supports(args.seq_len, args.dim, getattr(torch, args.dtype), args.device):
            continue
        call = prepare_call(point).step
        with torch.inference_mode():
            ours = measure.time_call(call, args.device, policy)
            theirs = tbench.Timer("call()", globals={"call": call}, num_threads=torch.get_num_threads()).blocked_autorange(min_run_time=args.budget)
        print(f"{name:16} {ours.median_ms:12.4f} {ours.p20_ms:8.4f}-{ours.p80_ms:<8.4f} {theirs.median * 1e3:25.4f} "
              f"{theirs.iqr * 1e3:8.4f} {ours.median_ms / (theirs.median * 1e3):6.3f}")


if __name__ == "__main__":
    main()
