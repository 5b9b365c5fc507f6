"""Process-group signalling and leftover detection.

Every CLI starts in a new session, so its process id is also its group and session id and
the whole tree (node CLIs spawn helpers) can be signalled at once with ``killpg``. "Is
anything left?" is answered by the kernel (``killpg(pgid, 0)``) and, only when that says
yes, by ``/proc`` (to ignore zombies, which cannot be killed; orphans re-parented to this
process while it is a subreaper are reaped by `actors._subreaper`).
"""

from __future__ import annotations

import contextlib
import os
import signal

import trio

_POLL_S = 0.01


def signal_group(pgid: int, sig: signal.Signals) -> bool:
    """Send ``sig`` to the group; False when the group no longer exists."""
    try:
        os.killpg(pgid, sig)
    except ProcessLookupError:
        return False
    except PermissionError:
        # A member changed credentials (setuid helper); nothing more we may do.
        return False
    return True


def proc_stat(pid: int | str) -> list[bytes] | None:
    """The fields of ``/proc/PID/stat`` after the command name, or None if it vanished.

    Index 0 is the state, 2 the process group, 3 the session, 19 the start time.
    """
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
    except OSError:
        return None
    # The command name may contain spaces and parens: split after the last ")".
    return data[data.rfind(b")") + 2 :].split()


def _stat_fields(pid: str) -> tuple[str, int, int] | None:
    """(state, pgrp, session) of a process, or None if it vanished."""
    rest = proc_stat(pid)
    try:
        return (rest[0].decode(), int(rest[2]), int(rest[3])) if rest else None
    except (IndexError, ValueError):
        return None


def live_members(pgid: int, *, whole_session: bool = False) -> list[int]:
    """Pids of non-zombie processes in group ``pgid`` or session ``pgid``.

    The /proc scan (about 1 ms) runs only while the group is not empty, unless
    ``whole_session``: then members that moved to another group of the session (codex's
    sandbox helper does) are found after the group emptied too.
    """
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        if not whole_session:
            return []
    except PermissionError:
        pass
    members: list[int] = []
    with contextlib.suppress(FileNotFoundError):
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            fields = _stat_fields(entry)
            if fields is None:
                continue
            state, pgrp, session = fields
            if state != "Z" and (pgrp == pgid or session == pgid):
                members.append(int(entry))
    return members


def _kill_members(pgid: int, sig: signal.Signals, whole_session: bool) -> None:
    signal_group(pgid, sig)
    # Members that left the group but not the session (setpgid) are found via /proc.
    for pid in live_members(pgid, whole_session=whole_session):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, sig)


async def wait_group_gone(pgid: int, *, whole_session: bool = False) -> None:
    """Return once no live member of the group remains. Bound it with a cancel scope."""
    # Orphans are not our children: no pidfd or wait() to block on, so poll.
    while live_members(pgid, whole_session=whole_session):  # noqa: ASYNC110
        await trio.sleep(_POLL_S)


async def _gone_within(pgid: int, seconds: float, whole_session: bool) -> bool:
    with trio.move_on_after(max(seconds, 0.0)):
        await wait_group_gone(pgid, whole_session=whole_session)
    return not live_members(pgid, whole_session=whole_session)


async def sweep_group(
    pgid: int, grace: float, kill_wait: float = 1.0, *, whole_session: bool = False
) -> list[int]:
    """End every leftover of a finished CLI's tree: SIGTERM, wait ``grace``, SIGKILL.

    Returns the pids that survived even SIGKILL for ``kill_wait`` seconds (stuck in D
    state); the caller logs them. Bounded: never waits longer than ``grace + kill_wait``.
    Call it shielded.
    """
    if not live_members(pgid, whole_session=whole_session):
        return []
    _kill_members(pgid, signal.SIGTERM, whole_session)
    if await _gone_within(pgid, grace, whole_session):
        return []
    _kill_members(pgid, signal.SIGKILL, whole_session)
    await _gone_within(pgid, kill_wait, whole_session)
    return live_members(pgid, whole_session=whole_session)


def mem_available() -> int | None:
    """MemAvailable from /proc/meminfo, in bytes (None where there is no such file)."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None
