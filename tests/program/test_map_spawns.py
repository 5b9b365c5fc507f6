"""``llmsup map`` as a command, counting what it really starts and how much memory it holds:
``--resume`` starts nothing for the ids it skips, ``--memory-budget`` bounds how many CLI
processes run at once by their measured memory, and a 100k-line input streams through in
bounded memory."""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

from .test_map_cli import llmsup_map

ROOT = Path(__file__).resolve().parents[2]

# A CLI that appends "start PID" / "end PID" to the log named by its first argument.
RECORDING_CLI = """
import os, sys
log, prompt = sys.argv[1], sys.argv[-1]
with open(log, "a") as f:
    f.write(f"start {os.getpid()} {prompt}\\n")
print("done: " + prompt)
with open(log, "a") as f:
    f.write(f"end {os.getpid()} {prompt}\\n")
"""


def _cli(code: str, log: Path) -> str:
    return shlex.join([sys.executable, "-S", "-c", code, str(log)])


def _write_input(path: Path, count: int, prompt_chars: int = 0) -> Path:
    pad = "x" * prompt_chars
    with open(path, "w") as f:
        for i in range(count):
            f.write(json.dumps({"id": i, "prompt": f"p{i} {pad}".rstrip()}) + "\n")
    return path


def test_resume_starts_no_process_for_the_ids_it_skips(tmp_path: Path) -> None:
    source = _write_input(tmp_path / "in.jsonl", 10)
    out = tmp_path / "out.jsonl"
    kept = [{"id": i, "ok": True, "text": f"done: p{i}"} for i in (0, 2, 3, 5, 7, 8)]
    out.write_text("".join(json.dumps(line) + "\n" for line in kept))
    log = tmp_path / "starts.log"
    proc = llmsup_map(str(source), "-o", str(out), "--resume", "--cli", _cli(RECORDING_CLI, log))
    assert proc.returncode == 0, proc.stderr
    started = [line.split()[2] for line in log.read_text().splitlines() if line.startswith("start")]
    assert sorted(started) == ["p1", "p4", "p6", "p9"]  # one process per missing id, no more
    ids = sorted(json.loads(line)["id"] for line in out.read_text().splitlines())
    assert ids == list(range(10))


# Holds ~48 MiB resident for a while. The first one waits for a second one to start, so
# the first batch runs at least two at once whenever the limit allows it.
HUNGRY_CLI = """
import os, sys, time
log, prompt = sys.argv[1], sys.argv[-1]
def note(what):
    with open(log, "a") as f:
        f.write(f"{what} {os.getpid()} {prompt}\\n")
note("start")
block = bytearray(48 * 1024 * 1024)
for i in range(0, len(block), 4096):
    block[i] = 1
deadline = time.monotonic() + 20
while open(log).read().count("start") < 2 and time.monotonic() < deadline:
    time.sleep(0.01)
time.sleep(0.8)
note("end")
print("done: " + prompt)
"""


def _running_at_each_start(log: Path) -> list[tuple[int, int]]:
    """For each start, in order: (how many had ended before it, how many ran with it)."""
    running: set[str] = set()
    ended = 0
    seen = []
    for line in log.read_text().splitlines():
        what, pid, _prompt = line.split(" ", 2)
        if what == "start":
            running.add(pid)
            seen.append((ended, len(running)))
        else:
            running.discard(pid)
            ended += 1
    return seen


def test_memory_budget_bounds_concurrency_by_measured_memory(tmp_path: Path) -> None:
    source = _write_input(tmp_path / "in.jsonl", 8)
    out = tmp_path / "out.jsonl"
    log = tmp_path / "events.log"
    cli = _cli(HUNGRY_CLI, log)
    args = ("--cli", cli, "--memory-budget", "120M", "--concurrency", "8")
    proc = llmsup_map(str(source), "-o", str(out), *args, timeout=120)
    assert proc.returncode == 0, proc.stderr
    # Before measuring: 120 MiB // 30 MiB (the default estimate) = 4 processes at once.
    assert "120 MiB (--memory-budget), 30 MiB per process estimated" in proc.stderr
    seen = _running_at_each_start(log)
    assert len(seen) == 8
    assert 2 <= max(together for _ended, together in seen) <= 4
    # Measured at ~50 MiB each (x1.2 margin), the budget holds one: after the first batch,
    # every process ran alone although --concurrency allows 8.
    after_measuring = [together for ended, together in seen if ended > 0]
    assert after_measuring and set(after_measuring) == {1}
    summary = re.search(r"per-process peak (\d+) MiB .* concurrency 4 -> 1", proc.stderr)
    assert summary, proc.stderr
    assert int(summary.group(1)) >= 48


def _peak_rss_kib_of_map(tmp_path: Path, count: int) -> int:
    """Peak resident memory (KiB) of ``llmsup map`` over ``count`` input lines, every id
    already in the output (``--resume``): the input streams through without a spawn."""
    source = _write_input(tmp_path / f"in{count}.jsonl", count, prompt_chars=400)
    out = tmp_path / f"out{count}.jsonl"
    with open(out, "w") as f:
        for i in range(count):
            f.write(json.dumps({"id": i, "ok": True, "text": "done"}) + "\n")
    log = tmp_path / f"starts{count}.log"
    argv = ["map", str(source), "-o", str(out), "--resume", "--cli", _cli(RECORDING_CLI, log)]
    proc = subprocess.Popen(
        [sys.executable, "-m", "supervisor._llmsup", *argv],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    # wait4's ru_maxrss is the process's own peak RSS (VmHWM as it exits), in KiB.
    _pid, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    assert proc.returncode == 0
    assert not log.exists()  # nothing was started
    return usage.ru_maxrss


def test_100k_lines_stream_through_in_bounded_memory(tmp_path: Path) -> None:
    small = _peak_rss_kib_of_map(tmp_path, 1_000)
    large = _peak_rss_kib_of_map(tmp_path, 100_000)
    # 100k prompts of ~400 characters are ~40 MiB of text (more as str and MapItem objects)
    # if held at once; streamed, only the two id sets (input and output) grow with the input.
    growth_mib = (large - small) / 1024
    assert growth_mib < 25, (small, large)
