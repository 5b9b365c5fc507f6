"""2,000 fake-CLI calls at the same total concurrency: local ``llmsup map``, then
``--ray`` with one node, then with two nodes, in one run; throughput of each and Ray's
dispatch overhead per item.

    .venv/bin/python bench/ray_fanout.py [--items 2000] [--concurrency 8] [--latency 0.05]

Loopback only: unless already in a namespace with no interface but loopback, it re-runs
itself inside ``unshare -n`` (as root), so Ray stays on 127.0.0.1. On one machine Ray can
add no CPUs, only cost: the figure to watch is the overhead per item (target: within 10%
of local per item). Across machines throughput grows with the nodes until the account's
rate limit, which the fleet's gate then enforces for every node at once.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
LLMSUP = [sys.executable, "-m", "supervisor._llmsup"]
FINISHED = re.compile(r"map: finished (\d+)/(\d+) in ([0-9.]+)s")


def _only_loopback() -> bool:
    names = [name for name in os.listdir("/sys/class/net") if name != "lo"]
    return all(
        Path(f"/sys/class/net/{name}/operstate").read_text().strip() == "down" for name in names
    )


def _run_map(work: Path, name: str, args: argparse.Namespace, *more: str) -> tuple[float, float]:
    """One ``llmsup map`` of every item: (run time from its summary, wall time)."""
    inp, out = work / f"{name}.jsonl", work / f"{name}.out"
    inp.write_text(
        "".join(json.dumps({"id": i, "prompt": f"p{i}"}) + "\n" for i in range(args.items))
    )
    plan = json.dumps({"latency_s": args.latency})
    command = [*LLMSUP, "map", str(inp), "-o", str(out), "--cli", "fake", "--plan", plan, *more]
    started = time.monotonic()
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    wall = time.monotonic() - started
    found = FINISHED.search(done.stderr)
    if done.returncode != 0 or found is None or int(found[1]) != args.items:
        sys.exit(f"{name}: llmsup map failed ({done.returncode}):\n{done.stderr[-2000:]}")
    return float(found[3]), wall


def _bench(args: argparse.Namespace) -> None:
    import ray
    from ray.cluster_utils import Cluster

    work = Path(tempfile.mkdtemp(prefix="ray-fanout-"))
    os.environ["LLMSUP_RUNTIME_DIR"] = str(work / "runtime")
    rows: list[tuple[str, float, float]] = []
    c = args.concurrency
    rows.append(("local map", *_run_map(work, "local", args, "--concurrency", str(c))))
    node_args: dict[str, Any] = {"num_cpus": 1, "object_store_memory": 80 * 2**20}
    cluster = Cluster(initialize_head=True, head_node_args=node_args)
    try:
        one = _run_map(work, "ray1", args, "--concurrency", str(c), "--ray", cluster.address)
        rows.append(("ray, 1 node", *one))
        cluster.add_node(**node_args)
        cluster.wait_for_nodes()
        two = _run_map(work, "ray2", args, "--concurrency", str(c // 2), "--ray", cluster.address)
        rows.append(("ray, 2 nodes", *two))
    finally:
        if ray.is_initialized():
            ray.shutdown()
        cluster.shutdown()  # type: ignore[no-untyped-call]
    local_per_item = rows[0][1] / args.items
    print(f"{args.items} fake-CLI calls, total concurrency {c}, latency {args.latency}s")
    print(
        f"{'mode':<14}{'run s':>8}{'items/s':>10}{'ms/item':>10}{'overhead/item':>16}{'wall s':>9}"
    )
    for name, run, wall in rows:
        per_item = run / args.items
        overhead = per_item - local_per_item
        print(
            f"{name:<14}{run:>8.1f}{args.items / run:>10.1f}{per_item * 1000:>10.2f}"
            f"{overhead * 1000:>12.2f} ms{overhead / local_per_item:>+5.0%}{wall:>8.1f}"
        )
    print("(run s: the summary's time, connecting to Ray and placing the node actors included)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--latency", type=float, default=0.05)
    parser.add_argument("--inside", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if not args.inside and not _only_loopback():
        script = " ".join(
            [
                "ip link set lo up && exec",
                sys.executable,
                str(Path(__file__).resolve()),
                "--inside",
                f"--items {args.items} --concurrency {args.concurrency}",
                f"--latency {args.latency}",
            ]
        )
        sys.exit(subprocess.call(["unshare", "-n", "bash", "-c", script], cwd=ROOT))
    _bench(args)


if __name__ == "__main__":
    main()
