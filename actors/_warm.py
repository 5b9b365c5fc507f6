"""Session support: continuing a CLI's session, and warm CLI processes fed turn by turn.

A CLI that can continue a session says how through `SessionSupport` on its spec:

- ``resume(session_id)`` gives a spec whose next call continues that session in a new
  process (claude ``--resume``, codex ``exec resume``, gemini ``--resume``);
- ``warm(session_id | None)`` gives a `WarmLaunch`: argv for a long-lived process that
  reads one turn per stdin line (claude ``--input-format stream-json``), so turn 2 onward
  costs no process start.

`run_warm_process` is the warm actor: it owns one such process and serves turns from an
inbox channel that its *supervisor* owns, so the inbox (and every queued turn) survives a
crash and restart of the process.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Sequence

import attrs
import trio

from ._backend import SpawnedCli
from ._errors import ErrorCategory, LLMError, WarmProcessDied
from ._events import ErrorReport, Event, FinalResult
from ._messages import ActorDone, ActorMessage
from ._spawn import (
    ByteCount,
    PipeReads,
    TailBuffer,
    end_process,
    output_too_large,
    pump_stderr,
    read_events,
    spawner_of,
)
from ._spec import CliSpec, WarmLaunch
from ._timeouts import ProgressiveTimeoutManager, TimeoutConfig
from ._verdict import ReaderFailure, TurnEvidence, TurnStop, forbidden_tool, turn_verdict

logger = logging.getLogger("llmsup.warm")

# What the stdout reader hands the turns: events, then None at EOF or why reading stopped.
StdoutItem = Event | ReaderFailure | None


@attrs.frozen
class Turn:
    """One request to a warm actor: the prompt, and where its events and result go."""

    prompt: str
    reply: trio.MemorySendChannel[ActorMessage]


async def run_warm_process(
    spec: CliSpec,
    launch: WarmLaunch,
    inbox: trio.MemoryReceiveChannel[Turn],
    timeouts: TimeoutConfig,
    *,
    on_spawn: Callable[[int], None] | None = None,
    on_session: Callable[[str], None] | None = None,
) -> None:
    """Serve turns from ``inbox`` with one long-lived process, until the inbox closes.

    Each turn gets its events and then exactly one `ActorDone` on its ``reply`` channel.
    A turn ends at the CLI's `FinalResult`. ``total_execution`` and ``chunk_receive``
    apply per turn; on expiry the turn fails with TIMEOUT and the process is replaced.
    If the process dies, the turn in progress fails with RETRYABLE (the caller may send
    it again) and this raises `WarmProcessDied`, so the supervisor restarts the actor
    (with backoff, under its restart intensity). Returns normally when the inbox closes.
    """
    # Owned by the try/finally below before the next checkpoint (the real backend records
    # its group in the registry before returning).
    proc = await spawner_of(spec).spawn(spec, launch.argv, stdin_pipe=True)
    try:
        if on_spawn is not None:
            on_spawn(proc.pid)
        await _serve(spec, launch, proc, inbox, timeouts, on_session)
    finally:
        await end_process(proc, timeouts.graceful_shutdown, spec.name, close_stdin_first=True)
        proc.release()


async def _serve(
    spec: CliSpec,
    launch: WarmLaunch,
    proc: SpawnedCli,
    inbox: trio.MemoryReceiveChannel[Turn],
    config: TimeoutConfig,
    on_session: Callable[[str], None] | None,
) -> None:
    assert proc.stdin is not None
    stderr = TailBuffer(spec.stderr_tail_bytes)
    reads = PipeReads()
    count = ByteCount()
    # stdout is parsed continuously; each turn consumes events up to its FinalResult.
    send_events, receive_events = trio.open_memory_channel[StdoutItem](64)
    died: WarmProcessDied | None = None
    async with trio.open_nursery() as nursery:
        nursery.start_soon(pump_stderr, proc.stderr, stderr, reads)
        nursery.start_soon(_pump_events, spec, proc.stdout, reads, send_events, count)
        while died is None:
            try:
                turn = await inbox.receive()
            except (trio.EndOfChannel, trio.ClosedResourceError):
                break
            died = await _one_turn(
                spec, launch, proc, turn, receive_events, stderr, config, on_session, count
            )
        nursery.cancel_scope.cancel()
    if died is not None:
        raise died  # outside the nursery, so it is not wrapped in an exception group


async def _one_turn(
    spec: CliSpec,
    launch: WarmLaunch,
    proc: SpawnedCli,
    turn: Turn,
    events: trio.MemoryReceiveChannel[StdoutItem],
    stderr: TailBuffer,
    config: TimeoutConfig,
    on_session: Callable[[str], None] | None,
    count: ByteCount,
) -> WarmProcessDied | None:
    """Serve one turn; returns why the process must be replaced, if it must."""
    timeouts = ProgressiveTimeoutManager(config)
    timeouts.start()
    seen: list[Event] = []
    # What stands if the turn's deadline cuts it short.
    stop: TurnStop = TurnStop.TIMED_OUT
    failure: ReaderFailure | None = None
    with trio.CancelScope(deadline=timeouts.total_deadline):
        stop, failure = await _follow_turn(spec, launch, proc, turn, events, timeouts, seen, count)
    evidence = TurnEvidence(
        stop=stop,
        events=tuple(seen),
        stderr_tail=stderr.text(),
        pid=proc.pid,
        exit_code=proc.poll(),
        failure=failure,
        total_execution=config.total_execution,
    )
    verdict = turn_verdict(spec, evidence)
    if isinstance(verdict, LLMError):
        await _finish(turn, ActorDone(error=verdict))
        # After a timeout, a crash or a refused request the process state is unknown.
        return WarmProcessDied(
            f"warm {spec.name} process replaced: {verdict.message}",
            ErrorCategory.RETRYABLE,
            cli=spec.name,
        )
    if verdict.session_id and on_session is not None:
        on_session(verdict.session_id)
    await _finish(turn, ActorDone(outcome=verdict))
    return None


async def _follow_turn(
    spec: CliSpec,
    launch: WarmLaunch,
    proc: SpawnedCli,
    turn: Turn,
    events: trio.MemoryReceiveChannel[StdoutItem],
    timeouts: ProgressiveTimeoutManager,
    seen: list[Event],
    count: ByteCount,
) -> tuple[TurnStop, ReaderFailure | None]:
    """Send the turn, then forward its events into ``seen`` and the reply until it stops.

    The turn keeps every event in ``seen``, so it is capped at ``max_output_bytes`` of
    stdout read since it began (see `read_events`): past that it fails.
    """
    assert proc.stdin is not None
    started_at = count.total
    try:
        await proc.stdin.send_all(launch.encode_turn(turn.prompt))
    except _GONE:
        return TurnStop.NOT_SENT, None
    while True:
        with trio.move_on_at(timeouts.chunk_deadline) as silence:
            item = await events.receive()
        if silence.cancelled_caught:
            return TurnStop.FAILED, ReaderFailure(
                timeouts.silence_message(spec.name), ErrorCategory.TIMEOUT
            )
        if isinstance(item, ReaderFailure):
            return TurnStop.FAILED, item
        if item is None:
            return TurnStop.DIED, None
        timeouts.activity()
        kept = count.total - started_at
        if kept > spec.max_output_bytes:
            return TurnStop.FAILED, output_too_large(spec, kept)
        seen.append(item)
        await _forward(turn, item)
        forbidden = forbidden_tool(spec, item)
        if forbidden is not None:
            return TurnStop.FAILED, forbidden  # the process is replaced before it runs it
        if isinstance(item, ErrorReport) and item.terminal:
            return TurnStop.TERMINAL_REPORT, None
        if isinstance(item, FinalResult):
            return TurnStop.RESULT, None


_GONE = (trio.BrokenResourceError, trio.ClosedResourceError)


async def _forward(turn: Turn, event: Event) -> None:
    # The caller may have given up on this turn; keep consuming so the next one is clean.
    with contextlib.suppress(*_GONE):
        await turn.reply.send(event)


async def _finish(turn: Turn, done: ActorDone) -> None:
    with contextlib.suppress(*_GONE):
        await turn.reply.send(done)
    turn.reply.close()


async def _pump_events(
    spec: CliSpec,
    stream: trio.abc.ReceiveStream,
    reads: PipeReads,
    send: trio.MemorySendChannel[StdoutItem],
    count: ByteCount,
) -> None:
    async def deliver(events: Sequence[Event]) -> None:
        for event in events:
            await send.send(event)

    async with send:
        # The adapter's ``finish`` is not called: a warm process's output ends only when
        # the process dies, and the turn in progress fails then whatever was buffered.
        adapter = spec.adapter_factory()
        await send.send(await read_events(spec, stream, reads, adapter, deliver, count=count))


__all__ = ["Turn", "WarmProcessDied", "run_warm_process"]
