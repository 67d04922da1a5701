"""The pool of hosts (curator/fanout.py) on the session cluster. A host that dies mid-unit is
covered by test_faults (a killed worker) and test_two_node_cluster (a lost node)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

# A driver of its own, so that a hang (the bug this guards against) ends with the process:
# a driver blocked in ray.wait does not answer pytest-timeout's signal.
MORE_HOSTS_THAN_CPUS = """
import json, os, ray
from curator.fanout import run_tasks, run_units, worker_pool

class Echo:
    def __init__(self, tag):
        self.tag = tag

    def handle(self, item):
        return {"idx": item["idx"], "tag": self.tag, "pid": os.getpid()}

ray.init(log_to_driver=False)
cpus = int(ray.cluster_resources()["CPU"])
units = []
with worker_pool(cpus + 2):
    run_units(Echo, [{"idx": i} for i in range(3 * cpus)], {"tag": "t"}, cpus + 2, units.append)
    squares = run_tasks(pow, [(i, 2) for i in range(2 * cpus)], cpus + 2)
print(json.dumps({"cpus": cpus, "units": units, "squares": squares}))
"""


def test_hosts_that_cannot_be_placed_get_no_unit(ray_cluster):
    """More hosts asked for than the cluster has CPUs: the ones that never start hold no unit
    (given one, the run would wait for them forever) and the others do every unit and task."""
    proc = subprocess.run([sys.executable, "-c", MORE_HOSTS_THAN_CPUS], cwd=REPO,
                          env={**os.environ, "RAY_ADDRESS": ray_cluster.address},
                          capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    cpus, units = out["cpus"], out["units"]
    assert sorted(u["idx"] for u in units) == list(range(3 * cpus))
    assert {u["tag"] for u in units} == {"t"}
    assert len({u["pid"] for u in units}) <= cpus
    assert out["squares"] == [i**2 for i in range(2 * cpus)]
