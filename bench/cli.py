"""The `mixbench` command line: list, sweep, plot, report, compare.

Bad input gets one line on stderr naming what is wrong and what is allowed, exit status 2, no
traceback and nothing written. A sweep exits 0 whatever its points did: failures are rows.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

EXIT_BAD_INPUT = 2


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors (no usage dump), still exit status 2."""

    def error(self, message: str):
        self.exit(EXIT_BAD_INPUT, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _bad_input(message: str) -> int:
    print(f"mixbench: error: {message}", file=sys.stderr)
    return EXIT_BAD_INPUT


# -- progress ---------------------------------------------------------------------------------------

def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "?"
    seconds = int(seconds)
    return f"{seconds // 60}m{seconds % 60:02d}s" if seconds >= 60 else f"{seconds}s"


class Progress:
    """A one-line bar on a terminal, a line per point in a log, nothing in CI or with --quiet."""

    def __init__(self, quiet: bool):
        self.quiet = quiet or bool(os.environ.get("CI"))
        self.tty = sys.stderr.isatty()
        self.start = time.monotonic()

    def __call__(self, done: int, total: int, point, eta_s: float | None) -> None:
        if self.quiet:
            return
        if point is None:
            if self.tty:
                sys.stderr.write("\r\033[K")
            return
        what = f"{done}/{total} {point.label()} (left: {_duration(eta_s)})"
        if self.tty:
            width = 24
            filled = int(width * done / max(total, 1))
            sys.stderr.write(f"\r\033[K[{'#' * filled}{'.' * (width - filled)}] {what}")
        else:
            sys.stderr.write(what + "\n")
        sys.stderr.flush()


# -- commands ---------------------------------------------------------------------------------------

def cmd_list(args) -> int:
    import torch

    import mixers

    rows = [("name", f"params at n={args.seq_len}, d={args.dim}", "constraints", "what it computes")]
    for name in mixers.available():
        cls = mixers.get(name)
        doc = (cls.__doc__ or sys.modules[cls.__module__].__doc__ or "").strip().splitlines()
        support = cls.supports(args.seq_len, args.dim, torch.float32, "cpu")
        params = f"{cls.param_count(args.seq_len, args.dim):,}" if support else "n/a at this size"
        rows.append((name, params, cls.constraints or "-", doc[0] if doc else ""))
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths)) + "  " + row[3])
    return 0


def cmd_sweep(args) -> int:
    from bench import api
    from bench.measuring.plan import PlanError
    from bench.measuring.store import RunFolderError

    try:
        sweep_plan = api.plan_sweep(args.preset, mixers_=args.mixers, seq_lens=args.seq_lens, dims=args.dims,
                                    batches=args.batch, tokens=args.tokens, dtypes=args.dtypes, modes=args.modes,
                                    device=args.device, out=args.out, timeout_s=args.timeout,
                                    budget_s=args.budget, min_reps=args.min_reps)
    except PlanError as exc:
        return _bad_input(str(exc))
    out = sweep_plan.out
    print(f"mixbench: sweeping {len(sweep_plan.points)} points ({sweep_plan.preset or 'custom'} preset) on "
          f"{sweep_plan.device} into {out}", flush=True)
    try:
        result = api.run_plan(sweep_plan, flush_l2=args.flush_l2, progress=Progress(args.quiet))
    except RunFolderError as exc:
        return _bad_input(str(exc))
    counts = ", ".join(f"{count} {status}" for status, count in sorted(result.counts().items())) or "nothing new"
    print(f"mixbench: measured {len(result.written)} points ({counts}); {result.skipped} already in {out}")
    if not args.no_report:
        return _draw(out, report=True)
    return 0


def _run_dir(path: str) -> Path | None:
    run_dir = Path(path)
    return run_dir if (run_dir / "results.csv").is_file() else None


def _draw(run_dir: Path, report: bool) -> int:
    from bench.reporting import plots
    from bench.reporting import report as html_report

    drawn = plots.draw(run_dir)
    print(f"mixbench: {len(drawn)} plots in {run_dir / 'plots'}")
    if report:
        print(f"mixbench: report: {html_report.write(run_dir)}")
    return 0


def cmd_plot(args) -> int:
    run_dir = _run_dir(args.run_dir)
    if run_dir is None:
        return _bad_input(f"{args.run_dir} is not a run folder (no results.csv in it)")
    return _draw(run_dir, report=False)


def cmd_report(args) -> int:
    run_dir = _run_dir(args.run_dir)
    if run_dir is None:
        return _bad_input(f"{args.run_dir} is not a run folder (no results.csv in it)")
    return _draw(run_dir, report=True)


def cmd_compare(args) -> int:
    from bench.reporting import compare

    run_a, run_b = _run_dir(args.run_a), _run_dir(args.run_b)
    for given, found in ((args.run_a, run_a), (args.run_b, run_b)):
        if found is None:
            return _bad_input(f"{given} is not a run folder (no results.csv in it)")
    table = compare.compare(run_a, run_b, args.out)
    print(compare.format_table(table, max_rows=None if args.all else 40))
    return 0


def cmd_index(args) -> int:
    from bench.reporting.index import write_index

    results_dir = Path(args.results_dir)
    if not results_dir.is_dir():
        return _bad_input(f"{args.results_dir} is not a folder")
    print(f"mixbench: index: {write_index(results_dir)}")
    return 0


# -- parser -----------------------------------------------------------------------------------------

def build_parser() -> argparse.ArgumentParser:
    from bench.measuring.plan import DTYPES, MODES, PRESETS

    parser = _Parser(prog="mixbench", description="Measure token mixers (FFT, DFT, Hartley, DCT, Hadamard, "
                     "linear, MLP-Mixer, attention...) across sequence lengths: speed, memory, Pareto frontier.")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    commands.required = True

    listing = commands.add_parser("list", help="the registered mixers, their parameters and constraints")
    listing.add_argument("--seq-len", type=int, default=512, help="length at which to count parameters (512)")
    listing.add_argument("--dim", type=int, default=768, help="width at which to count parameters (768)")
    listing.set_defaults(run=cmd_list)

    presets = "\n".join(f"  {name:6} {description}" for name, (description, _) in PRESETS.items())
    sweep = commands.add_parser(
        "sweep", help="measure mixers x lengths x settings; resumes an interrupted run in the same --out",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Measure every point (mixer x seq_len x dim x batch x dtype x mode) in a child process, "
                    "append it to OUT/results.csv, then draw the plots and OUT/report.html.\n"
                    "Explicit axes replace the preset's; with neither, the preset for the device found is used.",
        epilog=f"presets:\n{presets}\n\nexamples:\n  mixbench sweep                       # the preset for this "
               f"machine\n  mixbench sweep --preset paper --device cuda\n  mixbench sweep --mixers fft,attention "
               f"--seq-lens 512,1k,4k --dims 768 --dtypes bf16 --modes forward")
    sweep.add_argument("--preset", help=f"one of: {', '.join(PRESETS)} (default: gpu on CUDA, cpu otherwise)")
    sweep.add_argument("--mixers", help="comma-separated mixer names (default: all; see `mixbench list`)")
    sweep.add_argument("--seq-lens", help="comma-separated sequence lengths, e.g. 512,1k,4096")
    sweep.add_argument("--dims", help="comma-separated model widths, e.g. 768")
    sweep.add_argument("--batch", help="comma-separated fixed batch sizes, one series each")
    sweep.add_argument("--tokens", help="comma-separated tokens per batch (batch = tokens // seq_len), one series each")
    sweep.add_argument("--dtypes", help=f"comma-separated: {', '.join(DTYPES)} (or bf16, fp16, fp32, fp64)")
    sweep.add_argument("--modes", help=f"comma-separated: {', '.join(MODES)} (train = forward + backward)")
    sweep.add_argument("--device", default="auto", help="auto (default), cpu or cuda")
    sweep.add_argument("--out", help="run folder (default: results/<preset>-<device>); an existing one is resumed")
    sweep.add_argument("--timeout", type=float, help="seconds a point may take before it is killed (preset's)")
    sweep.add_argument("--budget", type=float, help="seconds of measured calls per point (preset's)")
    sweep.add_argument("--min-reps", type=int, help="fewest timed repetitions per point (preset's)")
    sweep.add_argument("--flush-l2", action="store_true", help="write a buffer twice the L2 size before every "
                       "timed call (outside the timed region), for cold-cache numbers")
    sweep.add_argument("--no-report", action="store_true", help="measure only; draw nothing")
    sweep.add_argument("--quiet", action="store_true", help="no progress output (also when CI is set)")
    sweep.set_defaults(run=cmd_sweep)

    for name, function, text in (("plot", cmd_plot, "redraw the plots and tables of a run folder"),
                                 ("report", cmd_report, "redraw the plots and report.html of a run folder")):
        command = commands.add_parser(name, help=text)
        command.add_argument("run_dir", metavar="RUN_DIR", help="a folder holding results.csv")
        command.set_defaults(run=function)

    comparing = commands.add_parser("compare", help="per-point speed and memory ratios of two runs (B / A)")
    comparing.add_argument("run_a", metavar="RUN_A", help="the baseline run folder")
    comparing.add_argument("run_b", metavar="RUN_B", help="the run compared with it")
    comparing.add_argument("--out", help="where to write compare.csv and its plot (default: RUN_B/compare-<A>)")
    comparing.add_argument("--all", action="store_true", help="print every point, not the first 40")
    comparing.set_defaults(run=cmd_compare)

    indexing = commands.add_parser("index", help="write RESULTS_DIR/README.md, the index of the run folders in it")
    indexing.add_argument("results_dir", metavar="RESULTS_DIR", nargs="?", default="results")
    indexing.set_defaults(run=cmd_index)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.run(args)
    except KeyboardInterrupt:
        print("\nmixbench: interrupted; run the same command again to resume", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `mixbench list | head`
        sys.stderr.close()
        return 0


if __name__ == "__main__":
    sys.exit(main())
