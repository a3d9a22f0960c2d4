"""CPU timings behind two choices in mixers/: the `fft` mixer's variant, and `dct`'s matmul/FFT crossover.

    .venv/bin/python scripts/time_fft_cpu.py --repeat 3        # fft mixer vs the usual one-liners
    .venv/bin/python scripts/time_fft_cpu.py --dct --repeat 3  # dct: matmul vs FFT path, (seq_len, dim) grid

Median milliseconds per call from torch.utils.benchmark.Timer.blocked_autorange, float32. The
numbers move with machine load: run when the machine is quiet, and repeat (`--repeat`) to keep the
smallest median of each cell.
"""

from __future__ import annotations

import argparse

import torch
from torch.utils.benchmark import Timer

import mixers
from mixers import dct as dct_module


def rfft2_flip(x):
    """Alternative to the mixer's gather: rfft2, then slice and flip copies into a preallocated output."""
    dim = x.shape[-1]
    half = dim // 2 + 1
    real = torch.fft.rfft2(x).real
    out = torch.empty_like(x)
    out[..., :half] = real
    mirrored = real[..., 1:dim - half + 1]
    out[..., :1, half:] = mirrored[..., :1, :].flip(-1)
    out[..., 1:, half:] = mirrored[..., 1:, :].flip((-2, -1))
    return out


def fft_variants(seq_len, dim):
    return {
        "fft mixer": mixers.build("fft", seq_len, dim),
        "fft2(x).real": lambda x: torch.fft.fft2(x).real,
        "fft2(x).real.contiguous()": lambda x: torch.fft.fft2(x).real.contiguous(),
        "fft(fft(x,-1),-2).real": lambda x: torch.fft.fft(torch.fft.fft(x, dim=-1), dim=-2).real,
        "rfft2 + flip copies": rfft2_flip,
    }


def median_ms(fn, x, min_run_time):
    return Timer("fn(x)", globals={"fn": fn, "x": x}).blocked_autorange(min_run_time=min_run_time).median * 1e3


def table(rows, columns, cell, repeat, show=True):
    """Print a markdown table; each cell is the smallest median over `repeat` passes."""
    best = {}
    for _ in range(repeat):
        for row in rows:
            for column in columns:
                value = cell(row, column)
                best[row, column] = min(best.get((row, column), float("inf")), value)
    if show:
        print("| " + " | ".join(["seq_len"] + list(columns)) + " |")
        print("|" + " --- |" * (len(columns) + 1))
        for row in rows:
            print(f"| {row} | " + " | ".join(f"{best[row, c]:.2f}" for c in columns) + " |", flush=True)
    return best


def time_fft(args):
    seq_lens = [256, 512, 1024, 2048, 4096]
    columns = list(fft_variants(16, 16))
    inputs = {n: torch.randn(args.batch, n, args.dim) for n in seq_lens}
    variants = {n: fft_variants(n, args.dim) for n in seq_lens}
    for n in seq_lens:  # same answer from every variant
        ref = variants[n]["fft2(x).real"](inputs[n])
        for name, fn in variants[n].items():
            torch.testing.assert_close(fn(inputs[n]), ref, rtol=1e-4, atol=1e-3 * n ** 0.5, msg=name)
    print(f"median ms per call, CPU ({torch.get_num_threads()} threads), float32, "
          f"batch {args.batch}, dim {args.dim}")
    with torch.inference_mode():
        table(seq_lens, columns, lambda n, c: median_ms(variants[n][c], inputs[n], args.min_run_time), args.repeat)


def time_dct(args):
    """dct's two paths on a grid of (seq_len, dim); each cell is "matmul / fft" in ms."""
    seq_lens = [8, 16, 32, 48, 64, 128, 256]
    dims = [8, 16, 32, 48, 64, 128, 256, 512]
    modules = {(n, d, how): mixers.build("dct", n, d, method=how) for n in seq_lens for d in dims
               for how in ("matmul", "fft")}

    def cell(n, column):
        d, how = column
        return median_ms(modules[n, d, how], torch.randn(args.batch, n, d), args.min_run_time)

    print(f"median ms per call, CPU ({torch.get_num_threads()} threads), float32, batch {args.batch}; "
          "cells: matmul / fft path")
    with torch.inference_mode():
        best = table(seq_lens, [(d, how) for d in dims for how in ("matmul", "fft")], cell, args.repeat,
                     show=False)
    print("| seq_len \\ dim | " + " | ".join(map(str, dims)) + " |")
    print("|" + " --- |" * (len(dims) + 1))
    for n in seq_lens:
        cells = []
        for d in dims:
            matmul_ms, fft_ms = best[n, (d, "matmul")], best[n, (d, "fft")]
            auto = dct_module.resolve(n, d)
            disagrees = (matmul_ms <= fft_ms) != (auto == "matmul")
            cells.append(f"{matmul_ms:.3f} / {fft_ms:.3f}" + (f" (auto: {auto})" if disagrees else ""))
        print(f"| {n} | " + " | ".join(cells) + " |", flush=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dct", action="store_true", help="time dct's matmul/FFT crossover instead")
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--dim", type=int, default=512)
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--min-run-time", type=float, default=1.0, help="seconds per cell")
    args = parser.parse_args()
    (time_dct if args.dct else time_fft)(args)


if __name__ == "__main__":
    main()
