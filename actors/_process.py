"""The process actor: one CLI process, from spawn to the last reaped grandchild.

`run_process_actor` spawns the CLI in its own session, drains stdout and stderr
concurrently, frames stdout into lines, parses them with the spec's adapter and sends each
event to its owner over a bounded memory channel (so a slow owner slows the CLI down instead
of growing a buffer). It ends with exactly one `ActorDone` message, or, if cancelled, with
`trio.Cancelled` after the whole process tree is gone.

Stop sequence (shielded, time-bounded): close stdin if still open and wait a little; SIGTERM
to the whole group; wait out the grace period; SIGKILL to the group; reap with a bounded
wait; then sweep any leftover member of the tree (a grandchild that ignores SIGTERM gets the
same treatment).
"""

from __future__ import annotations

import logging
import math
import os
import signal
import subprocess
from collections.abc import Callable, Sequence

import attrs
import trio

from ._channels import send_soon
from ._clis._discovery import cli_search_description
from ._errors import ErrorCategory, LLMError
from ._events import (
    AssistantMessage,
    ErrorReport,
    Event,
    FinalResult,
    SessionStarted,
    TextDelta,
    UsageReport,
)
from ._framing import LineFramer, LineTooLong
from ._hygiene import live_members, signal_group, sweep_group
from ._messages import ActorDone, ActorMessage, CallOutcome
from ._registry import RECORD_AFTER_S, DeferredRecord
from ._spec import CliSpec, ProcessExit
from ._timeouts import ProgressiveTimeoutManager, TimeoutConfig

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


class TailBuffer:
    """Keeps the last ``limit`` bytes written to it."""

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._data = bytearray()
        self.total = 0

    def write(self, chunk: bytes) -> None:
        self.total += len(chunk)
        self._data += chunk
        if len(self._data) > 2 * self._limit:
            del self._data[: len(self._data) - self._limit]

    def text(self) -> str:
        return bytes(self._data[-self._limit :]).decode("utf-8", errors="replace")


class _Reads:
    """Per-read cancel scopes, so the process's exit can shorten reads already waiting.

    A read first tries the pipe without waiting: output that is already there (the
    usual case for a short call, whose output and EOF arrive before we look) then costs
    no cancel scope and no trip through the scheduler. After `FAST_READS_IN_A_ROW` such
    reads one real wait follows, so a flooding CLI cannot starve other tasks.
    """

    def __init__(self) -> None:
        self._scopes: set[trio.CancelScope] = set()
        self.exited = False
        self._fast_left = FAST_READS_IN_A_ROW

    def _bound(self, deadline: float) -> float:
        return min(deadline, trio.current_time() + EXIT_DRAIN_S) if self.exited else deadline

    def _read_ready(self, stream: trio.abc.ReceiveStream) -> bytes | None:
        if self._fast_left <= 0 or not isinstance(stream, trio.lowlevel.FdStream):
            self._fast_left = FAST_READS_IN_A_ROW
            return None
        try:
            data = os.read(stream.fileno(), READ_CHUNK)  # the fd is non-blocking
        except OSError:  # nothing yet (EAGAIN), or a real error the waiting read reports
            return None
        self._fast_left -= 1
        return data

    async def receive(self, stream: trio.abc.ReceiveStream, deadline: float) -> bytes | None:
        """A chunk, ``b""`` at EOF, or None if the deadline passed first."""
        ready = self._read_ready(stream)
        if ready is not None:
            return ready
        with trio.CancelScope(deadline=self._bound(deadline)) as scope:
            self._scopes.add(scope)
            try:
                return bytes(await stream.receive_some(READ_CHUNK))
            finally:
                self._scopes.discard(scope)
        return None

    def process_exited(self) -> None:
        self.exited = True
        for scope in self._scopes:
            scope.deadline = self._bound(scope.deadline)


@attrs.define
class _Run:
    """Mutable state of one run, shared by the actor's reader tasks."""

    spec: CliSpec
    outbox: trio.MemorySendChannel[ActorMessage]
    timeouts: ProgressiveTimeoutManager
    events: list[Event] = attrs.Factory(list)
    failure: LLMError | None = None
    reads: _Reads = attrs.Factory(_Reads)
    # Set once the readers run: cancelling it stops reading (the process is then stopped).
    scope: trio.CancelScope | None = None
    stopped_early: bool = False

    def fail(self, error: LLMError, scope: trio.CancelScope) -> None:
        if self.failure is None:
            self.failure = error
        scope.cancel()


async def run_process_actor(
    spec: CliSpec,
    prompt: str,
    outbox: trio.MemorySendChannel[ActorMessage],
    timeouts: TimeoutConfig,
    *,
    on_spawn: Callable[[int], None] | None = None,
) -> None:
    """Run ``spec`` once for ``prompt``; send its events, then one `ActorDone`.

    Never raises except `trio.Cancelled` (and only after the tree is gone). Closing the
    outbox is the caller's job.
    """
    try:
        outcome = await _run_once(spec, prompt, outbox, timeouts, on_spawn)
    except LLMError as error:
        done = ActorDone(error=error)
    else:
        done = ActorDone(outcome=outcome)
    try:
        await send_soon(outbox, done)
    except (trio.BrokenResourceError, trio.ClosedResourceError):
        logger.debug("owner of %s went away before the result", spec.name)


def spawn_error(spec: CliSpec, argv: list[str], exc: OSError) -> LLMError:
    program = argv[0]
    if isinstance(exc, FileNotFoundError):
        where = "" if os.sep in program else " on PATH"
        if spec.cwd and not os.path.isdir(spec.cwd):
            reason = f"working directory {spec.cwd!r} does not exist"
        else:
            reason = f"CLI binary not found: {program!r}{where}"
            if os.sep not in program:
                reason += f" ({cli_search_description(program)})"
    elif isinstance(exc, PermissionError):
        reason = f"CLI binary is not executable: {program!r}"
    else:
        reason = f"could not start CLI binary {program!r}: {exc}"
    return LLMError(reason, ErrorCategory.PERMANENT, original_error=exc, cli=spec.name)


async def spawn_cli(spec: CliSpec, argv: Sequence[str], *, stdin_pipe: bool) -> trio.Process:
    """Start a CLI in a session of its own (so its whole tree can be signalled), with
    stdout and stderr piped and stdin a pipe or ``/dev/null``; an `OSError` becomes a
    PERMANENT `LLMError` naming the binary.

    Cancellation: ``Popen`` runs in a worker thread and cannot be interrupted; the process
    is returned and the cancellation arrives at the caller's next checkpoint, so the caller
    must own the process (try/finally with the stop sequence) before awaiting anything.
    """
    try:
        return await trio.lowlevel.open_process(
            list(argv),
            stdin=subprocess.PIPE if stdin_pipe else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=spec.build_env(),
            cwd=spec.cwd,
            start_new_session=True,
        )
    except OSError as exc:
        raise spawn_error(spec, list(argv), exc) from exc


async def _run_once(
    spec: CliSpec,
    prompt: str,
    outbox: trio.MemorySendChannel[ActorMessage],
    config: TimeoutConfig,
    on_spawn: Callable[[int], None] | None,
) -> CallOutcome:
    try:
        argv = spec.build_argv(prompt)
    except ValueError as exc:
        raise LLMError(str(exc), ErrorCategory.PERMANENT, cli=spec.name) from exc
    payload = spec.stdin_payload(prompt)
    timeouts = ProgressiveTimeoutManager(config)
    timeouts.start()
    # Whatever spawn_cli starts is owned by the try/finally below before the next checkpoint.
    proc = await spawn_cli(spec, argv, stdin_pipe=payload is not None)
    record = DeferredRecord(proc.pid)
    try:
        if on_spawn is not None:
            on_spawn(proc.pid)
        return await _supervise(spec, proc, payload, outbox, timeouts, record)
    finally:
        if proc.returncode is not None and not live_members(proc.pid):
            close_pipes(proc)  # the usual end: nothing left to stop, nothing to await
        else:
            with trio.CancelScope(shield=True):
                await stop_process_tree(proc, config.graceful_shutdown, spec.name)
        record.forget()


async def _supervise(
    spec: CliSpec,
    proc: trio.Process,
    payload: bytes | None,
    outbox: trio.MemorySendChannel[ActorMessage],
    timeouts: ProgressiveTimeoutManager,
    record: DeferredRecord,
) -> CallOutcome:
    run = _Run(spec=spec, outbox=outbox, timeouts=timeouts)
    stderr = TailBuffer(spec.stderr_tail_bytes)
    exit_code: int | None = None
    # One scope for the readers and the total deadline (a scope per call is measurable).
    async with trio.open_nursery() as nursery:
        nursery.cancel_scope.deadline = timeouts.total_deadline
        run.scope = nursery.cancel_scope
        assert proc.stdout is not None and proc.stderr is not None
        nursery.start_soon(_pump_stderr, run, proc.stderr, stderr, record)
        nursery.start_soon(_pump_stdout, run, proc.stdout, nursery.cancel_scope)
        if payload is not None:
            assert proc.stdin is not None
            nursery.start_soon(_write_stdin, proc.stdin, payload)
        exit_code = await proc.wait()
        run.reads.process_exited()
    out_of_time = trio.current_time() >= timeouts.total_deadline
    timed_out = nursery.cancel_scope.cancelled_caught and out_of_time and not run.stopped_early
    if timed_out and run.failure is None:
        run.failure = LLMError(
            f"{spec.name} did not finish within total_execution="
            f"{timeouts.config.total_execution:g}s",
            ErrorCategory.TIMEOUT,
            stderr=stderr.text(),
            cli=spec.name,
            secrets=spec.secrets(),
        )
    if run.failure is not None:
        run.failure.stderr = run.failure.stderr or stderr.text()
        raise run.failure

    events = tuple(run.events)
    error = spec.classifier.classify(
        ProcessExit(
            cli=spec.name,
            exit_code=exit_code,
            stderr_tail=stderr.text(),
            events=events,
            secrets=spec.secrets(),
            stdin_bytes=None if payload is None else len(payload),
        )
    )
    if error is not None:
        raise error
    assert exit_code is not None
    return outcome_from_events(events, exit_code, proc.pid)


def outcome_from_events(events: tuple[Event, ...], exit_code: int, pid: int) -> CallOutcome:
    final = next((e for e in reversed(events) if isinstance(e, FinalResult)), None)
    if final is not None:
        text = final.text
    else:
        deltas = [e.text for e in events if isinstance(e, TextDelta)]
        text = "".join(deltas) or "\n".join(
            e.text for e in events if isinstance(e, AssistantMessage)
        )
    session_id = final.session_id if final is not None else None
    if session_id is None:
        session_id = next((e.session_id for e in events if isinstance(e, SessionStarted)), None)
    usage = final.usage if final is not None else None
    if usage is None:
        usage = next((e.usage for e in reversed(events) if isinstance(e, UsageReport)), None)
    return CallOutcome(
        text=text,
        session_id=session_id,
        usage=usage,
        cost_usd=final.cost_usd if final is not None else None,
        events=events,
        exit_code=exit_code,
        pid=pid,
    )


async def _write_stdin(stdin: trio.abc.SendStream, payload: bytes) -> None:
    try:
        await stdin.send_all(payload)
    except (trio.BrokenResourceError, trio.ClosedResourceError):
        pass  # The CLI exited without reading; its exit status tells the story.
    finally:
        with trio.CancelScope(shield=True):
            await stdin.aclose()


async def _pump_stderr(
    run: _Run, stream: trio.abc.ReceiveStream, tail: TailBuffer, record: DeferredRecord
) -> None:
    watch = run.spec.stderr_watch
    partial = bytearray()
    # The first read doubles as the registry timer: no task of its own per call.
    record_at = trio.current_time() + RECORD_AFTER_S
    while True:
        chunk = await run.reads.receive(stream, record_at)
        if chunk is None and not run.reads.exited and record_at < math.inf:
            record.write_now()  # the group lived RECORD_AFTER_S: worth recording
            record_at = math.inf
            continue
        if not chunk:
            return
        tail.write(chunk)
        if watch is None:
            continue
        partial += chunk
        *lines, rest = partial.split(b"\n")
        # Bounded like the tail: a newline-less flood is not worth watching.
        partial = bytearray(rest[-run.spec.stderr_tail_bytes :])
        for line in lines:
            report = watch(line.decode("utf-8", errors="replace"))
            if report is not None:
                await _deliver(run, [report])


async def _pump_stdout(run: _Run, stream: trio.abc.ReceiveStream, scope: trio.CancelScope) -> None:
    spec = run.spec
    framer = LineFramer(spec.max_line_bytes)
    adapter = spec.adapter_factory()
    try:
        while True:
            chunk = await run.reads.receive(stream, run.timeouts.chunk_deadline)
            if chunk is None:
                if run.reads.exited:
                    break  # A grandchild holds the pipe: the CLI's exit ends the call.
                run.fail(
                    LLMError(
                        run.timeouts.silence_message(spec.name),
                        ErrorCategory.TIMEOUT,
                        cli=spec.name,
                    ),
                    scope,
                )
                return
            if not chunk:
                break
            run.timeouts.activity()
            for line in framer.feed(chunk):
                await _deliver(run, adapter.parse_line(line))
        for line in framer.finish():
            await _deliver(run, adapter.parse_line(line))
        await _deliver(run, adapter.finish())
    except LineTooLong as exc:
        run.fail(
            LLMError(
                f"{spec.name} printed a line longer than max_line_bytes={spec.max_line_bytes}",
                ErrorCategory.MALFORMED_OUTPUT,
                original_error=exc,
                cli=spec.name,
            ),
            scope,
        )
    except (trio.BrokenResourceError, trio.ClosedResourceError) as exc:
        run.fail(
            LLMError(
                "the owner stopped listening",
                ErrorCategory.PERMANENT,
                original_error=exc,
                cli=spec.name,
            ),
            scope,
        )


async def _deliver(run: _Run, events: Sequence[Event]) -> None:
    for event in events:
        run.events.append(event)
        await send_soon(run.outbox, event)
        if isinstance(event, ErrorReport) and event.terminal and not run.stopped_early:
            # Waiting is pointless (or the CLI would retry on its own): stop it now; the
            # classifier judges the evidence gathered so far.
            run.stopped_early = True
            assert run.scope is not None
            run.scope.cancel()


async def stop_process_tree(
    proc: trio.Process, grace: float, name: str = "cli", *, close_stdin_first: bool = False
) -> None:
    """The stop sequence. Call shielded; returns within ``grace`` plus a few seconds.

    ``close_stdin_first`` is for CLIs that read requests from stdin (warm actors): closing
    it is their polite "please exit", so they get half the grace period to do so.
    """
    pgid = proc.pid
    deadline = trio.current_time() + grace
    if proc.returncode is None:
        if close_stdin_first and proc.stdin is not None:
            await proc.stdin.aclose()
            with trio.move_on_at(trio.current_time() + grace / 2):
                await proc.wait()
        if proc.returncode is None:
            signal_group(pgid, signal.SIGTERM)
            with trio.move_on_at(deadline):
                await proc.wait()
        if proc.returncode is None:
            signal_group(pgid, signal.SIGKILL)
            with trio.move_on_after(KILL_REAP_S):
                await proc.wait()
            if proc.returncode is None:
                logger.error("%s (pid %d) survived SIGKILL; not reaped", name, pgid)
        leftover_grace = max(0.0, deadline - trio.current_time())
    else:
        leftover_grace = min(grace, LEFTOVER_GRACE_S)
    survivors = await sweep_group(pgid, leftover_grace)
    if survivors:
        logger.error("%s: processes %s of group %d survived SIGKILL", name, survivors, pgid)
    close_pipes(proc)


def close_pipes(proc: trio.Process) -> None:
    """Close our ends of the CLI's pipes at once (``aclose`` would add a yield per pipe)."""
    for stream in (proc.stdin, proc.stdout, proc.stderr):
        if stream is not None:
            assert isinstance(stream, trio.lowlevel.FdStream)  # always, on POSIX
            stream.close()


__all__ = [
    "ActorDone",
    "ActorMessage",
    "CallOutcome",
    "live_members",
    "run_process_actor",
    "stop_process_tree",
]
