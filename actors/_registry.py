"""A registry of live CLI process groups, so a supervisor killed with SIGKILL leaks nothing.

A SIGKILLed supervisor runs no cleanup, and parent-death signals are unreliable under trio
(they follow the forking *thread*). Instead each supervisor process keeps one append-only
record file, ``<dir>/owner-<pid>-<start>`` (its pid and kernel start time, so a reused pid
is never mistaken for it). Every spawned group is recorded at once, before anything else
can run, with one ``os.write`` of ``+<pgid> <ticks>`` (O_APPEND, no fsync: a SIGKILL loses
no written byte); a group stopped normally appends ``-<pgid>``. The file is removed when
its last group is gone and rewritten (compacted) when it has grown well past its live
entries. The next supervisor to open sweeps the files whose owner is gone.

``<ticks>`` is the boot-time clock, in the kernel's clock ticks, read just after the spawn:
the group leader's start time (``/proc/<pgid>/stat``) can be no later, while a process that
reused the pid can only have started after the leader died, so the sweep tells them apart
without a ``/proc`` read per spawn.

The older one-file-per-group records (``<dir>/<pgid>``, `record_group`) are still written
for callers that use them and still swept.

The directory is ``$LLMSUP_RUNTIME_DIR``, else ``$XDG_RUNTIME_DIR/llmsup``, else
``<tmp>/llmsup-<uid>``.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import tempfile
import threading
import time

from ._hygiene import live_members, proc_stat, signal_group
from ._subreaper import check_due, reap_escapees, set_subreaper

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


_TICK_NS = 1_000_000_000 // os.sysconf("SC_CLK_TCK")
# Slack on the spawn-time bound (rounding between the clock and /proc's start time).
_TICK_SLACK = 1
# A record file is compacted once it holds this many lines more than live entries.
_COMPACT_SLACK = 256
OWNER_PREFIX = "owner-"
# Rounds of SIGKILL for a dead owner's group (members may fork while it is swept).
_KILL_ROUNDS = 5


def _now_ticks() -> int:
    return time.clock_gettime_ns(time.CLOCK_BOOTTIME) // _TICK_NS


class _Ledger:
    """This process's record file in one directory, and the groups live in it."""

    def __init__(self, directory: str) -> None:
        owner_pid, owner_start = _owner()
        self.path = os.path.join(directory, f"{OWNER_PREFIX}{owner_pid}-{owner_start}")
        self.fd = -1
        self.live: dict[int, int] = {}  # pgid -> ticks when recorded
        self.lines = 0
        self.warned = False

    def _write(self, line: bytes) -> bool:
        try:
            if self.fd < 0:
                flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC
                self.fd = os.open(self.path, flags, 0o600)
            os.write(self.fd, line)
        except OSError as exc:
            if not self.warned:
                self.warned = True
                logger.warning("cannot record process groups in %s: %s", self.path, exc)
            return False
        self.lines += 1
        return True

    def add(self, pgid: int) -> None:
        ticks = _now_ticks()
        self.live[pgid] = ticks  # live even if unwritten: `live_recorded_pids` must know it
        self._write(b"+%d %d\n" % (pgid, ticks))

    def remove(self, pgid: int) -> None:
        if self.live.pop(pgid, None) is None:
            return
        if not self.live:
            self._drop()
        elif self._write(b"-%d\n" % pgid) and self.lines > 2 * len(self.live) + _COMPACT_SLACK:
            self._compact()

    def _drop(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1
        self.lines = 0
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)

    def _compact(self) -> None:
        """Rewrite the file with the live entries only (atomically, by rename)."""
        tmp = os.path.join(os.path.dirname(self.path), "." + os.path.basename(self.path))
        body = b"".join(b"+%d %d\n" % item for item in self.live.items())
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
            try:
                os.write(fd, body)
            finally:
                os.close(fd)
            os.replace(tmp, self.path)
        except OSError as exc:
            logger.warning("cannot compact %s: %s", self.path, exc)
            return
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1
        self.lines = len(self.live)

    def close_in_child(self) -> None:
        if self.fd >= 0:
            with contextlib.suppress(OSError):
                os.close(self.fd)


_ledgers: dict[str, _Ledger] = {}
_ledger_lock = threading.Lock()
_live_total = 0  # groups recorded and not forgotten, over every directory


def _reset_after_fork() -> None:
    global _ledger_lock, _live_total
    _live_total = 0
    for ledger in _ledgers.values():
        ledger.close_in_child()
    _ledgers.clear()
    _ledger_lock = threading.Lock()


os.register_at_fork(after_in_child=_reset_after_fork)


class GroupRecord:
    """A spawned group's entry in this process's record file, written at construction.

    Create it right after the spawn returns, before any checkpoint, and call `forget`
    once the group is gone.
    """

    __slots__ = ("_ledger", "pgid")

    def __init__(self, pgid: int) -> None:
        self.pgid = pgid
        self._ledger: _Ledger | None = None
        try:
            directory = registry_dir()
        except OSError as exc:  # never raise here: the caller owns a live process
            logger.warning("cannot record process group %d: %s", pgid, exc)
            return
        global _live_total
        with _ledger_lock:
            ledger = _ledgers.get(directory)
            if ledger is None:
                ledger = _ledgers[directory] = _Ledger(directory)
            ledger.add(pgid)
            _live_total += 1
            first = _live_total == 1
        self._ledger = ledger
        if first:  # orphans of CLI trees come here from now on (see actors._subreaper)
            set_subreaper(True, _now_ticks)

    def forget(self) -> None:
        """Drop the entry (its group is gone); then look for escapees of CLI trees: always
        when no CLI is live any more, at most every `CHECK_EVERY_S` under load."""
        global _live_total
        ledger, self._ledger = self._ledger, None
        if ledger is None:
            return
        with _ledger_lock:
            ledger.remove(self.pgid)
            _live_total -= 1
            last = _live_total == 0
        if last:
            reap_escapees(set())
            set_subreaper(False, _now_ticks)
        elif check_due():
            reap_escapees(live_recorded_pids())


def live_recorded_pids() -> set[int]:
    """Leaders of every group this process has recorded and not yet forgotten."""
    with _ledger_lock:
        return {pgid for ledger in _ledgers.values() for pgid in ledger.live}


# Old name: groups used to be recorded only after 50 ms; now they are recorded at once.
DeferredRecord = GroupRecord


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


def _kill_leftovers(pgid: int, owner: int) -> bool:
    """SIGKILL the live members of a dead owner's group; True if there were any.

    The group is signalled as a whole before anything is looked up: a /proc scan can miss
    a member forked while it runs (its parent gone by the time the scan reads it), while
    ``killpg`` reaches every member the group has. Then any member found in ``/proc`` (one
    that left the group but not the session) is signalled, a few rounds until none is left.
    """
    group_existed = signal_group(pgid, signal.SIGKILL)
    members = live_members(pgid)
    found = members
    for _ in range(_KILL_ROUNDS):
        if not found:
            break
        signal_group(pgid, signal.SIGKILL)
        for pid in found:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
        found = live_members(pgid)
    if members or group_existed:
        logger.warning(
            "killed leftover processes of group %d (%d found in /proc; its supervisor, "
            "pid %d, died)",
            pgid,
            len(members),
            owner,
        )
    return bool(members) or group_existed


def _owner_alive(owner: int, owner_start: int | None) -> bool:
    return owner_start is not None and start_time(owner) == owner_start


def _sweep_group_file(path: str, pgid: int) -> bool:
    """One old-style ``<dir>/<pgid>`` record; True if its group was killed."""
    record = _parse(path)
    if record is None:
        forget_group(path)
        return False
    owner, owner_start, leader_start = record
    if _owner_alive(owner, owner_start):
        return False  # its supervisor is alive and will clean up itself
    current_leader = start_time(pgid)
    killed = False
    if current_leader is None or current_leader == leader_start:
        killed = _kill_leftovers(pgid, owner)
    # else the pid was reused by an unrelated process: drop the record, spare it
    forget_group(path)
    return killed


def _live_entries(data: bytes) -> dict[int, int]:
    """The groups a record file holds that were never forgotten (pgid -> ticks)."""
    live: dict[int, int] = {}
    for line in data.split(b"\n"):
        try:
            if line.startswith(b"+"):
                pgid, ticks = line[1:].split()
                live[int(pgid)] = int(ticks)
            elif line.startswith(b"-"):
                live.pop(int(line[1:]), None)
        except ValueError:
            continue  # a line torn by the owner's death
    return live


def _sweep_owner_file(directory: str, name: str) -> list[int]:
    """One supervisor's record file; returns the pgids killed."""
    try:
        pid_text, start_text = name[len(OWNER_PREFIX) :].split("-", 1)
        owner = int(pid_text)
        owner_start = None if start_text == "None" else int(start_text)
    except ValueError:
        return []
    if _owner_alive(owner, owner_start):
        return []
    path = os.path.join(directory, name)
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError:
        return []
    swept: list[int] = []
    for pgid, ticks in _live_entries(data).items():
        leader = start_time(pgid)
        if leader is not None and not (owner_start or 0) <= leader <= ticks + _TICK_SLACK:
            continue  # started after our record (or before our owner): a reused pid
        if _kill_leftovers(pgid, owner):
            swept.append(pgid)
    forget_group(path)
    forget_group(os.path.join(directory, "." + name))  # a compaction cut short
    return swept


def sweep_orphaned_groups(directory: str | None = None) -> list[int]:
    """SIGKILL the groups whose owning supervisor died; returns the pgids swept.

    A group is ours to kill only if its owner is gone (pid absent, or alive with another
    start time) and the group still has live members that are provably the recorded
    tree: either the leader itself (started no later than the record was written, and
    not before its owner) or members of a group whose leader is gone (the kernel never
    reuses a pid while its group exists).
    """
    directory = directory or registry_dir()
    swept: list[int] = []
    try:
        names = os.listdir(directory)
    except OSError:
        return swept
    for name in names:
        if name.isdigit():
            if _sweep_group_file(os.path.join(directory, name), int(name)):
                swept.append(int(name))
        elif name.startswith(OWNER_PREFIX):
            swept.extend(_sweep_owner_file(directory, name))
    return swept
