"""A registry of live CLI process groups, so a supervisor killed with SIGKILL leaks nothing.

A SIGKILLed supervisor runs no cleanup, and parent-death signals are unreliable under trio
(they follow the forking *thread*). Instead every spawned group is recorded as a small file
``<dir>/<pgid>`` holding the owner's and the leader's identities (pid plus kernel start
time, so reused pids are never mistaken). The next supervisor to open sweeps the groups
whose owner is gone. Entries are removed when a group is stopped normally.

Groups are recorded once they have run for 50 ms (`DeferredRecord`): a call that ends
sooner leaves nothing to sweep, and recording it would cost more than the call.

The directory is ``$LLMSUP_RUNTIME_DIR``, else ``$XDG_RUNTIME_DIR/llmsup``, else
``<tmp>/llmsup-<uid>``.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import tempfile

from ._hygiene import live_members, proc_stat

logger = logging.getLogger("llmsup.registry")


_made: dict[str, str] = {}


def registry_dir() -> str:
    """Where group records live (created on first use, private to this user)."""
    key = os.environ.get("LLMSUP_RUNTIME_DIR", "") + "\0" + os.environ.get("XDG_RUNTIME_DIR", "")
    known = _made.get(key)
    if known is not None:
        return known
    path = os.environ.get("LLMSUP_RUNTIME_DIR")
    if not path:
        runtime = os.environ.get("XDG_RUNTIME_DIR")
        path = (
            os.path.join(runtime, "llmsup")
            if runtime
            else os.path.join(tempfile.gettempdir(), f"llmsup-{os.getuid()}")
        )
    os.makedirs(path, mode=0o700, exist_ok=True)
    _made[key] = path
    return path


def start_time(pid: int) -> int | None:
    """The kernel's start time of ``pid`` (clock ticks since boot), or None if gone."""
    fields = proc_stat(pid)
    try:
        return int(fields[19]) if fields else None
    except (IndexError, ValueError):
        return None


_OWNER = (os.getpid(), start_time(os.getpid()))


def _owner() -> tuple[int, int | None]:
    global _OWNER
    if _OWNER[0] != os.getpid():  # forked since import
        _OWNER = (os.getpid(), start_time(os.getpid()))
    return _OWNER


def record_group(pgid: int, directory: str | None = None) -> str | None:
    """Record a freshly spawned group; returns the record's path (None if unwritable)."""
    owner_pid, owner_start = _owner()
    leader_start = start_time(pgid)
    path = os.path.join(directory or registry_dir(), str(pgid))
    try:
        with open(path, "w") as f:
            f.write(f"{owner_pid} {owner_start} {leader_start}\n")
    except OSError as exc:
        logger.warning("cannot record process group %d in %s: %s", pgid, path, exc)
        return None
    return path


class DeferredRecord:
    """A record written only once the group has lived ``RECORD_AFTER_S``.

    Most calls end within milliseconds; recording them would cost a /proc read and two
    file operations each for nothing. A group killed with its supervisor inside that first
    window is the one case the sweep does not cover.
    """

    def __init__(self, pgid: int) -> None:
        self.pgid = pgid
        self.path: str | None = None

    def write_now(self) -> None:
        """Record the group (its reader calls this once ``RECORD_AFTER_S`` has passed)."""
        if self.path is None:
            self.path = record_group(self.pgid)

    def forget(self) -> None:
        forget_group(self.path)
        self.path = None


RECORD_AFTER_S = 0.05


def forget_group(path: str | None) -> None:
    """Remove a record once its group is gone."""
    if path:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)


def _parse(path: str) -> tuple[int, int | None, int | None] | None:
    try:
        with open(path) as f:
            owner, owner_start, leader_start = f.read().split()
        return (
            int(owner),
            None if owner_start == "None" else int(owner_start),
            None if leader_start == "None" else int(leader_start),
        )
    except (OSError, ValueError):
        return None


def sweep_orphaned_groups(directory: str | None = None) -> list[int]:
    """SIGKILL the groups whose owning supervisor died; returns the pgids swept.

    A group is ours to kill only if its owner is gone (pid absent, or alive with another
    start time) and the group still has live members that are provably the recorded
    tree: either the leader itself (same start time) or members of a group whose leader
    is gone (the kernel never reuses a pid while its group exists).
    """
    directory = directory or registry_dir()
    swept: list[int] = []
    try:
        names = os.listdir(directory)
    except OSError:
        return swept
    for name in names:
        if not name.isdigit():
            continue
        path = os.path.join(directory, name)
        record = _parse(path)
        if record is None:
            forget_group(path)
            continue
        owner, owner_start, leader_start = record
        if start_time(owner) == owner_start and owner_start is not None:
            continue  # its supervisor is alive and will clean up itself
        pgid = int(name)
        current_leader = start_time(pgid)
        if current_leader is not None and current_leader != leader_start:
            forget_group(path)  # the pid was reused by an unrelated process
            continue
        members = live_members(pgid)
        for pid in members:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
        if members:
            swept.append(pgid)
            logger.warning(
                "killed %d leftover processes of group %d (its supervisor, pid %d, died)",
                len(members),
                pgid,
                owner,
            )
        forget_group(path)
    return swept
