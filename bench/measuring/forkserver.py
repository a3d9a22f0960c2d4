"""The forkserver that CPU workers are forked from (see `workers.start_context`).

Torch-free on purpose: the `mixbench` command starts the server first thing (`start_early`), so that the server's
import of torch runs beside the command's own instead of after it, when the first worker is asked for.
"""

from __future__ import annotations

import multiprocessing
import multiprocessing.forkserver
import multiprocessing.resource_tracker
import os
import signal
import time

# What the server imports once, so that each worker forked from it starts in a fraction of a second instead of
# paying the seconds of importing torch again.
PRELOAD = ["torch", "bench.measuring.serve"]
# A training run's first optimizer step imports torch._dynamo (torch.optim's step does, whether or not anything
# compiles): about 3 s of one core here, in every worker and inside its first run's timeout. The server of a command
# that trains imports it once instead.
TRAINING_PRELOAD = [*PRELOAD, "torch._dynamo"]


def available() -> bool:
    return "forkserver" in multiprocessing.get_all_start_methods()


def context(preload: list[str] = PRELOAD) -> multiprocessing.context.BaseContext:
    """The start method of a CPU worker: forked from the one server of this process, which imports `preload` (the
    server `start_early` started keeps what it was started with)."""
    forking = multiprocessing.get_context("forkserver")
    forking.set_forkserver_preload(preload)  # read when the server starts
    return forking


def _server_pid() -> int | None:
    server = getattr(multiprocessing.forkserver, "_forkserver", None)  # the module's one server (CPython 3.8-3.13)
    return getattr(server, "_forkserver_pid", None)


def start_early(preload: list[str] = PRELOAD) -> int | None:
    """Start the server, importing `preload`, now unless one runs; the pid of the server started here, or None."""
    if not available():
        return None
    before = _server_pid()
    context(preload)
    multiprocessing.forkserver.ensure_running()
    started = _server_pid()
    return started if started != before else None


def stop() -> None:
    """End this process's server and the resource tracker it started, before the command returns: at the command's
    end (its workers are done), or when the command stopped before it needed one (bad input), rather than let the
    server finish importing torch for nothing. Whichever server runs now is ended (one started in place of a server
    that died too), and both are reaped here, so no process of the command outlives it (the tracker would otherwise
    exit on its own a moment after the command, still holding the command's stderr)."""
    pid = _server_pid()
    if pid is not None:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        multiprocessing.forkserver._forkserver._stop()  # reaps it, removes its socket: a later context() starts anew
    _stop_resource_tracker(within=5.0)


def _stop_resource_tracker(within: float) -> None:
    """Close this process's end of the tracker's pipe, so that the tracker cleans up and exits, and reap it. Waits at
    most `within` seconds: a worker still alive (the command interrupted) holds the pipe too, and the tracker then
    exits with the last holder, as it would have without this."""
    tracker = multiprocessing.resource_tracker._resource_tracker
    with tracker._lock:
        fd, pid = tracker._fd, tracker._pid
        if fd is None or pid is None:  # none running, or one a parent process started
            return
        tracker._fd = tracker._pid = None
        os.close(fd)
    deadline = time.monotonic() + within
    while os.waitpid(pid, os.WNOHANG)[0] == 0 and time.monotonic() < deadline:
        time.sleep(0.005)
