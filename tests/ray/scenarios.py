"""Ray scenarios on one local cluster (a head and two worker nodes), run by test_ray.py.

``python scenarios.py OUTDIR``, inside ``unshare -n`` with only loopback up: it starts the
cluster, runs each scenario (the real ``llmsup map --ray`` command, or the Python API),
writes ``OUTDIR/<scenario>.json`` with what the test asserts on, and stops the cluster.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import traceback
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
LLMSUP = [sys.executable, "-m", "supervisor._llmsup"]


def cli_pids(marker: str) -> list[int]:
    """Live processes whose command line contains ``marker`` (zombies excluded)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            cmdline = Path(f"/proc/{entry}/cmdline").read_bytes()
            state = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if marker.encode() in cmdline and state != "Z" and int(entry) != os.getpid():
            found.append(int(entry))
    return found


def wait_gone(marker: str, seconds: float = 60.0) -> list[int]:
    deadline = time.monotonic() + seconds
    while (left := cli_pids(marker)) and time.monotonic() < deadline:
        time.sleep(0.2)
    return left


def write_input(path: Path, count: int, prompt: Callable[[int], str] = lambda i: f"p{i}") -> None:
    path.write_text(
        "".join(json.dumps({"id": i, "prompt": prompt(i)}) + "\n" for i in range(count))
    )


def read_output(path: Path) -> dict[str, Any]:
    raw = path.read_bytes() if path.exists() else b""
    lines = raw.split(b"\n")
    torn = lines[-1] != b""
    records = [json.loads(line) for line in lines if line]
    return {"records": records, "torn": torn}


def plan_for(work: Path, **extra: Any) -> tuple[str, str]:
    marker = str(work / f"state-{uuid.uuid4().hex[:8]}")
    return json.dumps({"state_dir": marker, **extra}), marker


def map_command(inp: Path, out: Path, plan: str, address: str, *more: str) -> list[str]:
    return [
        *LLMSUP,
        "map",
        str(inp),
        "-o",
        str(out),
        "--cli",
        "fake",
        "--plan",
        plan,
        "--ray",
        address,
        *more,
    ]


def wait_lines(out: Path, count: int, proc: subprocess.Popen[bytes], seconds: float = 180) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and proc.poll() is None:
        if out.exists() and out.read_bytes().count(b"\n") >= count:
            return
        time.sleep(0.1)


def spread(work: Path, address: str, _cluster: Any) -> dict[str, Any]:
    inp, out = work / "spread.jsonl", work / "spread.out"
    write_input(inp, 40)
    plan, marker = plan_for(work, latency_s=0.2)
    done = subprocess.run(
        map_command(inp, out, plan, address, "--concurrency", "2"), capture_output=True, timeout=300
    )
    return {
        "status": done.returncode,
        "stderr": done.stderr.decode(errors="replace"),
        **read_output(out),
        "left": wait_gone(marker),
    }


def interrupt_resume(work: Path, address: str, _cluster: Any) -> dict[str, Any]:
    inp, out = work / "resume.jsonl", work / "resume.out"
    write_input(inp, 60)
    plan, marker = plan_for(work, latency_s=0.5)
    command = map_command(inp, out, plan, address, "--concurrency", "2")
    proc = subprocess.Popen(command, stderr=subprocess.PIPE)
    wait_lines(out, 6, proc)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=180)
    first = read_output(out)
    left_after_interrupt = wait_gone(marker)
    again = subprocess.run([*command, "--resume"], capture_output=True, timeout=300)
    return {
        "interrupted_status": proc.returncode,
        "interrupted_stderr": err.decode(errors="replace"),
        "interrupted_lines": len(first["records"]),
        "interrupted_torn": first["torn"],
        "left_after_interrupt": left_after_interrupt,
        "status": again.returncode,
        "stderr": again.stderr.decode(errors="replace"),
        **read_output(out),
        "left": wait_gone(marker),
    }


def rate_limit(work: Path, address: str, _cluster: Any) -> dict[str, Any]:
    """The Python API; one call is rate limited with retry-after 3 s on whichever node."""
    import attrs
    import trio

    import actors
    from supervisor.ray import open_ray_fleet

    stamps = work / "stamps"
    plan, marker = plan_for(
        work,
        latency_s=0.3,
        rules=[
            {
                "match": "LIMIT",
                "latency_s": 0,
                "fail_first": 1,
                "fail_with": "rate_limit",
                "fail_retry_after_s": 3,
            }
        ],
    )
    spec = actors.fake(json.loads(plan))
    spec = attrs.evolve(
        spec, argv=(sys.executable, str(HERE / "stamp_cli.py"), str(stamps), *spec.argv)
    )
    prompts = [("LIMIT" if i == 12 else f"p{i}") for i in range(90)]
    ends: list[dict[str, Any]] = []
    info: dict[str, Any] = {}

    async def main() -> None:
        async with open_ray_fleet(spec, address=address, concurrency=2) as fleet:
            info["nodes"] = len(fleet.nodes)
            info["limit"] = sum(node.limits[0] for node in fleet.nodes.values())
            await fleet.run(
                iter(list(enumerate(prompts))),
                lambda d: ends.append(
                    {
                        "key": d.key,
                        "ok": not isinstance(d.outcome, Exception),
                        "node": d.node,
                        "attempts": d.attempts,
                    }
                ),
            )

    trio.run(main)
    calls = [line.split(" ", 2) for line in stamps.read_text().splitlines()]
    return {
        **info,
        "ends": ends,
        "calls": [[float(t), int(pid), prompt] for t, pid, prompt in calls],
        "left": wait_gone(marker),
    }


def retry_budget(work: Path, address: str, _cluster: Any) -> dict[str, Any]:
    """The Python API; every call fails (retryable), and the run's retry budget allows 5
    retries in all (0.005/s over a 1000 s window: a count, whatever the run's speed)."""
    import attrs
    import ray
    import trio

    import actors
    from supervisor import RetryBudget, RetryConfig
    from supervisor.ray import open_ray_fleet

    stamps = work / "stamps"
    plan, marker = plan_for(work, latency_s=0.1, exit_code=9)
    spec = actors.fake(json.loads(plan))
    spec = attrs.evolve(
        spec, argv=(sys.executable, str(HERE / "stamp_cli.py"), str(stamps), *spec.argv)
    )
    budget = RetryBudget(ratio=0.0, min_per_s=0.005, window_s=1000)
    retry = RetryConfig(max_attempts=2, initial_delay_ms=1, max_delay_ms=5, budget=budget)
    ends: list[dict[str, Any]] = []
    info: dict[str, Any] = {}

    async def main() -> None:
        async with open_ray_fleet(spec, address=address, concurrency=2, retry=retry) as fleet:
            info["nodes"] = len(fleet.nodes)
            await fleet.run(
                iter([(i, f"p{i}") for i in range(30)]),
                lambda d: ends.append(
                    {
                        "key": d.key,
                        "ok": not isinstance(d.outcome, Exception),
                        "node": d.node,
                        "attempts": d.attempts,
                        "message": getattr(d.outcome, "message", ""),
                    }
                ),
            )
            info["gate"] = await trio.to_thread.run_sync(
                ray.get, fleet.gate.summary.remote(spec.name)
            )

    trio.run(main)
    return {
        **info,
        "ends": ends,
        "started": len(stamps.read_text().splitlines()),
        "left": wait_gone(marker),
    }


def node_killed(work: Path, address: str, cluster: Any) -> dict[str, Any]:
    inp, out = work / "killed.jsonl", work / "killed.out"
    write_input(inp, 60)
    plan, marker = plan_for(work, latency_s=0.6)
    command = map_command(inp, out, plan, address, "--concurrency", "2")
    proc = subprocess.Popen(command, stderr=subprocess.PIPE)
    wait_lines(out, 8, proc)
    victim = cluster.list_all_nodes()[-1]  # a worker node, never the head
    cluster.remove_node(victim, allow_graceful=False)
    _, err = proc.communicate(timeout=300)
    return {
        "status": proc.returncode,
        "stderr": err.decode(errors="replace"),
        **read_output(out),
        "left": wait_gone(marker),
    }


SCENARIOS = {
    "spread": spread,
    "rate_limit": rate_limit,
    "interrupt_resume": interrupt_resume,
    "retry_budget": retry_budget,
    "node_killed": node_killed,  # last: it removes a node
}


def main() -> None:
    outdir = Path(sys.argv[1])
    only = sys.argv[2:] or list(SCENARIOS)
    os.environ["LLMSUP_RUNTIME_DIR"] = str(outdir / "runtime")
    (outdir / "runtime").mkdir(parents=True, exist_ok=True)
    import ray
    from ray.cluster_utils import Cluster

    node_args: dict[str, Any] = {"num_cpus": 1, "object_store_memory": 80 * 2**20}
    cluster = Cluster(initialize_head=True, head_node_args=node_args)
    try:
        cluster.add_node(**node_args)
        cluster.add_node(**node_args)
        cluster.wait_for_nodes()
        for name in only:
            work = outdir / name
            work.mkdir(exist_ok=True)
            try:
                result = SCENARIOS[name](work, cluster.address, cluster)
            except Exception:
                result = {"error": traceback.format_exc()}
            (outdir / f"{name}.json").write_text(json.dumps(result))
    finally:
        if ray.is_initialized():
            ray.shutdown()
        cluster.shutdown()  # type: ignore[no-untyped-call]


if __name__ == "__main__":
    main()
