"""What a test left behind: processes it started that still run, file descriptors it opened.

Pure decisions over snapshots (`leftover_processes`, `leftover_fds`, `describe_leaks`), and
the /proc readers that take the snapshots (`process_table`, `open_fds`). A process counts as
the test's when it descends from the test process or carries one of its marks in its
environment: the mark every CLI the supervisor spawns inherits (``LLMSUP_SUPERVISOR=<pid>``,
so a CLI that escaped into its own session and was reparented is still found) and the check's
own token (for anything else the test spawned with the inherited environment).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping

import attrs

# `actors._subreaper.SUPERVISOR_MARK`; `supervisor` may not import it (a unit test pins it).
SUPERVISOR_MARK = "LLMSUP_SUPERVISOR"
CHECK_TOKEN_ENV = "LLMSUP_LEAK_CHECK"


@attrs.frozen
class ProcessRecord:
    """One row of the process table."""

    pid: int
    ppid: int
    start_ticks: int  # field 22 of /proc/PID/stat: with the pid, names the process uniquely
    state: str
    cmdline: str
    marked: bool  # its environment carries one of the marks looked for


ProcessKey = tuple[int, int]


def key(record: ProcessRecord) -> ProcessKey:
    return (record.pid, record.start_ticks)


def leftover_processes(
    before: Iterable[ProcessKey], after: Iterable[ProcessRecord], root: int
) -> list[ProcessRecord]:
    """Live processes of ``after`` that were not in ``before`` and belong to ``root``
    (descendants by parent pid, or marked), by pid. Zombies are dead and do not count."""
    existing = set(before)
    table = list(after)
    children: dict[int, list[ProcessRecord]] = {}
    for record in table:
        children.setdefault(record.ppid, []).append(record)
    mine: dict[int, ProcessRecord] = {r.pid: r for r in table if r.marked}
    stack = [root, *mine]
    seen = set(stack)
    while stack:
        for child in children.get(stack.pop(), []):
            if child.pid not in seen:
                seen.add(child.pid)
                mine[child.pid] = child
                stack.append(child.pid)
    return sorted(
        (r for r in mine.values() if r.pid != root and r.state != "Z" and key(r) not in existing),
        key=lambda r: r.pid,
    )


def leftover_fds(before: Mapping[int, str], after: Mapping[int, str]) -> dict[int, str]:
    """The descriptors opened since ``before`` (number to target), when there are more now."""
    if len(after) <= len(before):
        return {}
    return {fd: target for fd, target in sorted(after.items()) if fd not in before}


def describe_leaks(
    processes: Iterable[ProcessRecord], fds: Mapping[int, str], *, before_fds: int
) -> str:
    """The failure message: each leftover process (pid, command line) and descriptor."""
    lines = []
    processes = list(processes)
    if processes:
        lines.append(
            f"llmsup_no_leaks: {len(processes)} process(es) started by the test still run:"
        )
        lines += [f"  pid {r.pid} (parent {r.ppid}): {r.cmdline or '?'}" for r in processes]
    if fds:
        lines.append(
            f"llmsup_no_leaks: the test process holds {before_fds + len(fds)} file descriptors,"
            f" {before_fds} at the start; opened and not closed:"
        )
        lines += [f"  fd {fd} -> {target}" for fd, target in fds.items()]
    return "\n".join(lines)


def _read(path: str) -> bytes | None:
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError:
        return None


def _stat_fields(pid: str) -> list[bytes] | None:
    data = _read(f"/proc/{pid}/stat")
    if data is None:
        return None
    return data[data.rfind(b")") + 2 :].split()  # fields from 3 (state) on


def process_keys() -> set[ProcessKey]:
    """Every process now on the machine (the cheap snapshot taken before a test)."""
    keys = set()
    for entry in os.listdir("/proc"):
        if entry.isdigit() and (fields := _stat_fields(entry)) is not None:
            keys.add((int(entry), int(fields[19])))
    return keys


def process_table(marks: Iterable[str]) -> list[ProcessRecord]:
    """Every process now on the machine, with whether its environment holds a mark."""
    needles = [mark.encode() for mark in marks]
    table = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or (fields := _stat_fields(entry)) is None:
            continue
        environ = (_read(f"/proc/{entry}/environ") or b"").split(b"\0")
        cmdline = (_read(f"/proc/{entry}/cmdline") or b"").replace(b"\0", b" ").strip()
        table.append(
            ProcessRecord(
                pid=int(entry),
                ppid=int(fields[1]),
                start_ticks=int(fields[19]),
                state=fields[0].decode(),
                cmdline=cmdline.decode(errors="replace")[:500],
                marked=any(needle in environ for needle in needles),
            )
        )
    return table


def open_fds() -> dict[int, str]:
    """This process's open descriptors and what each points at."""
    fds = {}
    for entry in os.listdir("/proc/self/fd"):
        try:
            fds[int(entry)] = os.readlink(f"/proc/self/fd/{entry}")
        except OSError:
            continue  # the directory's own descriptor, closed by now
    return fds
