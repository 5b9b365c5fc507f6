"""The engine of a supervisor: hosted tasks, admission, the call loop, children, counters.

`Engine` owns the supervisor's nursery. Each attempt of each call is a process actor
started in it; the caller talks to it over a bounded memory channel and, whatever happens
to the caller (success, error, cancel, Ctrl+C), waits for the actor's shielded stop
sequence before returning, so no call ever leaves a process behind. Long-lived children
(`start_child`) are restarted per their `RestartType`, with backoff, under a restart
intensity counted per supervisor, OTP style.

The features (conversations, fan-out, structured output, streaming) and the public front
(`supervisor._supervisor.Supervisor`) build on this module; it imports none of them. Only
the engine writes the counters: features report through its ``note_*`` methods. Decisions
are pure functions in `supervisor._policy` (admission, retry verdict); the engine does
the I/O around them.
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import logging
import math
import random
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from typing import Any

import attrs
import trio

from actors import CliSpec, ErrorCategory, Event, LLMError, RestartIntensityExceeded, TimeoutConfig
from actors.lowlevel import (
    ActorDone,
    ActorMessage,
    CallOutcome,
    end_standby,
    receive_soon,
    run_process_actor,
    sweep_orphaned_groups,
    unwrap_group,
)

from ._children import ChildSpec, RestartHooks, supervise_child
from ._policy._admission import Admitted, Rejected, admit
from ._policy._backoff import RetryConfig
from ._policy._breaker import CircuitBreaker, Permit
from ._policy._budget import RetryBudgetTracker
from ._policy._fallback import next_cli
from ._policy._intensity import RestartBackoff, RestartIntensity, RestartTracker, RestartType
from ._policy._standby import StandbyConfig, StandbyPolicy
from ._result import Result
from ._retry import Attempted, RetryHandler
from ._standby import StandbyHooks, StandbyPool, Taken, make_scratch_folder, remove_folder
from ._stats import Counters, SupervisorStatistics

# A library stays quiet unless its user configures logging.
logging.getLogger("llmsup").addHandler(logging.NullHandler())
logger = logging.getLogger("llmsup.engine")

# Events buffered between an actor and its caller before the actor (and so the CLI, via
# its pipe) is made to wait: backpressure instead of unbounded memory.
EVENT_BUFFER = 64

_request_ids = itertools.count(1)

OnEvent = Callable[[Event], Awaitable[None]]
# One attempt: run something that reports events and ends with a CallOutcome.
Runner = Callable[[OnEvent], Awaitable[CallOutcome]]
Limiter = contextlib.AbstractAsyncContextManager[Any]

# Runners that bring their own process (a warm actor's turn) take no process slot.
NO_LIMIT: Limiter = contextlib.nullcontext()


async def ignore_event(_event: Event) -> None:
    """An ``on_event`` for calls whose events nobody reads."""
    return None


def check_concurrency(concurrency: int) -> None:
    if not isinstance(concurrency, int) or concurrency < 1:
        raise ValueError(f"concurrency must be a positive integer, got {concurrency!r}")


def check_process_limit(limit: int | None) -> None:
    if limit is None:
        return
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
        raise ValueError(f"the process limit must be a positive integer or None, got {limit!r}")


class ScratchFolder(str):
    """The ``cwd`` of a call that runs each process in a fresh scratch folder of its own
    (``Supervisor.ask(scratch=True)``); compared by identity, never used as a path."""

    __slots__ = ()


SCRATCH = ScratchFolder("<a fresh scratch folder per process>")


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


@attrs.frozen
class CallRecord:
    """One call's identity for its logs: request id, CLI and start time."""

    request_id: str
    cli: str
    started: float

    def fields(
        self, attempt: int, category: str | None, duration_s: float | None = None
    ) -> dict[str, Any]:
        """A log record's ``extra``; the duration is up to now unless given."""
        if duration_s is None:
            duration_s = trio.current_time() - self.started
        return {
            "request_id": self.request_id,
            "cli": self.cli,
            "attempt": attempt,
            "category": category,
            "duration_s": duration_s,
        }


@attrs.frozen
class ChainLink:
    """One CLI of a supervisor's fallback chain, with its own circuit breaker."""

    spec: CliSpec
    breaker: CircuitBreaker | None


@attrs.define
class _CallFailures:
    """What one call's attempts on one CLI failed with, for its final error."""

    last: LLMError | None = None

    def call_error(self, error: LLMError) -> LLMError:
        """The error the call reports. When an attempt failed and the breaker it opened
        then refused the retry, the call's own failure comes first (with a note), not
        the CIRCUIT_OPEN that only says no further attempt was made."""
        last = self.last
        if (
            error.category is not ErrorCategory.CIRCUIT_OPEN
            or last is None
            or last.category is ErrorCategory.CIRCUIT_OPEN
        ):
            return error
        return last.evolve(
            message=f"{last.message} (not retried: the circuit breaker opened)",
            attempts=error.attempts,
        )


def with_system_prompt(spec: CliSpec, prompt: str, system: str | None) -> tuple[CliSpec, str]:
    """The spec and the user text of a call with a system prompt: passed natively through
    ``spec.with_system`` when the CLI has it, else replayed into the user text."""
    if not system:
        return spec, prompt
    if spec.with_system is not None:
        return spec.with_system(system), prompt
    return spec, f"System: {system}\n\nUser: {prompt}"


def fallback_breaker(breaker: CircuitBreaker | None, name: str) -> CircuitBreaker | None:
    """A fallback CLI's own breaker: a fresh one with the primary's configuration (None
    when the primary has none), so one CLI's failures never open another's breaker."""
    if breaker is None:
        return None
    return CircuitBreaker(
        failure_threshold=breaker.failure_threshold,
        success_threshold=breaker.success_threshold,
        timeout_seconds=breaker.timeout_seconds,
        half_open_max_calls=breaker.half_open_max_calls,
        counted_categories=breaker.counted_categories,
        clock=breaker.clock,
        name=name,
    )


def check_fallbacks(primary: CliSpec, fallbacks: Sequence[CliSpec]) -> tuple[CliSpec, ...]:
    """The fallback specs as a tuple; a TypeError names the one that is not a CliSpec."""
    if isinstance(fallbacks, CliSpec):
        raise TypeError("fallback= takes a list of CliSpecs, got a single CliSpec")
    checked = tuple(fallbacks)
    for index, spec in enumerate(checked):
        if not isinstance(spec, CliSpec):
            raise TypeError(
                f"fallback[{index}] must be a CliSpec (see actors.command), got {spec!r}"
            )
    return checked


class Engine:
    """Runs calls to one CLI under retry, breaker, timeout and concurrency policies.

    Made by `open_supervisor`; the public `Supervisor` holds one. Safe to use
    concurrently.
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
        fallbacks: Sequence[CliSpec] = (),
        standby: StandbyConfig | None = None,
        standby_scratch: bool = False,
        retry_budget: RetryBudgetTracker | None = None,
    ) -> None:
        self._nursery = nursery
        self.cli = cli
        self.fallbacks = tuple(fallbacks)
        # The primary first; each fallback with its own breaker (see `fallback_breaker`).
        self.chain = (
            ChainLink(cli, breaker),
            *(ChainLink(spec, fallback_breaker(breaker, spec.name)) for spec in self.fallbacks),
        )
        self.retry_config = retry
        self.timeouts = timeouts
        self.breaker = breaker
        self.breaker_wait = breaker_wait
        self._breaker_changed = trio.Event()
        self.concurrency = concurrency
        self._limiter = trio.CapacityLimiter(concurrency)
        self._counters = Counters()
        self._spawn_listeners: list[Callable[[int], None]] = []
        self._rng = rng or random.Random()
        self._restarts = RestartTracker(restart_intensity, clock=trio.current_time)
        # An injected tracker (a fleet's shared one) replaces the one built from the config.
        if retry_budget is None and retry.budget is not None:
            retry_budget = RetryBudgetTracker(retry.budget, clock=trio.current_time)
        self.retry_budget = retry_budget
        self._retry = RetryHandler(retry, rng=self._rng, budget=self.retry_budget)
        self._closed = False
        # Processes alive (calls' and standby ones, spawning included), and their bound.
        self._live = 0
        self.process_limit: int | None = None
        self._room_changed = trio.Event()
        self._room_waiting = 0
        self.standby = StandbyConfig() if standby is None else standby
        self._standby: StandbyPool | None = None
        if self.standby.standby:
            self._standby = self._standby_pool(standby_scratch)

    # ------------------------------------------------------------------- hosting

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

    def close(self) -> None:
        """Accept no more work; the nursery's owner then cancels what runs."""
        self._closed = True

    # ------------------------------------------------------------------- calls

    async def run_call(
        self,
        prompt: str,
        on_event: OnEvent = ignore_event,
        *,
        may_retry: Callable[[LLMError], bool] | None = None,
        spec: CliSpec | None = None,
        runner: Runner | None = None,
        adapt: Callable[[CliSpec], CliSpec] | None = None,
        system: str | None = None,
        cwd: str | None = None,
        chain_from: int = 0,
    ) -> Result:
        """The policy around one call: retries, breaker, fallback, limits, statistics, logs.

        Each attempt runs ``runner(on_event)``; by default a one-shot process actor for
        ``spec`` (the supervisor's CLI unless given: a call may run another spec of the
        same CLI, as a resumed session does). Warm conversations pass a runner that hands
        the turn to their warm actor instead (and skip the process limit).

        A call on the supervisor's own CLI (no ``spec``, no ``runner``) moves to the next
        CLI of the fallback chain when `supervisor._policy._fallback.next_cli` says so.
        ``adapt`` derives each CLI's spec for this call (a structured call's native schema
        option); ``system`` is passed natively where the spec has ``with_system``, else
        replayed into the user text (`with_system_prompt`). ``cwd`` runs each CLI of the
        call in that folder. ``chain_from`` starts the chain at that CLI (1: the first
        fallback, for a conversation turn its own CLI refused).
        """
        scratch = cwd is SCRATCH
        if scratch:
            cwd = None
        counters = self._counters
        counters.started += 1
        counters.in_flight += 1
        if self.retry_budget is not None:
            self.retry_budget.call_started()
        try:
            if spec is not None or runner is not None:
                links: tuple[ChainLink, ...] = (ChainLink(spec or self.cli, self.breaker),)
                offset = 0
            else:
                offset = min(chain_from, len(self.chain) - 1)
                links = self.chain[offset:]
            if cwd is not None:
                links = tuple(
                    attrs.evolve(link, spec=attrs.evolve(link.spec, cwd=cwd)) for link in links
                )
            return await self._run_chain(
                links, offset, prompt, on_event, may_retry, runner, adapt, system, scratch
            )
        finally:
            counters.in_flight -= 1

    async def _run_chain(
        self,
        links: tuple[ChainLink, ...],
        offset: int,
        prompt: str,
        on_event: OnEvent,
        may_retry: Callable[[LLMError], bool] | None,
        runner: Runner | None,
        adapt: Callable[[CliSpec], CliSpec] | None,
        system: str | None,
        scratch: bool = False,
    ) -> Result:
        request_id = f"req-{next(_request_ids)}"
        started = trio.current_time()
        attempts_before = 0
        position = 0
        while True:
            link = links[position]
            base = adapt(link.spec) if adapt else link.spec
            spec, text = with_system_prompt(base, prompt, system)
            if spec.cwd != link.spec.cwd:  # a variant rebuilt from its CLI's own options
                spec = attrs.evolve(spec, cwd=link.spec.cwd)
            call = CallRecord(request_id, spec.name, started)
            limiter: Limiter = NO_LIMIT
            run = runner
            if run is None:
                run = functools.partial(self._run_actor, spec, text, scratch)
                limiter = self._limiter
            failures = _CallFailures()
            try:
                done = await self._retry.run_counted(
                    functools.partial(self._attempt, run, on_event, limiter, link),
                    may_retry=may_retry,
                    on_retry=functools.partial(self._note_retry, call, failures),
                )
            except LLMError as error:
                may_move = may_retry is None or may_retry(error)
                if next_cli(error, position, len(links), may_move=may_move):
                    attempts_before += error.attempts
                    self._note_fallback(call, error, links[position + 1].spec.name)
                    position += 1
                    continue
                shown = failures.call_error(error)
                self._note_failure(call, shown)
                if shown is error:
                    raise
                raise shown from error
            return self._note_success(call, done, attempts_before, fallback=offset + position > 0)

    def _note_retry(
        self,
        call: CallRecord,
        failures: _CallFailures,
        error: LLMError,
        attempt: int,
        delay: float,
    ) -> None:
        self._counters.retries += 1
        failures.last = error
        category = error.category.value
        logger.info(
            "attempt %d failed (%s), retrying in %.2fs",
            attempt,
            category,
            delay,
            extra=call.fields(attempt, category),
        )

    def _note_fallback(self, call: CallRecord, error: LLMError, target: str) -> None:
        self._counters.fallbacks[call.cli] += 1
        logger.warning(
            "%s failed (%s); moving the call to the fallback %s: %s",
            call.cli,
            error.category.value,
            target,
            error.message,
            extra=call.fields(error.attempts, error.category.value),
        )

    def _note_failure(self, call: CallRecord, error: LLMError) -> None:
        self._counters.call_failed(error.category)
        # An open breaker failing calls fast is expected, not news for every call.
        level = logging.INFO if error.category is ErrorCategory.CIRCUIT_OPEN else logging.WARNING
        extra = call.fields(error.attempts, error.category.value)
        logger.log(level, "call failed: %s", error, extra=extra)

    def _note_success(
        self, call: CallRecord, done: Attempted[CallOutcome], attempts_before: int, fallback: bool
    ) -> Result:
        self._counters.succeeded += 1
        duration = trio.current_time() - call.started
        if logger.isEnabledFor(logging.INFO):  # skip building the record's fields
            logger.info("call succeeded", extra=call.fields(done.attempts, None, duration))
        outcome = done.value
        return Result(
            text=outcome.text,
            session_id=outcome.session_id,
            attempts=attempts_before + done.attempts,
            duration_s=duration,
            usage=outcome.usage,
            cost_usd=outcome.cost_usd,
            raw_events=list(outcome.events),
            cli=call.cli,
            request_id=call.request_id,
            exit_code=outcome.exit_code,
            fallback=fallback,
        )

    async def _attempt(
        self, runner: Runner, on_event: OnEvent, limiter: Limiter, link: ChainLink, _number: int
    ) -> CallOutcome:
        deadline = trio.current_time() + self.breaker_wait
        while True:
            async with limiter:
                admission = admit(link.breaker, link.spec.name, trio.current_time(), deadline)
                if isinstance(admission, Admitted):
                    if admission.permit is None:
                        return await runner(on_event)
                    assert link.breaker is not None
                    return await self._run_admitted(
                        link.breaker, admission.permit, runner, on_event
                    )
            # Refused. Fail fast, or wait outside the limiter for the breaker to change or
            # to reach its announced time; waiting spends no attempt.
            if isinstance(admission, Rejected):
                self._counters.breaker_rejections += 1
                raise admission.error
            self._counters.breaker_waits += 1
            with trio.move_on_after(admission.seconds):
                await self._breaker_changed.wait()

    async def _run_admitted(
        self, breaker: CircuitBreaker, permit: Permit, runner: Runner, on_event: OnEvent
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

    async def _run_actor(
        self, spec: CliSpec, prompt: str, scratch: bool, on_event: OnEvent
    ) -> CallOutcome:
        taken: Taken | None = None
        if self._standby is not None or self.process_limit is not None:
            taken = await self._process_for(spec, scratch)
        else:
            self._live += 1
        send, receive = trio.open_memory_channel[ActorMessage](EVENT_BUFFER)
        try:
            handle = await self.host(self._actor_main, spec, prompt, send, taken, scratch)
        except BaseException:
            with trio.CancelScope(shield=True):
                await self._drop(taken)
            raise
        try:
            return await relay_until_done(receive, on_event, spec.name)
        finally:
            await handle.cancel_and_wait()

    async def _actor_main(
        self,
        spec: CliSpec,
        prompt: str,
        send: trio.MemorySendChannel[ActorMessage],
        taken: Taken | None,
        scratch: bool,
    ) -> None:
        folder = None
        try:
            if taken is not None:
                folder = taken.folder
            elif scratch:
                folder = make_scratch_folder()
                spec = attrs.evolve(spec, cwd=folder)
            await run_process_actor(
                spec,
                prompt,
                send,
                self.timeouts,
                on_spawn=self.note_spawn,
                standby=None if taken is None else taken.proc,
            )
        finally:
            send.close()  # not `async with`: its checkpoint would delay the handle's finish
            remove_folder(folder)
            self._process_ended()

    # ------------------------------------------------- standby and the process limit

    def _standby_pool(self, scratch: bool) -> StandbyPool:
        hooks = StandbyHooks(
            on_spawn=self.note_spawn,
            room=self._standby_room,
            refill_wait=self._refill_wait,
            on_death=self._standby_died,
            on_ready=self._signal_room,
            reserve=self._reserve,
            release=self._process_ended,
            grace=self.timeouts.graceful_shutdown,
        )
        policy = StandbyPolicy(self.standby, clock=trio.current_time)
        return StandbyPool(self.cli, policy, hooks, scratch=scratch)

    def start_standby(self) -> None:
        """Start the standby pool's refill loop (`open_engine` does, once)."""
        if self._standby is not None:
            self._nursery.start_soon(self._standby.run)

    async def _process_for(self, spec: CliSpec, scratch: bool) -> Taken | None:
        """A process slot for one call: a standby process when one of this spec is ready
        (the call owns it), else room for a new process under the process limit (None).
        Waits while the limit is reached, making room by stopping a standby process."""
        pool = self._standby
        eligible = pool is not None and spec is self.cli and scratch == pool.scratch
        while True:
            if eligible:
                assert pool is not None
                taken = await pool.take()
                if taken is not None:
                    return taken
            limit = self.process_limit
            if limit is None or self._live < limit:
                self._live += 1
                return None
            if pool is not None and not eligible:
                pool.evict_one()
            changed = self._room_changed
            self._room_waiting += 1
            try:
                await changed.wait()
            finally:
                self._room_waiting -= 1

    async def _drop(self, taken: Taken | None) -> None:
        """Give back a call's process slot that no actor took over."""
        if taken is not None:
            await end_standby(taken.proc, self.timeouts.graceful_shutdown, self.cli.name)
            remove_folder(taken.folder)
        self._process_ended()

    def _reserve(self) -> None:
        self._live += 1

    def _process_ended(self) -> None:
        self._live -= 1
        if self._standby is not None:
            self._standby.wake()
        self._signal_room()

    def _signal_room(self) -> None:
        if self._room_waiting:
            self._room_changed.set()
            self._room_changed = trio.Event()

    def _standby_room(self) -> float:
        if self.process_limit is None:
            return math.inf
        return self.process_limit - self._live - self._room_waiting

    def _refill_wait(self) -> float | None:
        """While the primary's breaker is open, the seconds it stays so (None: refill)."""
        return None if self.breaker is None else self.breaker.retry_after()

    def _standby_died(self, reason: str) -> None:
        """A standby process died before its prompt: a restart, counted against the
        restart intensity; past it, standby stops refilling (calls then spawn as usual)."""
        try:
            self._restarts.record_restart(reason=f"standby process of {self.cli.name}: {reason}")
        except RestartIntensityExceeded as exc:
            assert self._standby is not None
            self._standby.policy.stop(str(exc))
            logger.error(
                "standby processes of %s keep dying; no more are started: %s",
                self.cli.name,
                exc,
                extra={"cli": self.cli.name},
            )
        else:
            self._counters.restarts += 1

    def set_process_limit(self, limit: int | None) -> None:
        """Bound the processes alive at once, calls' and standby ones (None: no bound)."""
        check_process_limit(limit)
        self.process_limit = limit
        pool = self._standby
        if pool is not None:
            excess = 0 if limit is None else self._live - limit
            while excess > 0 and pool.evict_one():
                excess -= 1
            pool.wake()
        self._signal_room()

    def set_concurrency(self, concurrency: int) -> None:
        """Change how many CLI processes may run at once, effective for the next spawns."""
        check_concurrency(concurrency)
        self.concurrency = concurrency
        self._limiter.total_tokens = concurrency

    # ------------------------------------------------------------ long-lived children

    async def start_child(
        self,
        fn: Callable[[], Awaitable[Any]],
        *,
        name: str,
        restart: RestartType = RestartType.PERMANENT,
        backoff: RestartBackoff | None = None,
    ) -> TaskHandle:
        """Run ``fn`` as a long-lived child under OTP restart rules (see `Supervisor`)."""
        hooks = RestartHooks(self._on_restart, self._on_give_up, self._rng, self.cli.name)
        child = ChildSpec(fn, name, restart, backoff or RestartBackoff())
        return await self.host(supervise_child, child, hooks)

    def _on_restart(self, name: str, reason: str) -> None:
        self._restarts.record_restart(reason=f"{name}: {reason}")  # may raise: the limit
        self._counters.restarts += 1

    def _on_give_up(self, error: RestartIntensityExceeded) -> None:
        logger.error("%s", error, extra={"cli": self.cli.name})
        self._nursery.cancel_scope.cancel()

    # ------------------------------------------------------- what features report

    def note_spawn(self, pid: int) -> None:
        """Called by actors for every process they start."""
        self._counters.processes_spawned += 1
        for listener in self._spawn_listeners:
            listener(pid)

    def add_spawn_listener(self, listener: Callable[[int], None]) -> None:
        """Call ``listener(pid)`` for every CLI process this engine starts."""
        self._spawn_listeners.append(listener)

    def note_reask(self) -> None:
        """A structured answer did not validate and the question is asked again: the call
        that returned it is part of the one structured call, counted neither as started
        nor as succeeded (`Counters.reasked_calls`)."""
        self._counters.reasks += 1
        self._counters.reasked_calls += 1

    def note_answer_rejected(self) -> None:
        """A call returned, but its answer did not validate and will not be asked again:
        count it as a malformed failure, not a success (`Counters.answers_rejected`)."""
        self._counters.answers_rejected += 1

    def note_trimmed(self, turns: int) -> None:
        """A conversation dropped ``turns`` old turns from its kept history."""
        self._counters.trimmed_turns += turns

    def note_session_restart(self) -> None:
        """A conversation's CLI lost its session; a new one was started with the history."""
        self._counters.session_restarts += 1

    def statistics(self) -> SupervisorStatistics:
        """A frozen snapshot of the counters and the breaker state."""
        return self._counters.snapshot(
            self.cli.name,
            self.concurrency,
            self.breaker,
            self.retry_budget,
            None if self._standby is None else self._standby.policy,
        )

    def breaker_of(self, name: str) -> CircuitBreaker | None:
        """The breaker of the chain's CLI called ``name`` (the first such; None: none)."""
        for link in self.chain:
            if link.spec.name == name:
                return link.breaker
        return None


@asynccontextmanager
async def open_engine(
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
    fallback: Sequence[CliSpec] = (),
    standby: int = 0,
    standby_max_age: float = 600.0,
    standby_scratch: bool = False,
    retry_budget: RetryBudgetTracker | None = None,
) -> AsyncIterator[Engine]:
    """`open_supervisor`'s machinery: the `Engine`, with the same arguments and guarantees.

    ``Supervisor(engine)`` is the front over it. Code that needs more than the front, such
    as a call with its own `CliSpec` (``engine.run_call(prompt, on_event, spec=...)``, as
    benchmarks and end-to-end tests make), opens the engine and wraps it.
    """
    if not isinstance(cli, CliSpec):
        raise TypeError(f"open_supervisor() needs a CliSpec (see actors.command), got {cli!r}")
    fallbacks = check_fallbacks(cli, fallback)
    check_concurrency(concurrency)
    if not breaker_wait >= 0:
        raise ValueError(f"breaker_wait must be >= 0 seconds, got {breaker_wait!r}")
    standby_config = StandbyConfig(standby=standby, standby_max_age=standby_max_age)
    refusal = cli.standby_refusal_reason() if standby else None
    if refusal is not None:
        raise ValueError(f"standby is not possible for {cli.name}: {refusal}")
    if sweep_orphans:
        sweep_orphaned_groups()
    try:
        async with trio.open_nursery() as nursery:
            engine = Engine(
                nursery,
                cli,
                retry=retry or RetryConfig(),
                timeouts=timeouts or TimeoutConfig(),
                breaker=breaker,
                concurrency=concurrency,
                restart_intensity=restart_intensity or RestartIntensity(),
                breaker_wait=breaker_wait,
                rng=rng,
                fallbacks=fallbacks,
                standby=standby_config,
                standby_scratch=standby_scratch,
                retry_budget=retry_budget,
            )
            engine.start_standby()
            try:
                yield engine
            finally:
                engine.close()
                nursery.cancel_scope.cancel()
    except BaseExceptionGroup as group:
        raise unwrap_group(group) from None


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
