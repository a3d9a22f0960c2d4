"""mixbench's harness: plan a sweep, measure it in child processes, store, analyse, plot, report.

The data path runs one way: mixers -> plan -> runner/worker -> measure -> store -> analysis -> plots/report.
For notebooks: `bench.sweep(...)` runs a sweep and returns a pandas DataFrame.
"""


def sweep(*args, **kwargs):
    """Run a sweep and return its rows as a pandas DataFrame; see `bench.api.sweep`."""
    from bench.api import sweep as run_sweep

    return run_sweep(*args, **kwargs)
