"""``llmsup map --ray`` and `supervisor.ray` on a real local Ray cluster (a head and two
worker nodes), real processes, the fake CLI.

Loopback only: the cluster and its drivers run in a network namespace of their own with
only loopback up (``unshare -n``), since Ray rewrites 127.0.0.1 to the machine's
interface address otherwise (ray-project/ray #59110). One cluster serves every scenario
(`scenarios.py`, run once for the module); each test asserts on its scenario's results.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

HERE = Path(__file__).resolve().parent


def _why_not() -> str | None:
    if importlib.util.find_spec("ray") is None:
        return "Ray is not installed (pip install 'llm-cli-supervisor[ray]')"
    if shutil.which("unshare") is None or shutil.which("ip") is None:
        return "no unshare/ip to give the Ray cluster a loopback-only network namespace"
    probe = subprocess.run(
        ["unshare", "-n", "sh", "-c", "ip link set lo up"], capture_output=True, check=False
    )
    if probe.returncode != 0:
        return "cannot unshare a network namespace (needs root): Ray must stay on loopback"
    return None


pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Any]]:
    reason = _why_not()
    if reason is not None:
        pytest.skip(reason)
    outdir = tmp_path_factory.mktemp("ray")
    script = f"ip link set lo up && exec {sys.executable} {HERE / 'scenarios.py'} {outdir}"
    done = subprocess.run(
        ["unshare", "-n", "bash", "-c", script],
        capture_output=True,
        timeout=1500,
        check=False,
        env={**os.environ, "RAY_USAGE_STATS_ENABLED": "0"},
    )
    found = {}
    for path in outdir.glob("*.json"):
        found[path.stem] = json.loads(path.read_text())
    assert found, f"the scenarios wrote nothing: {done.stderr.decode(errors='replace')[-3000:]}"
    return found


def _scenario(results: dict[str, dict[str, Any]], name: str) -> dict[str, Any]:
    result = results.get(name)
    assert result is not None, f"scenario {name} did not run"
    assert "error" not in result, result.get("error")
    return result


def _once_each(records: list[dict[str, Any]], count: int) -> None:
    ids = Counter(record["id"] for record in records)
    assert sorted(ids) == list(range(count))
    assert max(ids.values()) == 1, [i for i, n in ids.items() if n > 1]


def test_every_item_runs_once_and_the_work_spreads_over_the_nodes(results: Any) -> None:
    result = _scenario(results, "spread")
    assert result["status"] == 0, result["stderr"]
    _once_each(result["records"], 40)
    assert all(record["ok"] for record in result["records"])
    assert len({record["node"] for record in result["records"]}) > 1
    assert "by node:" in result["stderr"]
    assert not result["torn"]
    assert result["left"] == []  # no CLI process on any node after the run


def test_a_rate_limit_on_one_node_pauses_every_node(results: Any) -> None:
    result = _scenario(results, "rate_limit")
    assert result["nodes"] == 3
    assert len(result["ends"]) == 90 and all(end["ok"] for end in result["ends"])
    assert len({end["key"] for end in result["ends"]}) == 90
    calls = result["calls"]
    limited = [call for call in calls if call[2] == "LIMIT"]
    assert len(limited) == 2  # the 429, then its retry once the window was over
    announced = limited[0][0]
    during = [c for c in calls if announced < c[0] < announced + 3 and c[2] != "LIMIT"]
    # Calls admitted before a node heard of the 429 may still start: 4 here, 7 once on a
    # loaded machine (the news took 0.7 s to reach every node), against ~55 more without
    # the gate. None starts in the window's last third: every node paused.
    assert len(during) <= 2 * result["limit"], during
    late = [c for c in during if c[0] > announced + 2]
    assert late == [], late
    assert limited[1][0] >= announced + 3  # nobody retried it inside the window
    assert len([c for c in calls if c[0] >= announced + 3]) > 10  # and the fleet resumed
    assert result["left"] == []


def test_interrupt_stops_every_node_then_resume_finishes(results: Any) -> None:
    result = _scenario(results, "interrupt_resume")
    assert result["interrupted_status"] == 130, result["interrupted_stderr"]
    assert 0 < result["interrupted_lines"] < 60
    assert not result["interrupted_torn"]
    assert result["left_after_interrupt"] == []  # every node stopped its CLI processes
    assert result["status"] == 0, result["stderr"]
    _once_each(result["records"], 60)
    assert result["left"] == []


def test_a_node_killed_mid_run_loses_nothing_and_writes_nothing_twice(results: Any) -> None:
    result = _scenario(results, "node_killed")
    assert result["status"] == 0, result["stderr"]
    assert not result["torn"]
    _once_each(result["records"], 60)
    assert "lost" in result["stderr"] and "re-dispatched" in result["stderr"]
    assert len({record["node"] for record in result["records"]}) == 3
    assert result["left"] == []  # the killed node's CLI processes were swept


def test_retries_across_the_fleet_add_up_to_one_shared_retry_budget(results: Any) -> None:
    result = _scenario(results, "retry_budget")
    ends = result["ends"]
    assert result["nodes"] == 3
    assert len(ends) == 30 and len({end["key"] for end in ends}) == 30
    assert not any(end["ok"] for end in ends)  # every call failed, as planned
    assert len({end["node"] for end in ends}) > 1  # more than one node asked for retries
    retries = sum(end["attempts"] for end in ends) - 30
    # One budget for the fleet allows 5 retries; a budget per node would allow 15.
    assert retries == 5
    assert result["started"] == 30 + 5  # real processes: the refused retries never ran
    refused = [end for end in ends if "retry budget" in end["message"]]
    assert len(refused) == 30 - 5  # each other item was refused its retry, and says so
    assert len({end["node"] for end in refused}) > 1  # refusals on more than one node
    assert result["gate"]["retries_refused"] >= 1  # the gate's own refusals among them
    assert result["left"] == []
