"""The `mixbench` command line: list, sweep, quality, plot, report, compare, index.

Exit statuses: 0 done; 2 bad input (one line on stderr naming what is wrong and what is allowed; nothing
written); 1 a fault of the environment after measuring (a full disk, say: one line saying what could not
be done and what is safe; every measured row is kept); 128 + N when signal N (SIGINT, SIGTERM) stopped
the run (the last line says how to resume). A sweep whose points failed still exits 0: failures are rows.
The commands that read run folders, and these one-line messages, live in `bench.cli_read`.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import sys
from pathlib import Path

from bench.cli_read import (EXIT_BAD_INPUT, bad_input, cmd_compare, cmd_index, cmd_plot, cmd_report, draw,
                            fault, kept, os_fault)


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors (no usage dump), still exit status 2."""

    def error(self, message: str):
        self.exit(EXIT_BAD_INPUT, f"{self.prog}: error: {message} (see {self.prog} --help)\n")

    def format_help(self) -> str:
        if callable(self.epilog):  # the presets' list imports the plan (and torch): only when help is asked for
            self.epilog = self.epilog()
        return super().format_help()


# -- progress ---------------------------------------------------------------------------------------

class Progress:
    """tqdm's bar on a terminal, a line per point in a log, nothing in CI or with --quiet."""

    def __init__(self, quiet: bool, unit: str = "point"):
        self.quiet = quiet or bool(os.environ.get("CI"))
        self.unit = unit
        self.bar = None

    def __call__(self, done: int, total: int, item, eta_s: float | None) -> None:
        if self.quiet:
            return
        if not sys.stderr.isatty() or importlib.util.find_spec("tqdm") is None:  # tqdm is optional ([progress])
            if item is not None:
                print(f"{done}/{total} {item.label()}", file=sys.stderr, flush=True)
            return
        from tqdm import tqdm

        if self.bar is None:
            self.bar = tqdm(total=total, unit=self.unit, dynamic_ncols=True, leave=False)
        self.bar.total = total
        self.bar.update(done - self.bar.n)
        if item is None:
            self.bar.close()
            self.bar = None
        else:
            self.bar.set_description_str(item.label(), refresh=True)


# -- commands ---------------------------------------------------------------------------------------

def cmd_list(args) -> int:
    import torch

    import mixers
    from bench import tasks

    rows = [("name", f"params at n={args.seq_len}, d={args.dim}", "causal", "constraints", "what it computes")]
    for name in mixers.available():
        cls = mixers.get(name)
        doc = (cls.__doc__ or sys.modules[cls.__module__].__doc__ or "").strip().splitlines()
        support = cls.supports(args.seq_len, args.dim, torch.float32, "cpu")
        params = f"{cls.param_count(args.seq_len, args.dim):,}" if support else "n/a at this size"
        rows.append((name, params, "yes" if cls.causal_form else "no", cls.constraints or "-", doc[0] if doc else ""))
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths)) + "  " + row[4])
    print("\ntasks (mixbench quality --tasks):")
    for name in tasks.available():
        doc = (tasks.get(name).__doc__ or "").strip().splitlines()
        print(f"  {name.ljust(max(len(n) for n in tasks.available()))}  {doc[0] if doc else ''}")
    return 0


def _warn(warnings) -> None:
    for warning in warnings:
        print(f"mixbench: warning: {warning}", file=sys.stderr)


def _interrupted(exc, run_dir: Path, command: str, table: str) -> int:
    from bench.measuring.runner import Interrupted

    name = str(exc) if isinstance(exc, Interrupted) else "SIGINT"
    status = exc.exit_status if isinstance(exc, Interrupted) else 130
    rows = kept(run_dir, table)
    print(f"\nmixbench: interrupted by {name}; {rows or 'nothing was measured yet'}; run the same command again "
          f"to resume ({command})", file=sys.stderr)
    return status


def _resume_hint(args) -> str:
    return "mixbench " + " ".join(sys.argv[1:]) if sys.argv[1:] else f"mixbench {args.command}"


def _pool_options(args) -> dict:
    return dict(workers=args.workers, devices=args.devices, threads=args.threads, backend=args.backend,
                ray_address=args.ray_address, gpu_type=args.gpu_type)


def _pool_text(slots, backend) -> str:
    """'2 workers of 1 thread', '4 Ray workers', ..."""
    kind = " Ray" if backend.name == "ray" else ""
    threads = f" of {slots[0].threads} thread{'s' if slots[0].threads > 1 else ''}" if slots[0].threads else ""
    return f"{len(slots)}{kind} worker{'s' if len(slots) > 1 else ''}{threads}"


def _refused(exc: Exception) -> int:
    """The exit status (and one line) of a plan refused: bad input, or workers that could not start."""
    from bench.measuring.points import PlanError

    return bad_input(str(exc)) if isinstance(exc, PlanError) else fault(str(exc))


def _carry_out(args, planned, run, table: str, done: str) -> int:
    """Run a sweep or a quality run under `interrupts()`, turn every fault into one line that says what is kept,
    then report; `done` words what was written ('measured {n} points')."""
    from bench.measuring.runner import Interrupted, interrupts
    from bench.measuring.store import RunFolderError
    from bench.measuring.workers import StartError

    out = planned.out
    again = "run the same command again to resume"
    try:
        with interrupts():
            result = run()
    except RunFolderError as exc:
        return bad_input(str(exc))
    except (Interrupted, KeyboardInterrupt) as exc:
        return _interrupted(exc, out, _resume_hint(args), table)
    except StartError as exc:
        return fault(f"{exc}; {kept(out, table) or 'nothing was written yet'}; {again}")
    except OSError as exc:
        return os_fault(exc, "while writing the run", kept(out, table), f"fix that and {again}")
    finally:
        planned.backend.close()
    if getattr(result, "took_over", None):
        print(f"mixbench: took over the lock of {out}, left by a process that is gone ({result.took_over})")
    counts = ", ".join(f"{count} {status}" for status, count in sorted(result.counts().items())) or "nothing new"
    print(f"mixbench: {done.format(n=len(result.written))} ({counts}); {result.skipped} already in {out}")
    if not args.no_report:
        return draw(out, report=True)
    return 0


def _sweep_axes(args) -> dict:
    return dict(layouts=args.mixers, seq_lens=args.seq_lens, dims=args.dims, batches=args.batch, tokens=args.tokens,
                dtypes=args.dtypes, modes=args.modes, scopes=args.scope, model=args.model, layers=args.layers,
                ffn=args.ffn, vocab=args.vocab, norm=args.norm, rounds=args.rounds, out=args.out,
                timeout_s=args.timeout, budget_s=args.budget, min_reps=args.min_reps,
                causal=True if args.causal else None)


def _quality_axes(args) -> dict:
    return dict(tasks=args.tasks, layouts=args.mixers, seq_lens=args.seq_lens, dims=args.dims, layers=args.layers,
                steps=args.steps, lrs=args.lrs, seeds=args.seeds, batch=args.batch, norm=args.norm, shift=args.shift,
                out=args.out, timeout_s=args.timeout, weight_decays=args.weight_decays)


def _dry_run(args) -> int:
    """--dry-run: the plan, its refusals and an estimate of its wall time on the target; nothing measured or
    written (bench.measuring.estimate)."""
    from bench import api
    from bench.measuring import estimate
    from bench.measuring.points import PlanError

    quality = args.command == "quality"
    if not args.dry_run:
        return bad_input(f"--target {args.target} names the device a --dry-run estimates for; add --dry-run")
    try:
        target, note = estimate.resolve_target(args.target, args.device,
                                               estimate.gpu_plan(args.preset, getattr(args, "dtypes", None), quality))
        if quality:
            planned = api.plan_quality(args.preset, **_quality_axes(args), device=target.device, dry_run=True)
        else:
            planned = api.plan_sweep(args.preset, **_sweep_axes(args), device=target.device, dry_run=True)
    except PlanError as exc:
        return bad_input(str(exc))
    if quality:
        found = estimate.estimate_quality(planned.runs, planned.axes, target, not args.no_report, note)
        lines = estimate.quality_lines(found, planned.runs, planned.axes, planned.preset)
    else:
        found = estimate.estimate_sweep(planned.points, planned.axes, target, estimate.harness_overhead_s(), note)
        lines = estimate.sweep_lines(found, planned.points, planned.axes, planned.preset)
    _warn(planned.warnings)
    print("\n".join(lines))
    return 0


def cmd_sweep(args) -> int:
    from bench import api
    from bench.measuring.points import PlanError
    from bench.measuring.workers import StartError

    if args.dry_run or args.target is not None:
        return _dry_run(args)
    try:
        sweep_plan = api.plan_sweep(args.preset, **_sweep_axes(args), device=args.device, **_pool_options(args))
    except (PlanError, StartError) as exc:
        return _refused(exc)
    _warn(sweep_plan.warnings)
    rounds = sweep_plan.axes.rounds
    print(f"mixbench: sweeping {len(sweep_plan.points)} points ({sweep_plan.preset or 'custom'} preset, "
          f"{rounds} round{'s' if rounds > 1 else ''}) on {sweep_plan.device} "
          f"with {_pool_text(sweep_plan.slots, sweep_plan.backend)} into {sweep_plan.out}", flush=True)
    return _carry_out(args, sweep_plan, lambda: api.run_plan(sweep_plan, flush_l2=args.flush_l2,
                                                             progress=Progress(args.quiet)),
                      "results.csv", "measured {n} points")


def cmd_quality(args) -> int:
    from bench import api
    from bench.measuring.points import PlanError
    from bench.measuring.workers import StartError

    if args.dry_run or args.target is not None:
        return _dry_run(args)
    try:
        quality_plan = api.plan_quality(args.preset, **_quality_axes(args), device=args.device, **_pool_options(args))
    except (PlanError, StartError) as exc:
        return _refused(exc)
    print(f"mixbench: training {len(quality_plan.runs)} runs ({quality_plan.preset} preset) on {quality_plan.device} "
          f"with {_pool_text(quality_plan.slots, quality_plan.backend)} into {quality_plan.out}", flush=True)
    return _carry_out(args, quality_plan, lambda: api.run_quality(quality_plan, progress=Progress(args.quiet,
                                                                                                 unit="run")),
                      "quality.csv", "trained {n} runs")


# -- parser -----------------------------------------------------------------------------------------

def _common_run_options(command) -> None:
    command.add_argument("--device", default="auto", help="auto (default), cpu or cuda")
    command.add_argument("--timeout", type=float, help="seconds one point or run may take before it is killed")
    command.add_argument("--workers", help="worker processes (GPUs on CUDA: one each); with --backend ray, actors "
                         "(default: one per GPU of the cluster)")
    command.add_argument("--devices", help="comma-separated GPU indices, one worker each, e.g. 0,1,3")
    command.add_argument("--threads", help="threads per worker (torch.set_num_threads; default: torch's own, or "
                         "cores / workers for quality on a CPU)")
    command.add_argument("--backend", default="local", help="local (default: worker processes on this machine) or "
                         "ray (actors on a Ray cluster; see --ray-address)")
    command.add_argument("--ray-address", help="the Ray cluster: auto (one already running), HOST:PORT of its head, "
                         "or left out: RAY_ADDRESS, the latest started here, else a new one on this machine")
    command.add_argument("--gpu-type", help="with --backend ray, the accelerator type to use, e.g. H100 (required "
                         "on a cluster with several; one run folder per type)")
    command.add_argument("--no-report", action="store_true", help="measure only; draw nothing")
    command.add_argument("--quiet", action="store_true", help="no progress output (also when CI is set)")


def _presets_epilog(quality: bool, examples: str):
    """The epilog of a sweep's or a quality run's help: its presets (read when help is printed), then examples."""

    def epilog() -> str:
        from bench.measuring.plan import PRESETS, QUALITY_PRESETS

        presets = QUALITY_PRESETS if quality else PRESETS
        listed = "\n".join(f"  {name:10} {description}" for name, (description, _) in presets.items())
        return f"presets:\n{listed}\n\nexamples:\n{examples}"
    return epilog


def _run_command(commands, name: str, text: str, description: str, examples: str, quality: bool = False):
    """The parser of a command that measures into a run folder (sweep, quality), with its --preset."""
    command = commands.add_parser(name, help=text, formatter_class=argparse.RawDescriptionHelpFormatter,
                                  description=description, epilog=_presets_epilog(quality, examples))
    command.add_argument("--preset", help="one of the presets listed below (default: gpu on CUDA, cpu otherwise)")
    command.add_argument("--dry-run", action="store_true", help="print the plan (per mixer and scope, refusals with "
                         "their reasons) and an ESTIMATE of its wall time on --target; measure and write nothing")
    command.add_argument("--target", help="with --dry-run, the device to estimate for: h100, h200 or cpu (default: "
                         "this machine's; a GPU plan on a machine without a GPU: h100)")
    return command


def build_parser() -> argparse.ArgumentParser:
    """The command line's parser; building it imports nothing heavy (no torch), so argv is parsed first."""
    from bench.measuring.points import DTYPE_NAMES, MODES, NORMS, SCOPES

    parser = _Parser(prog="mixbench", description="Measure token mixers (FFT, DFT, Hartley, DCT, Hadamard, "
                     "linear, MLP-Mixer, attention...) across sequence lengths: speed, memory, what they learn, "
                     "and the frontiers.")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    commands.required = True

    listing = commands.add_parser("list", help="the registered mixers (parameters, constraints) and tasks")
    listing.add_argument("--seq-len", type=int, default=512, help="length at which to count parameters (512)")
    listing.add_argument("--dim", type=int, default=768, help="width at which to count parameters (768)")
    listing.set_defaults(run=cmd_list)

    sweep = _run_command(
        commands, "sweep", "measure mixers x lengths x settings; resumes an interrupted run in the same --out",
        "Measure every point (mixer x scope x seq_len x dim x batch x dtype x mode) in child "
        "processes, append it to OUT/results.csv, then draw the plots and OUT/report.html.\n"
        "Explicit axes replace the preset's; with neither, the preset for the device found is used.\n"
        "Where a mixer name goes, a layout BASE+TOP:K goes too (TOP in an encoder's last K layers; "
        "FNet-Hybrid is fft+attention:2).",
        "  mixbench sweep                       # the preset for this machine\n"
        "  mixbench sweep --preset paper --device cuda\n"
        "  mixbench sweep --mixers fft,attention --seq-lens 512,1k,4k --dims 768 --dtypes bf16 --modes forward\n"
        "  mixbench sweep --mixers attention,fft,fft+attention:2 --scope mixer,block,encoder --model base "
        "--seq-lens 512")
    sweep.add_argument("--mixers", help="comma-separated mixer names or layouts (default: all; see `mixbench list`)")
    sweep.add_argument("--seq-lens", help="comma-separated sequence lengths, e.g. 512,1k,4096")
    sweep.add_argument("--dims", help="comma-separated model widths, e.g. 768")
    sweep.add_argument("--batch", help="comma-separated fixed batch sizes, one series each")
    sweep.add_argument("--tokens", help="comma-separated tokens per batch (batch = tokens // seq_len), one series each")
    sweep.add_argument("--dtypes", help=f"comma-separated: {', '.join(DTYPE_NAMES)} (or bf16, fp16, fp32, fp64)")
    sweep.add_argument("--modes", help=f"comma-separated: {', '.join(MODES)} (train = forward + backward; "
                       "+ an AdamW step at block and encoder scope)")
    sweep.add_argument("--scope", help=f"comma-separated: {', '.join(SCOPES)} (default: mixer)")
    sweep.add_argument("--model", help="a named shape, setting width, layers and ffn: tiny, small, base (BERT-Base), "
                       "large (BERT-Large)")
    sweep.add_argument("--layers", help="encoder layers (default 12)")
    sweep.add_argument("--ffn", help="feed-forward width of a block (default 4 x dim)")
    sweep.add_argument("--vocab", help="encoder vocabulary (default 32000; 0: vectors in, no embedding, no head)")
    sweep.add_argument("--norm", help=f"LayerNorm placement in blocks: {', '.join(NORMS)} (default post, as BERT and "
                       "FNet)")
    sweep.add_argument("--causal", action="store_true", help="every mixer in its causal form (a decoder's; SDPA's "
                       "causal kernel for attention); a mixer without one is an `unsupported` row with its reason")
    sweep.add_argument("--rounds", help="worker processes each point is measured in, interleaved (default 2)")
    sweep.add_argument("--out", help="run folder (default: results/<preset>-<device>); an existing one is resumed")
    sweep.add_argument("--budget", type=float, help="seconds of measured calls per point (preset's)")
    sweep.add_argument("--min-reps", type=int, help="fewest timed repetitions per point (preset's)")
    sweep.add_argument("--flush-l2", action="store_true", help="write a buffer twice the L2 size before every "
                       "timed call (outside the timed region), for cold-cache numbers")
    _common_run_options(sweep)
    sweep.set_defaults(run=cmd_sweep)

    quality = _run_command(
        commands, "quality", "train every mixer (or layout) on tasks and draw the speed-accuracy frontier",
        "Train an encoder per (task x layout x length x width x learning rate x seed) in worker "
        "processes, append each run to OUT/quality.csv, then draw the plots and OUT/report.html. The "
        "best rate per layout is chosen on validation accuracy and reported on the test set.",
        "  mixbench quality --device cpu --tasks mqar --mixers attention,fft\n"
        "  mixbench quality --tasks mqar,majority --mixers fft,attention,fft+attention:1 --lrs 1e-3,3e-3 "
        "--seeds 0,1,2", quality=True)
    quality.add_argument("--tasks", help="comma-separated tasks (see `mixbench list`)")
    quality.add_argument("--mixers", help="comma-separated mixer names or layouts (default: every mixer and "
                         "FNet-Hybrid)")
    quality.add_argument("--seq-lens", help="comma-separated lengths (default: each task's in the preset)")
    quality.add_argument("--dims", help="comma-separated model widths")
    quality.add_argument("--layers", help="encoder layers")
    quality.add_argument("--steps", help="training steps per run")
    quality.add_argument("--lrs", help="comma-separated peak learning rates (the best on validation is reported)")
    quality.add_argument("--weight-decays", help="comma-separated AdamW weight decays, a grid like --lrs "
                         "(default: the preset's, 0.1 unless it says otherwise)")
    quality.add_argument("--seeds", help="comma-separated seeds (model initialisation and training data)")
    quality.add_argument("--batch", help="training batch size")
    quality.add_argument("--norm", help=f"LayerNorm placement: {', '.join(NORMS)} (preset's)")
    quality.add_argument("--shift", action=argparse.BooleanOptionalAction, default=None,
                         help="the previous-token shift before the first layer, for every layout (preset's: on)")
    quality.add_argument("--out", help="run folder (default: results/<preset>-<device>, beside the sweep's)")
    _common_run_options(quality)
    quality.set_defaults(run=cmd_quality)

    for name, function, text in (("plot", cmd_plot, "redraw the plots and tables of a run folder"),
                                 ("report", cmd_report, "redraw the plots and report.html of a run folder")):
        command = commands.add_parser(name, help=text)
        command.add_argument("run_dir", metavar="RUN_DIR", help="a folder holding results.csv or quality.csv")
        command.set_defaults(run=function)

    comparing = commands.add_parser("compare", help="per-point speed and memory of two runs (B against A), with a "
                                    "verdict that knows their noise")
    comparing.add_argument("run_a", metavar="RUN_A", help="the baseline run folder")
    comparing.add_argument("run_b", metavar="RUN_B", help="the run compared with it")
    comparing.add_argument("--out", help="where to write compare.csv and its plot (default: RUN_B/compare-<A>)")
    comparing.add_argument("--threshold", type=float, default=None,
                           help="smallest relative change called a difference (default 0.5 on CPU, measured between "
                           "same-code runs there; 0.05 on GPU)")
    comparing.add_argument("--fail-on", choices=("slower", "faster"), help="exit 1 when any point has this verdict")
    comparing.add_argument("--all", action="store_true", help="print every point, not the first 40")
    comparing.set_defaults(run=cmd_compare)

    indexing = commands.add_parser("index", help="write RESULTS_DIR/README.md, the index of the run folders in it")
    indexing.add_argument("results_dir", metavar="RESULTS_DIR", nargs="?", default="results")
    indexing.set_defaults(run=cmd_index)
    return parser


def _forkserver_preload(args) -> list[str] | None:
    """What the server that this command's workers are forked from imports, or None where they are not forked CPU
    workers (not a sweep or a quality run; Ray; a GPU); decided from the parsed arguments, before anything imports
    torch. A quality run's server also imports what training needs (forkserver.TRAINING_PRELOAD)."""
    from bench.measuring import forkserver

    if args.command not in ("sweep", "quality") or args.backend != "local" or args.dry_run:
        return None
    if not (args.device == "cpu" or args.device == "auto" and not os.path.exists("/proc/driver/nvidia/version")):
        return None
    return forkserver.TRAINING_PRELOAD if args.command == "quality" else forkserver.PRELOAD


def main(argv: list[str] | None = None) -> int:
    from bench.measuring import forkserver

    early = None
    try:
        args = build_parser().parse_args(argv)  # torch-free: nothing has imported torch yet
        # the `mixbench` command (argv None: a process of its own) starts its workers' forkserver before the command
        # imports torch, so that the server imports torch while this process does (seconds sooner to the first point)
        preload = _forkserver_preload(args) if argv is None else None
        early = forkserver.start_early(preload) if preload is not None else None
        return args.run(args)
    except KeyboardInterrupt:
        print("\nmixbench: interrupted; run the same command again to resume", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `mixbench list | head`
        sys.stderr.close()
        return 0
    finally:
        if early is not None:
            forkserver.stop()


if __name__ == "__main__":
    sys.exit(main())
