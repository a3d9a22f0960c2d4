"""The forkserver the `mixbench` command starts early: `stop` leaves no process of the command behind."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

# In a process of its own (the test process's server and tracker serve other tests' workers). A /proc entry is there
# while the process runs and while it is dead but not reaped, so neither may be left once `stop` returns.
STARTED_THEN_STOPPED = """
import json, os, multiprocessing.resource_tracker as tracker
from bench.measuring import forkserver
server = forkserver.start_early()
tracked = tracker._resource_tracker._pid
forkserver.stop()
print(json.dumps({"server": server, "tracker": tracked,
                  "left": [pid for pid in (server, tracked) if os.path.exists(f"/proc/{pid}")]}))
"""


@pytest.mark.skipif(not Path("/proc/self").exists(), reason="needs Linux's /proc")
def test_stop_reaps_the_server_and_its_resource_tracker_before_it_returns():
    # the tracker would otherwise live until the command's process exits, and a moment after: long enough, on a
    # loaded machine, for the command's caller to find it still running and holding the command's stderr
    done = subprocess.run([sys.executable, "-c", STARTED_THEN_STOPPED], capture_output=True, text=True, timeout=120,
                          cwd=Path(__file__).parents[3])
    assert done.returncode == 0, done.stderr
    pids = json.loads(done.stdout)
    assert isinstance(pids["server"], int) and isinstance(pids["tracker"], int) and pids["server"] != pids["tracker"]
    assert pids["left"] == []
