"""The forkserver that CPU workers are forked from (see `runner.start_context`).

Torch-free on purpose: the `mixbench` command starts the server first thing (`start_early`), so that the server's
import of torch runs beside the command's own instead of after it, when the first worker is asked for.
"""

from __future__ import annotations

import multiprocessing
import multiprocessing.forkserver
import os
import signal

# What the server imports once, so that each worker forked from it starts in a fraction of a second instead of
# paying the seconds of importing torch again.
PRELOAD = ["torch", "bench.measuring.worker"]


def available() -> bool:
    return "forkserver" in multiprocessing.get_all_start_methods()


def context() -> multiprocessing.context.BaseContext:
    """The start method of a CPU worker: forked from the one server of this process, which imports PRELOAD."""
    forking = multiprocessing.get_context("forkserver")
    forking.set_forkserver_preload(PRELOAD)  # read when the server starts
    return forking


def _server_pid() -> int | None:
    server = getattr(multiprocessing.forkserver, "_forkserver", None)  # the module's one server (CPython 3.8-3.13)
    return getattr(server, "_forkserver_pid", None)


def start_early() -> int | None:
    """Start the server now unless one runs; the pid of the server started here, or None."""
    if not available():
        return None
    before = _server_pid()
    context()
    multiprocessing.forkserver.ensure_running()
    started = _server_pid()
    return started if started != before else None


def stop(pid: int) -> None:
    """End the server `start_early` started: at the command's end (its workers are done), or when the command
    stopped before it needed one (bad input), rather than let it finish importing torch for nothing."""
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
