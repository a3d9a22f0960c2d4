"""The commands that read run folders (plot, report, compare, index), and the one-line messages and exit
statuses every `mixbench` command ends with (see `bench.cli`)."""

from __future__ import annotations

import errno
import sys
from pathlib import Path

EXIT_BAD_INPUT = 2
EXIT_FAULT = 1


def bad_input(message: str) -> int:
    print(f"mixbench: error: {message}", file=sys.stderr)
    return EXIT_BAD_INPUT


def fault(message: str) -> int:
    print(f"mixbench: {message}", file=sys.stderr)
    return EXIT_FAULT


def os_fault(exc: OSError, doing: str, rows: str = "", again: str = "") -> int:
    """One line for a fault of the machine: what could not be done, what is safe, and what to run after."""
    what = {errno.ENOSPC: "no space left on device", errno.EDQUOT: "disk quota exceeded",
            errno.EACCES: "permission denied", errno.EROFS: "read-only file system"}.get(exc.errno)
    what = what or (exc.strerror or str(exc)).lower()
    where = f" ({exc.filename})" if exc.filename else ""
    parts = [f"{what} {doing}{where}", rows, again]
    return fault("; ".join(part for part in parts if part))


def kept(folder: Path, table: str = "results.csv") -> str:
    """'the 32 measured rows are in RUN/results.csv', or '' where there is no such table."""
    path = folder / table
    word = "measured" if table == "results.csv" else "trained"
    rounds = ""
    if table == "results.csv" and (folder / "rounds.jsonl").exists():  # a point's row waits for its last round
        rounds = f" (and {count_lines(folder / 'rounds.jsonl')} measured rounds in rounds.jsonl)"
    if not path.exists():
        return f"no {word} row had been written yet{rounds}"
    return f"the {max(count_lines(path) - 1, 0)} {word} rows are in {path}{rounds}"


def count_lines(path: Path) -> int:
    try:
        with open(path) as handle:
            return sum(1 for _ in handle)
    except OSError:
        return 0


def run_dir(path: str) -> Path | None:
    """The run folder at `path`, or None where it holds neither results.csv nor quality.csv."""
    folder = Path(path)
    return folder if any((folder / name).is_file() for name in ("results.csv", "quality.csv")) else None


def draw(folder: Path, report: bool) -> int:
    """Draw a run folder's plots (and its report.html); a fault of the machine is one line, exit status 1."""
    from bench.reporting.render import render_run

    try:
        rendered = render_run(folder, page=report)
        print(f"mixbench: {len(rendered.plots)} plots in {folder / 'plots'}")
        if report:
            print(f"mixbench: report: {rendered.page}")
    except OSError as exc:
        safe = "; ".join(text for text in (kept(folder), kept(folder, "quality.csv"))
                         if text and "no " not in text[:3])
        return os_fault(exc, "writing the plots and report", safe or "no row was lost",
                        f"free space and run `mixbench report {folder}`")
    return 0


def cmd_plot(args) -> int:
    folder = run_dir(args.run_dir)
    if folder is None:
        return bad_input(f"{args.run_dir} is not a run folder (no results.csv or quality.csv in it)")
    return draw(folder, report=False)


def cmd_report(args) -> int:
    folder = run_dir(args.run_dir)
    if folder is None:
        return bad_input(f"{args.run_dir} is not a run folder (no results.csv or quality.csv in it)")
    return draw(folder, report=True)


def cmd_compare(args) -> int:
    from bench.reporting import compare

    run_a, run_b = run_dir(args.run_a), run_dir(args.run_b)
    for given, found in ((args.run_a, run_a), (args.run_b, run_b)):
        if found is None or not (found / "results.csv").is_file():
            return bad_input(f"{given} is not a run folder (no results.csv in it)")
    try:
        table = compare.compare(run_a, run_b, args.out, threshold=args.threshold)
    except OSError as exc:
        return os_fault(exc, "writing the comparison")
    print(compare.format_table(table, max_rows=None if args.all else 40))
    if args.fail_on and (table["verdict"] == args.fail_on).any():
        return EXIT_FAULT
    return 0


def cmd_index(args) -> int:
    from bench.reporting.index import write_index

    results_dir = Path(args.results_dir)
    if not results_dir.is_dir():
        return bad_input(f"{args.results_dir} is not a folder")
    print(f"mixbench: index: {write_index(results_dir)}")
    return 0
