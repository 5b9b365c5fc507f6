"""The supervisor: one nursery, one actor per CLI process, policies around every call.

`open_supervisor` owns a trio nursery. Each attempt of each call is a process actor started
in that nursery; the caller talks to it over a bounded memory channel and, whatever happens
to the caller (success, error, cancel, Ctrl+C), waits for the actor's shielded stop sequence
before returning, so no call ever leaves a process behind. Long-lived children
(`start_child`) are restarted per their `RestartType`, with backoff, under a restart
intensity that is counted per supervisor, OTP style.
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import logging
import os
import random
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any, Literal

import attrs
import trio
from pydantic import BaseModel

from actors import (
    CliSpec,
    ErrorCategory,
    Event,
    LLMError,
    RestartIntensityExceeded,
    TextDelta,
    TimeoutConfig,
)
from actors.lowlevel import (
    ActorDone,
    ActorMessage,
    CallOutcome,
    receive_soon,
    run_process_actor,
    sweep_orphaned_groups,
    unwrap_group,
)

from ._children import ChildSpec, RestartHooks, supervise_child
from ._fanout import MapStream, Prompts, map_in_order, map_stream
from ._history import ConversationManager
from ._policy._backoff import RetryConfig
from ._policy._breaker import CircuitBreaker, Permit
from ._policy._budget import RetryBudgetTracker
from ._policy._intensity import RestartBackoff, RestartIntensity, RestartTracker, RestartType
from ._result import Result
from ._retry import RetryHandler
from ._stats import Counters, SupervisorStatistics
from ._stream import ResponseStream, StreamEnd
from ._structured import DEFAULT_MAX_REASKS, ask_structured

if TYPE_CHECKING:
    from ._conversation import Conversation

logger = logging.getLogger("llmsup")
logger.addHandler(logging.NullHandler())

# Events buffered between an actor and its caller before the actor (and so the CLI, via
# its pipe) is made to wait: backpressure instead of unbounded memory.
EVENT_BUFFER = 64

_request_ids = itertools.count(1)

OnEvent = Callable[[Event], Awaitable[None]]
# One attempt: run something that reports events and ends with a CallOutcome.
Runner = Callable[[OnEvent], Awaitable[CallOutcome]]


@attrs.define
class TaskHandle:
    """A task hosted in the supervisor's nursery that its starter can stop and await."""

    scope: trio.CancelScope
    finished: trio.Event

    async def cancel_and_wait(self) -> None:
        """Cancel the task and wait until its (shielded, bounded) cleanup is done."""
        if self.finished.is_set():
            return  # the common case: the task ended before its owner came back
        with trio.CancelScope(shield=True):
            self.scope.cancel()
            await self.finished.wait()


class Supervisor:
    """Runs calls to one CLI under retry, breaker, timeout and concurrency policies.

    Create it with `open_supervisor`. All methods are safe to call concurrently.
    """

    def __init__(
        self,
        nursery: trio.Nursery,
        cli: CliSpec,
        *,
        retry: RetryConfig,
        timeouts: TimeoutConfig,
        breaker: CircuitBreaker | None,
        concurrency: int,
        restart_intensity: RestartIntensity,
        breaker_wait: float = 0.0,
        rng: random.Random | None = None,
    ) -> None:
        self._nursery = nursery
        self.breaker_wait = breaker_wait
        self._breaker_changed = trio.Event()
        self.cli = cli
        self.retry_config = retry
        self.timeouts = timeouts
        self.breaker = breaker
        if breaker is not None and breaker.name == "breaker":
            breaker.name = cli.name  # errors and logs then say whose breaker it is
        self.concurrency = concurrency
        self._limiter = trio.CapacityLimiter(concurrency)
        self.counters = Counters()
        self._spawn_listeners: list[Callable[[int], None]] = []
        self._rng = rng or random.Random()
        self._restarts = RestartTracker(restart_intensity, clock=trio.current_time)
        self.retry_budget = (
            RetryBudgetTracker(retry.budget, clock=trio.current_time) if retry.budget else None
        )
        self._closed = False

    # ----------------------------------------------------------------- public calls

    async def ask(
        self,
        prompt: str,
        output: type[BaseModel] | None = None,
        *,
        max_reasks: int = DEFAULT_MAX_REASKS,
    ) -> Result:
        """Run one call; return its `Result` or raise `LLMError`.

        With ``output`` (a pydantic model) the answer must be JSON of that shape:
        ``Result.data`` is the validated instance. The schema is put into the prompt (and
        into the CLI's own schema option where it has one); an answer that does not
        validate is re-asked with the errors, at most ``max_reasks`` times, then fails
        as MALFORMED_OUTPUT keeping the last answer in ``raw_text``.

        Cancellation: the current attempt's process tree is stopped (shielded, bounded
        by ``graceful_shutdown`` plus a few seconds) before `trio.Cancelled` propagates.
        """
        if output is not None:
            return await ask_structured(self, prompt, output, max_reasks=max_reasks)
        return await self.run_call(prompt, _ignore_event)

    @asynccontextmanager
    async def stream(self, prompt: str) -> AsyncIterator[ResponseStream]:
        """Stream one call's events: ``async with sup.stream(p) as events: async for ...``.

        A failed attempt is retried only while no text has reached the reader. Leaving
        the block early stops the call and its process.
        """
        send, receive = trio.open_memory_channel[Event | StreamEnd](EVENT_BUFFER)
        handle = await self.host(self._pump_stream, prompt, send)
        try:
            yield ResponseStream(receive)
        finally:
            await handle.cancel_and_wait()
            receive.close()

    async def map(
        self, prompts: Iterable[str], output: type[BaseModel] | None = None
    ) -> list[Result | LLMError]:
        """Run every prompt; return one `Result` or `LLMError` per prompt, in input order.

        Concurrency is bounded by the supervisor's limit. One failure never cancels the
        others. Cancelling the map stops every process it started. With ``output``, each
        answer is validated as in `ask`.
        """
        return await map_in_order(self, prompts, output)

    def map_stream(
        self, prompts: Prompts, output: type[BaseModel] | None = None
    ) -> contextlib.AbstractAsyncContextManager[MapStream]:
        """Stream outcomes in completion order: ``async with sup.map_stream(p) as results``.

        ``prompts`` may be any iterable or async iterable, of any length; it is read only
        as fast as work completes, so memory stays bounded. Each item is a `Completed`
        (``index``, ``prompt``, ``outcome``). Leaving the block early stops the rest.
        """
        return map_stream(self, prompts, output)

    def conversation(
        self,
        system_prompt: str | None = None,
        max_turns: int | None = None,
        max_history: int = 20,
        *,
        mode: Literal["auto", "warm", "resume", "replay"] = "auto",
        history: str | os.PathLike[str] | None = None,
    ) -> Conversation:
        """A multi-turn `Conversation` with this CLI (see `supervisor._conversation`).

        ``mode="auto"`` keeps a warm process where the CLI allows it, else resumes its
        session per turn, else replays the trimmed history. ``history`` continues a
        conversation saved with ``export_history`` (its session id included).
        """
        from ._conversation import Conversation  # the conversation layer builds on this module

        manager = ConversationManager.load_history(history) if history else None
        return Conversation(
            self,
            system_prompt=system_prompt,
            max_turns=max_turns,
            max_history=max_history,
            mode=mode,
            manager=manager,
        )

    def statistics(self) -> SupervisorStatistics:
        """A frozen snapshot of the counters and the breaker state."""
        c = self.counters
        return SupervisorStatistics(
            cli=self.cli.name,
            concurrency=self.concurrency,
            in_flight=c.in_flight,
            started=c.started,
            succeeded=c.succeeded,
            failed=c.failed,
            failures_by_category=dict(c.failures_by_category),
            retries=c.retries,
            restarts=c.restarts,
            processes_spawned=c.processes_spawned,
            breaker_rejections=c.breaker_rejections,
            breaker_waits=c.breaker_waits,
            trimmed_turns=c.trimmed_turns,
            reasks=c.reasks,
            session_restarts=c.session_restarts,
            breaker_state=self.breaker.state if self.breaker else None,
            breaker_opened=self.breaker.opened_count if self.breaker else 0,
            retries_refused=self.retry_budget.refused if self.retry_budget else 0,
        )

    # ------------------------------------------------------------ long-lived children

    async def start_child(
        self,
        fn: Callable[[], Awaitable[Any]],
        *,
        name: str,
        restart: RestartType = RestartType.PERMANENT,
        backoff: RestartBackoff | None = None,
    ) -> TaskHandle:
        """Run a long-lived child (for example a warm CLI actor) under OTP restart rules.

        ``fn`` is started again after it ends, per ``restart``: permanent children always,
        transient ones only after an exception, temporary ones never. Restarts wait for an
        Akka-style backoff and count against the supervisor's restart intensity; past it,
        the supervisor cancels everything and `open_supervisor` raises
        `RestartIntensityExceeded` saying why.
        """
        return await self.host(
            supervise_child,
            ChildSpec(fn, name, restart, backoff or RestartBackoff()),
            self._restart_hooks(),
        )

    def _restart_hooks(self) -> RestartHooks:
        def on_restart(name: str, reason: str) -> None:
            self._restarts.record_restart(reason=f"{name}: {reason}")
            self.counters.restarts += 1

        def on_give_up(error: RestartIntensityExceeded) -> None:
            logger.error("%s", error, extra={"cli": self.cli.name})
            self._nursery.cancel_scope.cancel()

        return RestartHooks(on_restart, on_give_up, self._rng, self.cli.name)

    # ------------------------------------------------------------------- the machinery
    # `host`, `run_call`, `note_spawn` and `counters` are the extension points that this
    # package's conversation, fan-out, structured-output and serve modules build on.

    async def host(self, fn: Callable[..., Awaitable[Any]], *args: Any) -> TaskHandle:
        """Run ``fn(*args)`` as a task in the supervisor's nursery; return its handle.

        The task outlives its starter's scope but not the supervisor; the handle cancels
        it and waits for its (shielded, bounded) cleanup.
        """
        if self._closed:
            raise LLMError("the supervisor is closed", ErrorCategory.PERMANENT, cli=self.cli.name)
        # The handle is made here and the task started with start_soon, not start(): one
        # task hand-off less per call. A handle cancelled before its task runs still works:
        # ``fn`` then starts inside a cancelled scope and its cleanup runs as usual.
        handle = TaskHandle(trio.CancelScope(), trio.Event())
        try:
            self._nursery.start_soon(self._hosted, handle, fn, *args)
        except RuntimeError as exc:  # the nursery no longer accepts tasks
            raise LLMError(
                "the supervisor is shutting down", ErrorCategory.PERMANENT, cli=self.cli.name
            ) from exc
        return handle

    async def _hosted(
        self, handle: TaskHandle, fn: Callable[..., Awaitable[Any]], *args: Any
    ) -> None:
        try:
            with handle.scope:
                await fn(*args)
        except RestartIntensityExceeded:
            raise
        except Exception:
            # A bug in a hosted task must not take every other call down with it; its
            # owner notices the closed channel and gets an LLMError.
            logger.exception("internal error in a supervised task", extra={"cli": self.cli.name})
        finally:
            handle.finished.set()

    async def run_call(
        self,
        prompt: str,
        on_event: OnEvent,
        *,
        may_retry: Callable[[LLMError], bool] | None = None,
        spec: CliSpec | None = None,
        runner: Runner | None = None,
    ) -> Result:
        """The policy around one call: retries, breaker, limits, statistics, logging.

        Each attempt runs ``runner(on_event)``; by default a one-shot process actor for
        ``spec`` (the supervisor's CLI unless given). Warm conversations pass a runner
        that hands the turn to their warm actor instead (and skip the process limit).
        """
        spec = spec or self.cli
        use_limiter = runner is None
        if runner is None:
            runner = functools.partial(self._run_actor, spec, prompt)
        request_id = f"req-{next(_request_ids)}"
        counters = self.counters
        counters.started += 1
        counters.in_flight += 1
        started = trio.current_time()
        log_extra = {"request_id": request_id, "cli": spec.name}

        def on_retry(error: LLMError, attempt: int, delay: float) -> None:
            counters.retries += 1
            logger.info(
                "attempt %d failed (%s), retrying in %.2fs",
                attempt,
                error.category.value,
                delay,
                extra={
                    **log_extra,
                    "attempt": attempt,
                    "category": error.category.value,
                    "duration_s": trio.current_time() - started,
                },
            )

        async def attempt(_number: int) -> CallOutcome:
            assert runner is not None
            return await self._attempt(runner, on_event, use_limiter)

        if self.retry_budget is not None:
            self.retry_budget.call_started()
        handler = RetryHandler(
            self.retry_config, rng=self._rng, on_retry=on_retry, budget=self.retry_budget
        )
        try:
            outcome, attempts = await _counting(handler, attempt, may_retry)
        except LLMError as error:
            counters.call_failed(error.category)
            # An open breaker failing calls fast is expected, not news for every call.
            level = (
                logging.INFO if error.category is ErrorCategory.CIRCUIT_OPEN else logging.WARNING
            )
            logger.log(
                level,
                "call failed: %s",
                error,
                extra={
                    **log_extra,
                    "attempt": error.attempts,
                    "category": error.category.value,
                    "duration_s": trio.current_time() - started,
                },
            )
            raise
        finally:
            counters.in_flight -= 1
        counters.succeeded += 1
        duration = trio.current_time() - started
        if logger.isEnabledFor(logging.INFO):  # skip building the record's fields
            logger.info(
                "call succeeded",
                extra={**log_extra, "attempt": attempts, "category": None, "duration_s": duration},
            )
        return Result(
            text=outcome.text,
            session_id=outcome.session_id,
            attempts=attempts,
            duration_s=duration,
            usage=outcome.usage,
            cost_usd=outcome.cost_usd,
            raw_events=list(outcome.events),
            cli=spec.name,
            request_id=request_id,
            exit_code=outcome.exit_code,
        )

    async def _attempt(self, runner: Runner, on_event: OnEvent, use_limiter: bool) -> CallOutcome:
        breaker = self.breaker
        wait_until = trio.current_time() + self.breaker_wait
        limiter: contextlib.AbstractAsyncContextManager[Any] = (
            self._limiter if use_limiter else contextlib.nullcontext()
        )
        while True:
            async with limiter:
                if breaker is None:
                    return await runner(on_event)
                try:
                    permit = breaker.acquire()  # raises CIRCUIT_OPEN, spawning nothing
                except LLMError as rejection:
                    if rejection.category is not ErrorCategory.CIRCUIT_OPEN:
                        raise
                    rejection.cli = self.cli.name
                    refused = rejection
                else:
                    return await self._run_admitted(breaker, permit, runner, on_event)
            # Rejected. Fail fast, or (with a breaker_wait budget) wait outside the
            # limiter for the breaker to change or to reach its announced time.
            remaining = wait_until - trio.current_time()
            if remaining <= 0:
                self.counters.breaker_rejections += 1
                raise refused
            self.counters.breaker_waits += 1
            with trio.move_on_after(min(refused.retry_after or remaining, remaining)):
                await self._breaker_changed.wait()

    async def _run_admitted(
        self,
        breaker: CircuitBreaker,
        permit: Permit,
        runner: Runner,
        on_event: OnEvent,
    ) -> CallOutcome:
        try:
            outcome = await runner(on_event)
        except LLMError as error:
            breaker.record_failure(error, permit)
            self._signal_breaker_change()
            raise
        except BaseException:
            breaker.record_cancelled(permit)  # neither success nor failure
            self._signal_breaker_change()
            raise
        breaker.record_success(permit)
        self._signal_breaker_change()
        return outcome

    def _signal_breaker_change(self) -> None:
        if self._breaker_changed.statistics().tasks_waiting:  # else no one to wake
            self._breaker_changed.set()
            self._breaker_changed = trio.Event()

    async def _run_actor(self, spec: CliSpec, prompt: str, on_event: OnEvent) -> CallOutcome:
        send, receive = trio.open_memory_channel[ActorMessage](EVENT_BUFFER)
        handle = await self.host(self._actor_main, spec, prompt, send)
        try:
            return await relay_until_done(receive, on_event, spec.name)
        finally:
            await handle.cancel_and_wait()

    async def _actor_main(
        self, spec: CliSpec, prompt: str, send: trio.MemorySendChannel[ActorMessage]
    ) -> None:
        try:
            await run_process_actor(spec, prompt, send, self.timeouts, on_spawn=self.note_spawn)
        finally:
            send.close()  # not `async with`: its checkpoint would delay the handle's finish

    def note_spawn(self, pid: int) -> None:
        """Called by actors for every process they start."""
        self.counters.processes_spawned += 1
        for listener in self._spawn_listeners:
            listener(pid)

    def add_spawn_listener(self, listener: Callable[[int], None]) -> None:
        """Call ``listener(pid)`` for every CLI process this supervisor starts.

        For monitoring (memory sampling, audit logs); it runs synchronously in the actor,
        so it must be quick and must not raise.
        """
        self._spawn_listeners.append(listener)

    def set_concurrency(self, concurrency: int) -> None:
        """Change how many CLI processes may run at once, effective for the next spawns."""
        check_concurrency(concurrency)
        self.concurrency = concurrency
        self._limiter.total_tokens = concurrency

    async def _pump_stream(
        self, prompt: str, send: trio.MemorySendChannel[Event | StreamEnd]
    ) -> None:
        delivered_text = False

        async def forward(event: Event) -> None:
            nonlocal delivered_text
            if isinstance(event, TextDelta):
                delivered_text = True
            await send.send(event)

        async with send:
            try:
                result = await self.run_call(
                    prompt, forward, may_retry=lambda _e: not delivered_text
                )
            except LLMError as error:
                end = StreamEnd(error=error)
            else:
                end = StreamEnd(result=result)
            # The reader may have left early; then there is nobody to tell.
            with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError):
                await send.send(end)

    def _close(self) -> None:
        self._closed = True


async def relay_until_done(
    receive: trio.MemoryReceiveChannel[ActorMessage], on_event: OnEvent, cli: str
) -> CallOutcome:
    """Pass an actor's events to ``on_event``; return its outcome or raise its error."""
    async with receive:
        while True:
            try:
                message = await receive_soon(receive)
            except trio.EndOfChannel:
                break
            if isinstance(message, ActorDone):
                if message.error is not None:
                    raise message.error
                assert message.outcome is not None
                return message.outcome
            await on_event(message)
    raise LLMError(
        "the CLI actor ended without a result (supervisor closing or internal error)",
        ErrorCategory.PERMANENT,
        cli=cli,
    )


async def _counting(
    handler: RetryHandler,
    attempt: Callable[[int], Awaitable[CallOutcome]],
    may_retry: Callable[[LLMError], bool] | None,
) -> tuple[CallOutcome, int]:
    last = 0

    async def numbered(number: int) -> CallOutcome:
        nonlocal last
        last = number
        return await attempt(number)

    outcome = await handler.run(numbered, may_retry=may_retry)
    return outcome, last


async def _ignore_event(_event: Event) -> None:
    return None


def check_concurrency(concurrency: int) -> None:
    if not isinstance(concurrency, int) or concurrency < 1:
        raise ValueError(f"concurrency must be a positive integer, got {concurrency!r}")


@asynccontextmanager
async def open_supervisor(
    cli: CliSpec,
    *,
    retry: RetryConfig | None = None,
    timeouts: TimeoutConfig | None = None,
    breaker: CircuitBreaker | None = None,
    concurrency: int = 8,
    restart_intensity: RestartIntensity | None = None,
    breaker_wait: float = 0.0,
    sweep_orphans: bool = True,
    rng: random.Random | None = None,
) -> AsyncIterator[Supervisor]:
    """Open a supervisor for ``cli``: ``async with open_supervisor(spec) as sup: ...``.

    Args:
        cli: the CLI spec (`actors.command`, `actors.fake`, ...).
        retry: the retry policy (None: the default `RetryConfig`).
        timeouts: per-attempt time limits (None: the default `TimeoutConfig`).
        breaker: a `CircuitBreaker` shared by every call (None: no breaker).
        concurrency: how many CLI processes may run at once.
        restart_intensity: restarts of long-lived children allowed per period.
        breaker_wait: how long a call may wait for an open breaker before failing with
            CIRCUIT_OPEN. 0 (the default) fails fast, which suits request handlers; a
            fan-out wants a budget, so queued work pauses instead of failing en masse.
            Waiting spends no attempts and holds no concurrency slot.
        sweep_orphans: first kill CLI process trees left by supervisors that died without
            cleaning up (SIGKILL, OOM); see `actors._registry`.

    On exit, on error, on cancellation and on Ctrl+C every actor is stopped with the full
    stop sequence before this returns. Errors from the body come out as themselves, never
    wrapped in an exception group.
    """
    if not isinstance(cli, CliSpec):
        raise TypeError(f"open_supervisor() needs a CliSpec (see actors.command), got {cli!r}")
    check_concurrency(concurrency)
    if not breaker_wait >= 0:
        raise ValueError(f"breaker_wait must be >= 0 seconds, got {breaker_wait!r}")
    if sweep_orphans:
        sweep_orphaned_groups()
    try:
        async with trio.open_nursery() as nursery:
            supervisor = Supervisor(
                nursery,
                cli,
                retry=retry or RetryConfig(),
                timeouts=timeouts or TimeoutConfig(),
                breaker=breaker,
                concurrency=concurrency,
                restart_intensity=restart_intensity or RestartIntensity(),
                breaker_wait=breaker_wait,
                rng=rng,
            )
            try:
                yield supervisor
            finally:
                supervisor._close()
                nursery.cancel_scope.cancel()
    except BaseExceptionGroup as group:
        raise unwrap_group(group) from None
