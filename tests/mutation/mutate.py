"""`make mutate`: mutation testing of the core modules with mutmut 3, and the killed share per module.

    python tests/mutation/mutate.py [--report] [MODULE ...]   (from the repository root; default: every module)

mutmut (configured in pyproject.toml, [tool.mutmut]) copies bench/, mixers/ and mixbench_registry.py into
mutants/, writes every
mutant of the files it mutates, then runs each mutant in SCOPE against the fast tests listed there that call
the mutated function. This script picks the mutants of the modules asked for, runs them, and prints per module
how many were killed, how many are listed as equivalent in tests/mutation/equivalents.txt, and the share
killed of the rest. It lists only the survivors not in that file (the new ones), and exits 1 when there are
any: kill them with a test, or list them there with the reason they cannot be killed. `--report` prints the
report of the last run again without running anything (after editing equivalents.txt, say).
"""

from __future__ import annotations

import fnmatch
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
EQUIVALENTS = Path(__file__).with_name("equivalents.txt")
TARGET = 0.90  # share of non-equivalent mutants to kill in each module


def _functions(module: str, *names: str) -> list[str]:
    return [f"{module}.{name}__mutmut_*" for name in names]


# module -> the mutants in scope (fnmatch patterns over mutmut's names: module.x_function or
# module.xǁClassǁmethod, then __mutmut_N). The runner's scope is its pure bookkeeping (process handling is
# tested end to end in tests/bench/measuring/test_runner.py and test_faults.py); timing's is its
# metrics; the mixers' is their analytic cost. Left out as presentation, each with tests of its own but not
# worth a mutant run: analysis's wording helpers (format_seq_len, describe_group, describe_scope, _span) and
# compare's terminal table (format_table and its helpers); the plots (tests/bench/reporting/test_plot_content.py).
SCOPE = {
    "runner": (_functions("bench.measuring.rounds", "x_weighted_quantile", "x_combine_rounds", "xǁRoundLogǁ*",
                          "x__rows_by_key")
               + _functions("bench.measuring.scheduler", "xǁSchedulerǁ*")
               + _functions("bench.measuring.runner", "x__timing_units", "xǁSweepReportǁcounts")
               + _functions("bench.measuring.workers", "x_local_slots")),
    "timing": _functions("bench.measuring.timing", "x_metrics", "x_cost_parts", "x_compute_dtype_name",
                         "x_refusal", "x__options"),
    "store": ["bench.measuring.store.*"],
    "analysis": _functions("bench.reporting.analysis", "x_load_results", "x_load_env", "x_prepare", "x_ok_rows",
                           "x__groups", "x_pareto_front", "x__loglog_fit", "x_fit_range", "x_scaling_exponents",
                           "x_crossovers", "x_winners", "x_roofline_summary", "x_failures", "x__segments",
                           "x__times_faster", "x_summary", "x_group_summaries", "x_noisy", "x_loaded", "x_write_tables"),
    "compare": _functions("bench.reporting.compare", "x__points", "x__band", "x_verdicts", "x_match", "x_summarize",
                          "x__device", "x_default_threshold", "x_compare"),
    "mixers": (_functions("mixers", "x_mode_cost", "xǁTokenMixerǁcost", "xǁTokenMixerǁbytes_min",
                          "xǁTokenMixerǁparam_count", "xǁTokenMixerǁflops")
               + [f"mixers.*.xǁ*ǁ{method}__mutmut_*" for method in ("flops", "bytes_min", "param_count",
                                                                    "matmul_flops", "elementwise_flops", "factors")]
               + _functions("mixers._cost", "x_fft_flops", "x_rfft_flops", "x_rfft2_flops", "x_matmul_flops")
               + _functions("mixers._spectral", "x_is_pow2")
               + _functions("mixers.dct", "x_resolve") + _functions("mixers.hadamard", "x_factors")
               + _functions("mixers.mlp_mixer", "x_hidden_size") + _functions("mixers.pool", "x_window_terms")
               + _functions("mixers.mamba", "x_scan_flops", "x_default_chunk_len")
               + _functions("mixers.dft_monarch", "x_split")),
    # the encoder's analytic cost and its layouts; the task generators (the truth the quality axis scores);
    # the training loop: its schedule, loss, evaluation, refusals and train() itself (tests/bench/measuring/
    # test_train.py trains tiny models for a few steps: seconds per mutant)
    "models": (["bench.models.cost.*", "bench.models.layout.*"]
               + _functions("bench.models.encoder", "x_default_ffn", "x_mlm_count", "x_mlm_positions",
                            "x_check_config", "xǁShapeǁ*")
               + _functions("bench.models.blocks", "x_options_for", "x_check_norm")),
    "tasks": ["bench.tasks.*"],
    # the one registry of mixers and tasks: refusals at registration, lookup, import-all, entry points
    "registry": ["mixbench_registry.*"],
    "train": _functions("bench.measuring.train", "x_head_dim", "x_learning_rate", "x_loss_and_correct", "x_evaluate",
                        "x_refusal", "x_train") + _functions("bench.measuring.points", "xǁTrainingRunǁ*"),
}
# Run only when a package is first imported, before mutmut switches a mutant on, so no test can see their mutants.
# Left out of every module's share. The registries every test uses, `mixers.REGISTRY` and `bench.tasks.REGISTRY`,
# are built then (the one bare registry of tests/test_mixbench_registry.py exercises only import_all). Their
# import-all and entry-point loading (`Registry.import_all`, `Registry.load_entry_points`) run at import too, but
# tests call them again directly, so those mutants count.
NOT_MUTATED_IN_TESTS = ["mixbench_registry.xǁRegistryǁ__init____mutmut_*"]
KILLED = ("killed", "timeout")  # a mutant that makes the tests hang is caught too


def module_of(name: str, modules) -> str | None:
    if any(fnmatch.fnmatchcase(name, pattern) for pattern in NOT_MUTATED_IN_TESTS):
        return None
    return next((module for module in modules if any(fnmatch.fnmatchcase(name, p) for p in SCOPE[module])), None)


def equivalents() -> dict[str, str]:
    """Mutant name -> why it is equivalent or harmless, from equivalents.txt (`name  # reason`)."""
    listed = {}
    for line in EQUIVALENTS.read_text(encoding="utf-8").splitlines():
        name, _, reason = line.partition("#")
        if name.strip():
            listed[name.strip()] = reason.strip()
    return listed


def results() -> dict[str, str]:
    """Every mutant's status from `mutmut results --all true`."""
    out = subprocess.run([sys.executable, "-m", "mutmut", "results", "--all", "true"], cwd=ROOT, text=True,
                         capture_output=True, check=True).stdout
    statuses = {}
    for line in out.splitlines():
        name, sep, status = line.strip().rpartition(": ")
        if sep:
            statuses[name] = status
    return statuses


def main(argv: list[str]) -> int:
    report_only = "--report" in argv
    modules = [arg for arg in argv if arg != "--report"] or list(SCOPE)
    unknown = [module for module in modules if module not in SCOPE]
    if unknown:
        print(f"mutate: unknown module {', '.join(unknown)} (allowed: {', '.join(SCOPE)})", file=sys.stderr)
        return 2
    started = time.monotonic()
    patterns = [pattern for module in modules for pattern in SCOPE[module]]
    if not report_only:
        run = subprocess.run([sys.executable, "-m", "mutmut", "run", *patterns], cwd=ROOT)
        if run.returncode:
            print(f"mutate: mutmut run exited with {run.returncode}", file=sys.stderr)
            return run.returncode
    took_s = time.monotonic() - started
    listed = equivalents()
    counts = {module: {"total": 0, "killed": 0, "equivalent": 0} for module in modules}
    new, stale = [], []
    for name, status in sorted(results().items()):
        module = module_of(name, modules)
        if module is None:
            continue
        count = counts[module]
        count["total"] += 1
        if status in KILLED:
            count["killed"] += 1
            if name in listed:
                stale.append(name)
        elif name in listed:
            count["equivalent"] += 1
        else:
            new.append((name, status))
    took = "the last run's results" if report_only else f"{took_s / 60:.1f} min"
    print(f"\nmutation testing of {', '.join(modules)}: {took}")
    print(f"{'module':<10}{'mutants':>9}{'killed':>8}{'equivalent':>12}{'killed of the rest':>20}")
    below = []
    for module, count in counts.items():
        rest = count["total"] - count["equivalent"]
        share = count["killed"] / rest if rest else 1.0
        below += [module] if share < TARGET else []
        print(f"{module:<10}{count['total']:>9}{count['killed']:>8}{count['equivalent']:>12}{share:>19.1%}")
    if stale:
        print(f"\nListed in {EQUIVALENTS.name} but killed now (remove them): " + ", ".join(stale))
    if new:
        print(f"\n{len(new)} new survivors (`mutmut show NAME` shows one; kill it with a test, or list it in "
              f"tests/mutation/{EQUIVALENTS.name} with the reason):")
        for name, status in new:
            print(f"  {name}: {status}")
    if below:
        print(f"\nBelow {TARGET:.0%} killed: {', '.join(below)}")
    return 1 if new else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
