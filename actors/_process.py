"""The process actor: one CLI process, from spawn to the last reaped grandchild.

`run_process_actor` spawns the CLI in its own session, drains stdout and stderr
concurrently, frames stdout into lines, parses them with the spec's adapter and sends each
event to its owner over a bounded memory channel (so a slow owner slows the CLI down instead
of growing a buffer). It ends with exactly one `ActorDone` message, or, if cancelled, with
`trio.Cancelled` after the whole process tree is gone.

The plumbing (spawn, pipe reads, stop sequence) is `actors._spawn`'s, shared with the warm
actor; what the run's evidence means is `actors._verdict.run_verdict`'s.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Sequence

import attrs
import trio

from ._backend import SpawnedCli
from ._channels import send_soon
from ._errors import ErrorCategory, LLMError
from ._events import ErrorReport, Event
from ._messages import ActorDone, ActorMessage, CallOutcome
from ._spawn import PipeReads, TailBuffer, end_process, pump_stderr, read_events, spawner_of
from ._spec import CliSpec
from ._timeouts import ProgressiveTimeoutManager, TimeoutConfig
from ._verdict import ReaderFailure, RunEvidence, forbidden_tool, run_verdict

logger = logging.getLogger("llmsup.actor")


@attrs.define
class ProcessRun:
    """Mutable state of one one-shot run, shared by the actor's reader tasks."""

    spec: CliSpec
    outbox: trio.MemorySendChannel[ActorMessage]
    timeouts: ProgressiveTimeoutManager
    # The readers' scope (and the total deadline): cancelling it stops reading, after
    # which the process is stopped. One scope for all of them: a scope per call is measurable.
    scope: trio.CancelScope
    events: list[Event] = attrs.Factory(list)
    failure: ReaderFailure | None = None
    reads: PipeReads = attrs.Factory(PipeReads)
    stopped_early: bool = False

    def fail(self, failure: ReaderFailure) -> None:
        if self.failure is None:
            self.failure = failure
        self.scope.cancel()

    async def deliver(self, events: Sequence[Event]) -> None:
        for event in events:
            self.events.append(event)
            await send_soon(self.outbox, event)
            forbidden = forbidden_tool(self.spec, event)
            if forbidden is not None:
                self.fail(forbidden)  # stop it before the tool can run
                return
            if isinstance(event, ErrorReport) and event.terminal and not self.stopped_early:
                # Waiting is pointless (or the CLI would retry on its own): stop it now; the
                # classifier judges the evidence gathered so far.
                self.stopped_early = True
                self.scope.cancel()


async def run_process_actor(
    spec: CliSpec,
    prompt: str,
    outbox: trio.MemorySendChannel[ActorMessage],
    timeouts: TimeoutConfig,
    *,
    on_spawn: Callable[[int], None] | None = None,
    standby: SpawnedCli | None = None,
) -> None:
    """Run ``spec`` once for ``prompt``; send its events, then one `ActorDone`.

    ``standby``: a process of ``spec`` already started by `start_standby` (stdin open,
    nothing written), which this call now owns: the prompt goes to it instead of a new
    process. Never raises except `trio.Cancelled` (and only after the tree is gone).
    Closing the outbox is the caller's job.
    """
    try:
        outcome = await _run_once(spec, prompt, outbox, timeouts, on_spawn, standby)
    except LLMError as error:
        done = ActorDone(error=error)
    else:
        done = ActorDone(outcome=outcome)
    try:
        await send_soon(outbox, done)
    except (trio.BrokenResourceError, trio.ClosedResourceError):
        logger.debug("owner of %s went away before the result", spec.name)


async def _run_once(
    spec: CliSpec,
    prompt: str,
    outbox: trio.MemorySendChannel[ActorMessage],
    config: TimeoutConfig,
    on_spawn: Callable[[int], None] | None,
    standby: SpawnedCli | None = None,
) -> CallOutcome:
    try:
        argv = spec.build_argv(prompt)
    except ValueError as exc:
        if standby is not None:
            await _end(standby, config.graceful_shutdown, spec.name)
        raise LLMError(str(exc), ErrorCategory.PERMANENT, cli=spec.name) from exc
    payload = spec.stdin_payload(prompt)
    timeouts = ProgressiveTimeoutManager(config)
    timeouts.start()
    if standby is not None:
        proc = standby
    else:
        # Whatever the spawn starts is owned by the try/finally below before the next
        # checkpoint (the real backend records its group in the registry before returning).
        proc = await spawner_of(spec).spawn(spec, argv, stdin_pipe=payload is not None)
    try:
        if on_spawn is not None and standby is None:
            on_spawn(proc.pid)
        verdict = await _supervise(spec, proc, payload, outbox, timeouts)
    finally:
        await _end(proc, config.graceful_shutdown, spec.name)
    if isinstance(verdict, LLMError):
        raise verdict
    return verdict


async def _end(proc: SpawnedCli, grace: float, name: str) -> None:
    """The full stop sequence (shielded), then the process's resources released."""
    await end_process(proc, grace, name)
    proc.release()


async def start_standby(
    spec: CliSpec, *, on_spawn: Callable[[int], None] | None = None
) -> SpawnedCli:
    """Start a process of ``spec`` before its prompt is known: a standby process.

    Its argv, environment and folder are the spec's; stdin is an open pipe with nothing
    written, so the CLI starts up and waits for its prompt. Hand it to a call with
    `run_process_actor` (``standby=``), watch it meanwhile with `watch_standby`, and end
    it with `end_standby` if no call takes it. Raises ValueError for a spec that cannot
    (`CliSpec.standby_refusal_reason`), a PERMANENT `LLMError` if it cannot start.
    Cancellation: as `Spawner.spawn`, the caller must own the result before awaiting.
    """
    refusal = spec.standby_refusal_reason()
    if refusal is not None:
        raise ValueError(f"standby is not possible for {spec.name}: {refusal}")
    proc = await spawner_of(spec).spawn(spec, list(spec.argv), stdin_pipe=True)
    if on_spawn is not None:
        on_spawn(proc.pid)
    return proc


async def watch_standby(proc: SpawnedCli, spec: CliSpec | None = None) -> str:
    """Wait until a standby process shows it cannot take its prompt; say what it did.

    It exited, or it wrote to stdout or stderr (a CLI waiting for its prompt prints
    nothing: output means an error, a prompt of its own, or a changed CLI). Cancel it to
    stop watching; what it read is lost, which is fine: such a process is discarded.
    With ``spec``: first sends it ``spec.standby_prelude``; with
    ``spec.standby_writes_stderr`` stderr is left unread, for the call that takes it.
    """
    if spec is not None and spec.standby_prelude and proc.stdin is not None:
        with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError):
            await proc.stdin.send_all(spec.standby_prelude)  # if it exited: seen below
    seen: list[str] = []
    async with trio.open_nursery() as nursery:

        async def pipe(stream: trio.abc.ReceiveStream, name: str) -> None:
            data = await stream.receive_some(4096)
            seen.append(f"it wrote {len(data)} bytes to {name}" if data else f"it closed {name}")
            nursery.cancel_scope.cancel()

        async def exit_status() -> None:
            await proc.wait()
            nursery.cancel_scope.cancel()

        nursery.start_soon(pipe, proc.stdout, "stdout")
        if spec is None or not spec.standby_writes_stderr:
            nursery.start_soon(pipe, proc.stderr, "stderr")
        nursery.start_soon(exit_status)
    if proc.returncode is None:
        with trio.move_on_after(0.2):  # it closed or wrote because it is exiting
            await proc.wait()
    status = proc.returncode
    what = " and ".join(seen)
    if status is not None:
        exited = f"it exited with status {status}"
        what = f"{exited} ({what})" if what else exited
    return f"{what} before its prompt"


async def end_standby(proc: SpawnedCli, grace: float, name: str) -> None:
    """Stop a standby process no call took, with the full stop sequence (shielded)."""
    await _end(proc, grace, name)


async def _supervise(
    spec: CliSpec,
    proc: SpawnedCli,
    payload: bytes | None,
    outbox: trio.MemorySendChannel[ActorMessage],
    timeouts: ProgressiveTimeoutManager,
) -> CallOutcome | LLMError:
    stderr = TailBuffer(spec.stderr_tail_bytes)
    exit_code: int | None = None
    async with trio.open_nursery() as nursery:
        nursery.cancel_scope.deadline = timeouts.total_deadline
        run = ProcessRun(spec=spec, outbox=outbox, timeouts=timeouts, scope=nursery.cancel_scope)
        nursery.start_soon(_pump_stderr, run, proc.stderr, stderr)
        nursery.start_soon(_pump_stdout, run, proc.stdout)
        if payload is not None:
            assert proc.stdin is not None
            nursery.start_soon(_write_stdin, proc.stdin, payload)
        exit_code = await proc.wait()
        run.reads.process_exited()
    evidence = RunEvidence(
        exit_code=exit_code,
        pid=proc.pid,
        events=tuple(run.events),
        stderr_tail=stderr.text(),
        stdin_bytes=None if payload is None else len(payload),
        failure=run.failure,
        cancelled=nursery.cancel_scope.cancelled_caught,
        stopped_early=run.stopped_early,
        ended_at=trio.current_time(),
        total_deadline=timeouts.total_deadline,
        total_execution=timeouts.config.total_execution,
    )
    return run_verdict(spec, evidence)


async def _write_stdin(stdin: trio.abc.SendStream, payload: bytes) -> None:
    try:
        await stdin.send_all(payload)
    except (trio.BrokenResourceError, trio.ClosedResourceError):
        pass  # The CLI exited without reading; its exit status tells the story.
    finally:
        with trio.CancelScope(shield=True):
            await stdin.aclose()


async def _pump_stderr(run: ProcessRun, stream: trio.abc.ReceiveStream, tail: TailBuffer) -> None:
    watch = run.spec.stderr_watch
    await pump_stderr(stream, tail, run.reads, watch=watch, deliver=run.deliver)


async def _pump_stdout(run: ProcessRun, stream: trio.abc.ReceiveStream) -> None:
    adapter = run.spec.adapter_factory()
    try:
        failure = await read_events(
            run.spec,
            stream,
            run.reads,
            adapter,
            run.deliver,
            run.timeouts,
            max_output_bytes=run.spec.max_output_bytes,
        )
        if failure is None:
            await run.deliver(adapter.finish())
    except (trio.BrokenResourceError, trio.ClosedResourceError) as exc:
        failure = ReaderFailure("the owner stopped listening", ErrorCategory.PERMANENT, exc)
    if failure is not None:
        run.fail(failure)


__all__ = [
    "ActorDone",
    "ActorMessage",
    "CallOutcome",
    "ProcessRun",
    "end_standby",
    "run_process_actor",
    "start_standby",
    "watch_standby",
]
