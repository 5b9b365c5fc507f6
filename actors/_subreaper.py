"""Catching ``setsid()`` escapees: this process is a child subreaper while CLIs run.

A CLI that double-forks a daemon which calls ``setsid()`` (Node's ``spawn({detached:
true})`` does) leaves its process group and session: neither the stop sequence nor the
registry's sweep can name it. While at least one CLI this process started is live, the
process is a child subreaper (``prctl(PR_SET_CHILD_SUBREAPER)``), so such orphans are
re-parented to it instead of to init. When the last live CLI is gone (and at most every
`CHECK_EVERY_S` under sustained load) `reap_escapees` kills and reaps them.

Never a blanket ``waitpid(-1)``: trio reaps its own processes by pid (pidfd). An escapee is
found through ``/proc`` and must pass every one of these tests:

- it is a child of this process listed in the main thread's ``children`` (where the
  kernel puts re-parented orphans; trio spawns from its worker threads, so a CLI whose
  spawn is still returning is not there);
- it is not a CLI this process recorded (`live_recorded_pids`) and no pidfd of this
  process refers to it (a process some trio code is waiting for);
- it is in neither this process's session nor its process group (a plain child of the
  application is);
- it started after this process first became a subreaper;
- its environment carries `SUPERVISOR_MARK` with this process's pid, which every CLI this
  process starts gets (`CliSpec.build_env`) and its descendants inherit. So a child the
  application itself starts, even in a session of its own, is never taken for an escapee.

Processes that pass are SIGKILLed with their whole session and reaped by pid (bounded);
zombies among them are reaped. What remains possible is in the README ("Process hygiene").
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import signal
import threading
import time
from collections.abc import Callable

from ._hygiene import live_members, proc_stat

logger = logging.getLogger("llmsup.hygiene")

_PR_SET_CHILD_SUBREAPER = 36
# Set in every CLI's environment to this process's pid: the proof that a process found
# re-parented here descends from one of our CLIs.
SUPERVISOR_MARK = "LLMSUP_SUPERVISOR"
# Under sustained load (some CLI always live), look for escapees at most this often.
CHECK_EVERY_S = 0.25
# Bound on waiting for a SIGKILLed escapee to become reapable (a D-state one may never).
_REAP_WAIT_S = 0.05

_lock = threading.Lock()
_enabled = False
_unavailable = False
_first_enabled_ticks: int | None = None
_last_check = 0.0
_killed: set[int] = set()
_no_children_file = False


_libc: ctypes.CDLL | None = None


def _prctl_subreaper(on: bool) -> bool:
    global _libc
    try:
        if _libc is None:
            _libc = ctypes.CDLL(None, use_errno=True)
        return int(_libc.prctl(_PR_SET_CHILD_SUBREAPER, int(on), 0, 0, 0)) == 0
    except (OSError, AttributeError):
        return False


def set_subreaper(on: bool, now_ticks: Callable[[], int]) -> None:
    """Become (or stop being) a child subreaper; a no-op where the kernel refuses."""
    global _enabled, _unavailable, _first_enabled_ticks
    with _lock:
        if _unavailable or _enabled == on:
            return
        if os.environ.get("LLMSUP_CATCH_ESCAPEES") == "0":
            _unavailable = True
            return
        if not _prctl_subreaper(on):
            _unavailable = True
            logger.info("cannot become a child subreaper: setsid() escapees are not caught")
            return
        _enabled = on
        if on and _first_enabled_ticks is None:
            _first_enabled_ticks = now_ticks()


def _reset_after_fork() -> None:
    global _lock, _enabled, _first_enabled_ticks
    _lock = threading.Lock()
    _enabled = False  # the kernel does not pass the flag on to a forked child
    _first_enabled_ticks = None
    _killed.clear()


os.register_at_fork(after_in_child=_reset_after_fork)


def check_due() -> bool:
    """Whether a look for escapees is due under load (cheap: one clock read)."""
    return _first_enabled_ticks is not None and time.monotonic() - _last_check >= CHECK_EVERY_S


def _children() -> list[int]:
    """Children of this process's main thread, where re-parented orphans go.

    Without ``/proc/PID/task/TID/children`` (a kernel built without it) there is no safe
    way to tell an escapee from a CLI whose spawn has not returned yet: none is caught.
    """
    global _no_children_file
    pid = os.getpid()
    try:
        with open(f"/proc/{pid}/task/{pid}/children", "rb") as f:
            return [int(word) for word in f.read().split()]
    except OSError:
        if not _no_children_file:
            _no_children_file = True
            logger.info("no /proc/PID/task/TID/children: setsid() escapees are not caught")
        return []


def _pidfd_targets() -> set[int]:
    """Pids that some pidfd held by this process refers to (trio's waited-for children)."""
    targets: set[int] = set()
    with contextlib.suppress(OSError):
        for fd in os.listdir("/proc/self/fd"):
            try:
                if os.readlink(f"/proc/self/fd/{fd}") != "anon_inode:[pidfd]":
                    continue
                with open(f"/proc/self/fdinfo/{fd}") as f:
                    for line in f:
                        if line.startswith("Pid:"):
                            targets.add(int(line.split()[1]))
            except (OSError, ValueError):
                continue
    return targets


def _carries_our_mark(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/environ", "rb") as f:
            environ = f.read()
    except OSError:
        return False  # gone, or not ours to read: not ours to kill either
    return f"{SUPERVISOR_MARK}={os.getpid()}".encode() in environ.split(b"\0")


def _is_escapee(pid: int, fields: list[bytes], since: int) -> bool:
    try:
        state = fields[0]
        pgrp, session, started = int(fields[2]), int(fields[3]), int(fields[19])
    except (IndexError, ValueError):
        return False
    if session == os.getsid(0) or pgrp == os.getpgrp() or started < since:
        return False
    # A zombie's environ is empty: it can only be one we killed (in `_killed`).
    return state != b"Z" and _carries_our_mark(pid)


def _reap(pid: int, wait_s: float) -> bool:
    """Reap ``pid`` if it is a dead child of ours; True when it is gone for good."""
    deadline = time.monotonic() + wait_s
    while True:
        try:
            done, _ = os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            return True  # not (or no longer) our child: someone else reaps it
        if done or time.monotonic() >= deadline:
            return bool(done)
        time.sleep(0.001)


def _kill_session_of(pid: int, session: int) -> list[int]:
    members = [pid, *(p for p in live_members(session) if p != pid)]
    for member in members:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(member, signal.SIGKILL)
    return members


def _escapees_among(children: list[int], known: set[int], since: int) -> list[list[bytes]]:
    """The ``/proc`` stat fields of the children that are escapees (zombies included)."""
    if not children:
        return []
    waited = _pidfd_targets()
    out: list[list[bytes]] = []
    for pid in children:
        fields = proc_stat(pid)
        if pid not in known and pid not in waited and fields and _is_escapee(pid, fields, since):
            out.append([str(pid).encode(), *fields])
    return out


def reap_escapees(known: set[int]) -> list[int]:
    """Kill and reap re-parented escapees (see the module docstring); returns their pids.

    ``known`` are the live CLIs this process started. Synchronous and bounded: it waits
    at most `_REAP_WAIT_S` (only when it killed something), and costs one small ``/proc``
    read when there is nothing to do.
    """
    global _last_check
    _last_check = time.monotonic()
    since = _first_enabled_ticks
    if since is None:
        return []
    children = [pid for pid in _children() if pid not in known]
    if not children and not _killed:
        return []
    found: list[int] = []
    for entry in _escapees_among(children, known, since):
        pid = int(entry[0])
        _killed.add(pid)
        if entry[1] != b"Z":
            found.append(pid)
            _killed.update(_kill_session_of(pid, int(entry[4])))
    if found:
        deadline = time.monotonic() + _REAP_WAIT_S
        while not all(_reap(pid, 0.0) for pid in found) and time.monotonic() < deadline:
            time.sleep(0.001)
        # Their session's members die too, and are re-parented here as zombies.
        for entry in _escapees_among(_children(), known, since):
            _killed.add(int(entry[0]))
        logger.warning(
            "killed %d process(es) that escaped their CLI's session: %s", len(found), found
        )
    for pid in list(_killed):
        if _reap(pid, 0.0):
            _killed.discard(pid)
    return found
