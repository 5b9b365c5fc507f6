"""One CLI process's plumbing, shared by the one-shot actor and the warm actor.

Spawning (own session, pipes, typed spawn errors), reading the pipes, keeping stderr's tail,
turning stdout into events, and the stop sequence each exist here once.

Measured speed tricks (``bench/overhead.py``; a call of a process that lives ~1 ms is bound
by the trio thread's CPU, so every scheduler trip counts). Each is named and explained where
it lives:

- `PipeReads.read_ready`: a ready pipe is read with ``os.read`` without a cancel scope or a
  yield; after `FAST_READS_IN_A_ROW` such reads one read waits, so a flood cannot starve
  other tasks.
- `end_process`: a process that exited with its group empty has its pipes closed at once,
  with no shielded stop sequence.
- `actors._channels.send_soon` / `receive_soon`: channel hand-offs skip the yield when the
  buffer has room (or an item waits).

The backend seam (`actors._backend`): the actors start a CLI through ``spawner_of(spec)``
(`REAL_SPAWNER` unless the spec names a ``backend``) and see a `SpawnedCli`; the stop
sequence below runs on that interface, so a simulated CLI is stopped by the same steps.

Stop sequence (`stop_process_tree`, shielded, time-bounded): close stdin if asked and wait a
little; SIGTERM to the whole group; wait out the grace period; SIGKILL to the group; reap
with a bounded wait; then sweep any leftover member of the tree (a grandchild that ignores
SIGTERM gets the same treatment).
"""

from __future__ import annotations

import logging
import math
import os
import shutil
import subprocess
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import cast

import trio

from ._backend import RealCli, SpawnedCli, Spawner
from ._clis._discovery import cli_search_description
from ._errors import ErrorCategory, LLMError
from ._events import ErrorReport, Event
from ._framing import LineFramer, LineTooLong
from ._registry import GroupRecord
from ._spec import Adapter, CliSpec
from ._timeouts import ProgressiveTimeoutManager
from ._verdict import ReaderFailure

logger = logging.getLogger("llmsup.actor")

READ_CHUNK = 65536
# After the CLI exits, how long a read may wait for more output before we stop draining
# (a grandchild may hold the pipe open forever).
EXIT_DRAIN_S = 0.5
# Budget for leftovers of a CLI that exited on its own (they are orphans already).
LEFTOVER_GRACE_S = 1.0
# Bound on waiting for the kernel to reap after SIGKILL (a D-state process may never go).
KILL_REAP_S = 2.0
# Reads served straight from a ready pipe before one that waits (and so yields).
FAST_READS_IN_A_ROW = 8

Deliver = Callable[[Sequence[Event]], Awaitable[None]]


def spawn_error(spec: CliSpec, argv: list[str], exc: OSError) -> LLMError:
    """The PERMANENT `LLMError` for a CLI that could not be started, naming the binary."""
    program = argv[0]
    if isinstance(exc, FileNotFoundError):
        where = "" if os.sep in program else " on PATH"
        interpreter = _missing_interpreter(program, spec.cwd)
        if spec.cwd and not os.path.isdir(spec.cwd):
            reason = f"working directory {spec.cwd!r} does not exist"
        elif interpreter is not None:
            reason = (
                f"CLI {program!r} exists, but its interpreter {interpreter!r} "
                "(from its #! line) was not found"
            )
        else:
            reason = f"CLI binary not found: {program!r}{where}"
            if os.sep not in program:
                reason += f" ({cli_search_description(program)})"
    elif isinstance(exc, PermissionError):
        reason = f"CLI binary is not executable: {program!r}"
    else:
        reason = f"could not start CLI binary {program!r}: {exc}"
    return LLMError(reason, ErrorCategory.PERMANENT, original_error=exc, cli=spec.name)


def _missing_interpreter(program: str, cwd: str | None) -> str | None:
    """The ``#!`` interpreter of an existing script ``program`` when that is what is
    missing (exec reports ENOENT for both), else None."""
    path = shutil.which(program) if os.sep not in program else program
    if path is None:
        return None
    if cwd and not os.path.isabs(path):
        path = os.path.join(cwd, path)
    try:
        with open(path, "rb") as f:
            first = f.readline(512)
    except OSError:
        return None
    if not first.startswith(b"#!"):
        return None
    words = first[2:].split()
    if not words:
        return None
    interpreter = os.fsdecode(words[0])
    return None if os.path.exists(interpreter) else interpreter


async def spawn_cli(spec: CliSpec, argv: Sequence[str], *, stdin_pipe: bool) -> trio.Process:
    """Start a CLI in a session of its own (so its whole tree can be signalled), with
    stdout and stderr piped and stdin a pipe or ``/dev/null``; an `OSError` becomes a
    PERMANENT `LLMError` naming the binary.

    Cancellation: ``Popen`` runs in a worker thread and cannot be interrupted; the process
    is returned and the cancellation arrives at the caller's next checkpoint, so the caller
    must own the process (try/finally with `end_process`) before awaiting anything.
    """
    try:
        return await trio.lowlevel.open_process(
            list(argv),
            stdin=subprocess.PIPE if stdin_pipe else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            # Bytes, as subprocess accepts on POSIX (trio's signature says str).
            env=cast("Mapping[str, str]", spec.spawn_env()),
            cwd=spec.cwd,
            start_new_session=True,
        )
    except OSError as exc:
        raise spawn_error(spec, list(argv), exc) from exc


class RealSpawner:
    """The real backend (`Spawner`): `spawn_cli`, with the group recorded in the process
    registry before any checkpoint (a SIGKILL of this process leaks nothing)."""

    __slots__ = ()

    async def spawn(self, spec: CliSpec, argv: Sequence[str], *, stdin_pipe: bool) -> RealCli:
        proc = await spawn_cli(spec, argv, stdin_pipe=stdin_pipe)
        return RealCli(proc, GroupRecord(proc.pid), whole_session=spec.sweep_session)


REAL_SPAWNER = RealSpawner()
"""The backend of a spec whose ``backend`` is None: real processes."""


def spawner_of(spec: CliSpec) -> Spawner[CliSpec]:
    """The backend ``spec`` runs on."""
    return REAL_SPAWNER if spec.backend is None else spec.backend


class TailBuffer:
    """Keeps the last ``limit`` bytes written to it."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._data = bytearray()
        self.total = 0

    def write(self, chunk: bytes) -> None:
        self.total += len(chunk)
        self._data += chunk
        if len(self._data) > 2 * self.limit:
            del self._data[: len(self._data) - self.limit]

    def text(self) -> str:
        return bytes(self._data[-self.limit :]).decode("utf-8", errors="replace")


class PipeReads:
    """The reads of one process's pipes: fast when output is ready, bounded at exit.

    Each waiting read has its own cancel scope, so the process's exit can re-bound reads
    already waiting (`process_exited`): a grandchild holding a pipe open cannot hold the
    call past `EXIT_DRAIN_S`.

    No output is lost to a deadline (a stalled event loop can wake a read after its
    deadline even though the CLI wrote in time):

    - once the process exited, a read is bounded by the drain deadline only (`EXIT_DRAIN_S`
      after the exit), never by an earlier chunk, first-output or registry deadline;
    - a read whose deadline passed first takes what is already in the pipe (a
      non-blocking read: data, or EOF) before it reports None;
    - after the exit, a read reports None only once the drain deadline passed with the
      pipe empty and still open (a grandchild holds it).
    """

    def __init__(self) -> None:
        self._scopes: set[trio.CancelScope] = set()
        self.exited = False
        # Set at the exit: when the drain gives up on a pipe a grandchild holds open.
        self.drain_deadline = math.inf
        self._fast_left = FAST_READS_IN_A_ROW

    def read_ready(self, stream: trio.abc.ReceiveStream) -> bytes | None:
        """Speed trick: what is already in the pipe, read with no cancel scope and no yield.

        A short call's output and EOF are usually there before its reader looks, so this
        saves a scope and a scheduler trip per read (measured: 0.77-0.82x of bare
        ``trio.run_process`` throughput before, 0.86-0.93x after). After
        `FAST_READS_IN_A_ROW` such reads it returns None once, so the caller's read waits
        (and yields): a CLI that keeps its pipe full cannot starve other tasks. A backend's
        in-memory pipe takes part through its ``receive_ready(max_bytes)`` (the simulated
        backend's: what it holds, ``b""`` at EOF, or None), which must not yield.
        """
        if self._fast_left <= 0:
            self._fast_left = FAST_READS_IN_A_ROW
            return None
        if isinstance(stream, trio.lowlevel.FdStream):
            try:  # inline `read_now`: this is the hot path
                data = os.read(stream.fileno(), READ_CHUNK)  # the fd is non-blocking
            except OSError:  # nothing yet (EAGAIN), or a real error the waiting read reports
                return None
        else:
            # A backend's in-memory pipe (the simulated one) may offer the same read.
            receive_ready = getattr(stream, "receive_ready", None)
            if receive_ready is None:
                self._fast_left = FAST_READS_IN_A_ROW
                return None
            ready: bytes | None = receive_ready(READ_CHUNK)
            if ready is None:
                return None
            data = ready
        self._fast_left -= 1
        return data

    async def receive(self, stream: trio.abc.ReceiveStream, deadline: float) -> bytes | None:
        """A chunk, ``b""`` at EOF, or None if the deadline passed with the pipe empty.

        After the exit ``deadline`` no longer applies: only the drain deadline does.
        """
        ready = self.read_ready(stream)
        if ready is not None:
            return ready
        while True:
            with trio.CancelScope(deadline=self._bound(deadline)) as scope:
                self._scopes.add(scope)
                try:
                    return bytes(await stream.receive_some(READ_CHUNK))
                finally:
                    self._scopes.discard(scope)
            # The deadline passed, perhaps only because the loop was busy: the pipe may
            # hold output written in time (or EOF). Take it before giving up.
            late = read_now(stream)
            if late is not None:
                return late
            if not self.exited or trio.current_time() >= self.drain_deadline:
                return None
            # The deadline that fired was one from before the exit: drain on.

    def _bound(self, deadline: float) -> float:
        return self.drain_deadline if self.exited else deadline

    def process_exited(self) -> None:
        self.exited = True
        self.drain_deadline = trio.current_time() + EXIT_DRAIN_S
        for scope in self._scopes:
            scope.deadline = self.drain_deadline


def read_now(stream: trio.abc.ReceiveStream) -> bytes | None:
    """What is in the pipe right now (``b""`` at EOF), or None if nothing (or not a pipe).

    A plain ``os.read`` on the non-blocking fd: no cancel scope, no yield. A real error
    returns None too; the waiting read that follows reports it.
    """
    if not isinstance(stream, trio.lowlevel.FdStream):
        return None
    try:
        return os.read(stream.fileno(), READ_CHUNK)
    except OSError:  # nothing yet (EAGAIN), or a real error the waiting read reports
        return None


async def pump_stderr(
    stream: trio.abc.ReceiveStream,
    tail: TailBuffer,
    reads: PipeReads,
    *,
    watch: Callable[[str], ErrorReport | None] | None = None,
    deliver: Deliver | None = None,
) -> None:
    """Keep stderr's tail until EOF; pass what ``watch`` finds in its lines to ``deliver``."""
    partial = bytearray()
    while True:
        chunk = await reads.receive(stream, math.inf)
        if not chunk:
            return
        tail.write(chunk)
        if watch is None or deliver is None:
            continue
        partial += chunk
        *lines, rest = partial.split(b"\n")
        # Bounded like the tail: a newline-less flood is not worth watching.
        partial = bytearray(rest[-tail.limit :])
        for line in lines:
            report = watch(line.decode("utf-8", errors="replace"))
            if report is not None:
                await deliver([report])


def line_too_long(spec: CliSpec, exc: LineTooLong) -> ReaderFailure:
    """The one wording of a line past ``max_line_bytes`` (both actors report it).

    The error keeps ``exc`` (its sizes, the line's head and tail) but not its traceback:
    the traceback's frames hold the framer and the chunk, and a kept error would keep
    megabytes alive until a full garbage collection (the frames form cycles).
    """
    exc.__traceback__ = None
    exc.__context__ = None
    head = exc.head.decode("utf-8", errors="replace")
    tail = exc.tail.decode("utf-8", errors="replace")
    return ReaderFailure(
        f"{spec.name} printed a line longer than max_line_bytes={spec.max_line_bytes}",
        ErrorCategory.MALFORMED_OUTPUT,
        exc,
        raw_text=f"{head}...[{exc.seen} bytes seen, no newline]...{tail}" if head else None,
    )


class ByteCount:
    """Bytes a reader has read so far (a warm process's turns each measure their share)."""

    __slots__ = ("total",)

    def __init__(self) -> None:
        self.total = 0


def output_too_large(spec: CliSpec, kept: int) -> ReaderFailure:
    """The one wording of output past ``max_output_bytes``."""
    return ReaderFailure(
        f"{spec.name} printed more than max_output_bytes={spec.max_output_bytes} bytes of "
        f"output ({kept} bytes kept for the result so far); raise max_output_bytes on the "
        "CliSpec if this output is expected",
        ErrorCategory.MALFORMED_OUTPUT,
    )


async def read_events(
    spec: CliSpec,
    stream: trio.abc.ReceiveStream,
    reads: PipeReads,
    adapter: Adapter,
    deliver: Deliver,
    timeouts: ProgressiveTimeoutManager | None = None,
    *,
    max_output_bytes: int | None = None,
    count: ByteCount | None = None,
) -> ReaderFailure | None:
    """Frame stdout into lines and pass each line's events to ``deliver``, until EOF.

    Returns None at EOF (or once the process exited and a grandchild still holds the
    pipe), else why reading stopped: silence past ``timeouts``' limit, a line too long,
    or more than ``max_output_bytes`` of output. The adapter's own ``finish`` is the
    caller's to call.

    What counts against ``max_output_bytes`` is every stdout byte read: each line read is
    kept for the result, as the events it becomes (the one-shot actor keeps every event)
    or as text an adapter holds for its final answer, and a line an adapter skips costs
    no more than its bytes. The chunk that would pass the limit is not delivered: a
    stream consumer sees every event up to the limit, then the call fails. A warm
    process's output has no end to cap; its turns cap their share of ``count``.
    """
    framer = LineFramer(spec.max_line_bytes)
    room = math.inf if max_output_bytes is None else max_output_bytes
    try:
        while True:
            deadline = math.inf if timeouts is None else timeouts.chunk_deadline
            chunk = await reads.receive(stream, deadline)
            if chunk is None:
                if reads.exited:
                    break  # A grandchild holds the pipe: the CLI's exit ends the call.
                assert timeouts is not None
                return ReaderFailure(timeouts.silence_message(spec.name), ErrorCategory.TIMEOUT)
            if not chunk:
                break
            if count is not None:
                count.total += len(chunk)
            room -= len(chunk)
            if room < 0:
                assert max_output_bytes is not None
                return output_too_large(spec, max_output_bytes - int(room) - len(chunk))
            if timeouts is not None:
                timeouts.activity()
            for line in framer.feed(chunk):
                await deliver(adapter.parse_line(line))
        for line in framer.finish():
            await deliver(adapter.parse_line(line))
    except LineTooLong as exc:
        return line_too_long(spec, exc)
    return None


async def end_process(
    cli: SpawnedCli, grace: float, name: str, *, close_stdin_first: bool = False
) -> None:
    """Leave nothing of ``cli``'s tree behind; for a ``finally`` (shields itself).

    Speed trick: a process that exited with its group empty (the usual end of a short
    call) only has its pipes closed: nothing to stop, nothing to await.
    """
    if not cli.tree_alive():
        cli.close_pipes()
        return
    with trio.CancelScope(shield=True):
        await stop_process_tree(cli, grace, name, close_stdin_first=close_stdin_first)


async def stop_process_tree(
    proc: trio.Process | SpawnedCli,
    grace: float,
    name: str = "cli",
    *,
    close_stdin_first: bool = False,
) -> None:
    """The stop sequence. Call shielded; returns within ``grace`` plus a few seconds.

    ``proc`` is a `trio.Process` started in a session of its own, or any backend's
    `SpawnedCli` (a simulated CLI's "signals" cancel its script). ``close_stdin_first`` is
    for CLIs that read requests from stdin (warm actors): closing it is their polite
    "please exit", so they get half the grace period to do so.
    """
    cli: SpawnedCli = RealCli(proc) if isinstance(proc, trio.Process) else proc
    deadline = trio.current_time() + grace
    if cli.returncode is None:
        if close_stdin_first and cli.stdin is not None:
            await cli.stdin.aclose()
            with trio.move_on_at(trio.current_time() + grace / 2):
                await cli.wait()
        if cli.returncode is None:
            cli.terminate()
            with trio.move_on_at(deadline):
                await cli.wait()
        if cli.returncode is None:
            cli.kill()
            with trio.move_on_after(KILL_REAP_S):
                await cli.wait()
            if cli.returncode is None:
                logger.error("%s (pid %d) survived SIGKILL; not reaped", name, cli.pid)
        leftover_grace = max(0.0, deadline - trio.current_time())
    else:
        leftover_grace = min(grace, LEFTOVER_GRACE_S)
    survivors = await cli.sweep(leftover_grace)
    if survivors:
        logger.error("%s: processes %s of group %d survived SIGKILL", name, survivors, cli.pid)
    cli.close_pipes()


def close_pipes(proc: trio.Process) -> None:
    """Close our ends of the CLI's pipes at once (``aclose`` would add a yield per pipe)."""
    for stream in (proc.stdin, proc.stdout, proc.stderr):
        if stream is not None:
            assert isinstance(stream, trio.lowlevel.FdStream)  # always, on POSIX
            stream.close()
