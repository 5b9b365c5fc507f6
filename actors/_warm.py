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
from collections.abc import Callable

import attrs
import trio

from ._errors import ErrorCategory, LLMError
from ._events import ErrorReport, Event, FinalResult
from ._framing import LineFramer, LineTooLong
from ._messages import ActorDone, ActorMessage, CallOutcome
from ._process import (
    TailBuffer,
    outcome_from_events,
    spawn_cli,
    stop_process_tree,
)
from ._registry import forget_group, record_group
from ._spec import CliSpec, ProcessExit, WarmLaunch
from ._timeouts import ProgressiveTimeoutManager, TimeoutConfig

logger = logging.getLogger("llmsup.session")


@attrs.frozen
class Turn:
    """One request to a warm actor: the prompt, and where its events and result go."""

    prompt: str
    reply: trio.MemorySendChannel[ActorMessage]


class WarmProcessDied(LLMError):
    """The warm process ended while it should have been serving (restart it)."""


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
    proc = await spawn_cli(spec, launch.argv, stdin_pipe=True)
    record = record_group(proc.pid)
    try:
        if on_spawn is not None:
            on_spawn(proc.pid)
        await _serve(spec, launch, proc, inbox, timeouts, on_session)
    finally:
        with trio.CancelScope(shield=True):
            await stop_process_tree(
                proc, timeouts.graceful_shutdown, spec.name, close_stdin_first=True
            )
        forget_group(record)


async def _serve(
    spec: CliSpec,
    launch: WarmLaunch,
    proc: trio.Process,
    inbox: trio.MemoryReceiveChannel[Turn],
    config: TimeoutConfig,
    on_session: Callable[[str], None] | None,
) -> None:
    assert proc.stdin is not None and proc.stdout is not None and proc.stderr is not None
    stderr = TailBuffer(spec.stderr_tail_bytes)
    # stdout is parsed continuously; each turn consumes events up to its FinalResult.
    send_events, receive_events = trio.open_memory_channel[Event | None | LLMError](64)
    died: WarmProcessDied | None = None
    async with trio.open_nursery() as nursery:
        nursery.start_soon(_pump_stderr, proc.stderr, stderr)
        nursery.start_soon(_pump_events, spec, proc.stdout, send_events)
        while died is None:
            try:
                turn = await inbox.receive()
            except (trio.EndOfChannel, trio.ClosedResourceError):
                break
            died = await _one_turn(
                spec, launch, proc, turn, receive_events, stderr, config, on_session
            )
        nursery.cancel_scope.cancel()
    if died is not None:
        raise died  # outside the nursery, so it is not wrapped in an exception group


async def _one_turn(
    spec: CliSpec,
    launch: WarmLaunch,
    proc: trio.Process,
    turn: Turn,
    events: trio.MemoryReceiveChannel[Event | LLMError | None],
    stderr: TailBuffer,
    config: TimeoutConfig,
    on_session: Callable[[str], None] | None,
) -> WarmProcessDied | None:
    """Serve one turn; returns why the process must be replaced, if it must."""
    assert proc.stdin is not None
    timeouts = ProgressiveTimeoutManager(config)
    timeouts.start()
    seen: list[Event] = []
    failure: LLMError | None = None
    with trio.CancelScope(deadline=timeouts.total_deadline) as turn_scope:
        try:
            await proc.stdin.send_all(launch.encode_turn(turn.prompt))
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            failure = _died(spec, proc, stderr, "before the turn could be sent")
        while failure is None:
            with trio.move_on_at(timeouts.chunk_deadline) as silence:
                item = await events.receive()
            if silence.cancelled_caught:
                failure = LLMError(
                    timeouts.silence_message(spec.name),
                    ErrorCategory.TIMEOUT,
                    stderr=stderr.text(),
                    cli=spec.name,
                )
                break
            if isinstance(item, LLMError):
                failure = item
                break
            if item is None:
                failure = _died(spec, proc, stderr, "mid-turn")
                break
            timeouts.activity()
            seen.append(item)
            await _forward(turn, item)
            if isinstance(item, ErrorReport) and item.terminal:
                failure = _classified(spec, seen, stderr) or _died(spec, proc, stderr, "")
                break
            if isinstance(item, FinalResult):
                break
    if turn_scope.cancelled_caught:
        failure = LLMError(
            f"{spec.name} did not finish the turn within total_execution="
            f"{config.total_execution:g}s",
            ErrorCategory.TIMEOUT,
            stderr=stderr.text(),
            cli=spec.name,
        )
    if failure is None:
        failure = _classified(spec, seen, stderr)
    if failure is not None:
        await _finish(turn, ActorDone(error=failure))
        # After a timeout, a crash or a refused request the process state is unknown.
        return WarmProcessDied(
            f"warm {spec.name} process replaced: {failure.message}",
            ErrorCategory.RETRYABLE,
            cli=spec.name,
        )
    outcome: CallOutcome = outcome_from_events(tuple(seen), 0, proc.pid)
    if outcome.session_id and on_session is not None:
        on_session(outcome.session_id)
    await _finish(turn, ActorDone(outcome=outcome))
    return None


def _classified(spec: CliSpec, seen: list[Event], stderr: TailBuffer) -> LLMError | None:
    return spec.classifier.classify(
        ProcessExit(
            cli=spec.name,
            exit_code=0,
            stderr_tail=stderr.text(),
            events=tuple(seen),
            secrets=spec.secrets(),
        )
    )


def _died(spec: CliSpec, proc: trio.Process, stderr: TailBuffer, when: str) -> LLMError:
    code = proc.poll()
    status = f" (exit code {code})" if code is not None else ""
    return LLMError(
        f"warm {spec.name} process ended {when}{status}".replace("  ", " "),
        ErrorCategory.RETRYABLE,
        exit_code=code,
        stderr=stderr.text(),
        cli=spec.name,
        secrets=spec.secrets(),
    )


_GONE = (trio.BrokenResourceError, trio.ClosedResourceError)


async def _forward(turn: Turn, event: Event) -> None:
    # The caller may have given up on this turn; keep consuming so the next one is clean.
    with contextlib.suppress(*_GONE):
        await turn.reply.send(event)


async def _finish(turn: Turn, done: ActorDone) -> None:
    with contextlib.suppress(*_GONE):
        await turn.reply.send(done)
    turn.reply.close()


async def _pump_stderr(stream: trio.abc.ReceiveStream, tail: TailBuffer) -> None:
    while chunk := await stream.receive_some(65536):
        tail.write(bytes(chunk))


async def _pump_events(
    spec: CliSpec,
    stream: trio.abc.ReceiveStream,
    send: trio.MemorySendChannel[Event | LLMError | None],
) -> None:
    framer = LineFramer(spec.max_line_bytes)
    adapter = spec.adapter_factory()
    async with send:
        try:
            while chunk := await stream.receive_some(65536):
                for line in framer.feed(bytes(chunk)):
                    for event in adapter.parse_line(line):
                        await send.send(event)
            for line in framer.finish():
                for event in adapter.parse_line(line):
                    await send.send(event)
        except LineTooLong as exc:
            await send.send(
                LLMError(
                    f"{spec.name} printed a line longer than max_line_bytes={spec.max_line_bytes}",
                    ErrorCategory.MALFORMED_OUTPUT,
                    original_error=exc,
                    cli=spec.name,
                )
            )
            return
        await send.send(None)
