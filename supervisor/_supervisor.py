"""The public front: `open_supervisor` and the `Supervisor` it yields.

The front is what users call (ask, stream, map, conversations, children, statistics); the
machinery is the `Engine` it holds (`supervisor._engine`), on which the features build
too. The front imports the features; none of them imports the front.
"""

from __future__ import annotations

import contextlib
import os
import random
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from contextlib import asynccontextmanager
from typing import Any, Literal

import trio
from pydantic import BaseModel

from actors import CliSpec, Event, LLMError, TimeoutConfig

from ._conversation import Conversation
from ._engine import EVENT_BUFFER, SCRATCH, Engine, TaskHandle, check_concurrency, open_engine
from ._fanout import MapStream, Prompts, map_in_order, map_stream
from ._history import ConversationManager
from ._policy._backoff import RetryConfig
from ._policy._breaker import CircuitBreaker
from ._policy._budget import RetryBudgetTracker
from ._policy._intensity import RestartBackoff, RestartIntensity, RestartType
from ._result import Result
from ._stats import SupervisorStatistics
from ._stream import ResponseStream, StreamEnd, pump_stream
from ._structured import DEFAULT_MAX_REASKS, ask

__all__ = ["Supervisor", "check_concurrency", "open_supervisor"]


class Supervisor:
    """Runs calls to one CLI under retry, breaker, timeout and concurrency policies.

    Create it with `open_supervisor`. All methods are safe to call concurrently.
    """

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    # ----------------------------------------------------------------- settings

    @property
    def cli(self) -> CliSpec:
        """The CLI every call runs."""
        return self._engine.cli

    @property
    def breaker(self) -> CircuitBreaker | None:
        """The primary CLI's circuit breaker, shared by every call (None: none)."""
        return self._engine.breaker

    @property
    def fallbacks(self) -> tuple[CliSpec, ...]:
        """The fallback CLIs, in the order calls move to them."""
        return self._engine.fallbacks

    def breaker_of(self, cli: str) -> CircuitBreaker | None:
        """The circuit breaker of the chain's CLI named ``cli`` (primary or fallback)."""
        return self._engine.breaker_of(cli)

    @property
    def standby(self) -> int:
        """How many standby processes it keeps (``open_supervisor(standby=N)``)."""
        return self._engine.standby.standby

    @property
    def process_limit(self) -> int | None:
        """The most CLI processes alive at once, calls' and standby ones (None: no bound
        beyond ``concurrency``); see `set_process_limit`."""
        return self._engine.process_limit

    @property
    def concurrency(self) -> int:
        """How many CLI processes may run at once (see `set_concurrency`)."""
        return self._engine.concurrency

    @property
    def retry_config(self) -> RetryConfig:
        return self._engine.retry_config

    @property
    def timeouts(self) -> TimeoutConfig:
        return self._engine.timeouts

    @property
    def breaker_wait(self) -> float:
        return self._engine.breaker_wait

    @property
    def retry_budget(self) -> RetryBudgetTracker | None:
        return self._engine.retry_budget

    # ----------------------------------------------------------------- public calls

    async def ask(
        self,
        prompt: str,
        output: type[BaseModel] | None = None,
        *,
        max_reasks: int = DEFAULT_MAX_REASKS,
        system: str | None = None,
        cwd: str | None = None,
        adapt: Callable[[CliSpec], CliSpec] | None = None,
        scratch: bool = False,
    ) -> Result:
        """Run one call; return its `Result` or raise `LLMError`.

        ``system``: a system prompt, passed through the CLI's own mechanism when its spec
        has ``with_system`` (claude ``--system-prompt``, ...); otherwise it is replayed
        into the user text as ``"System: ...\n\nUser: ..."``.

        Fallback: a call that fails with ``rate_limit``, ``auth_failure`` or an open
        breaker moves to the next CLI of ``open_supervisor(fallback=...)``;
        ``Result.cli`` names the CLI that answered and ``Result.fallback`` is True.

        ``cwd``: run this call's CLI (and any fallback) in that folder instead of the
        spec's own ``cwd``. ``scratch=True`` instead runs each process of the call in a
        fresh scratch folder of its own, removed with whatever the CLI left there when
        the process ends (``llmsup serve``); with ``open_supervisor(standby_scratch=True)``
        such a call takes a standby process, already started in its folder.

        ``adapt``: derives this call's spec from each CLI's spec of the chain (``llmsup
        serve``'s per-request model and tool policy); the call's ``cwd`` still applies.

        With ``output`` (a pydantic model) the answer must be JSON of that shape:
        ``Result.data`` is the validated instance. The schema is put into the prompt (and
        into the CLI's own schema option where it has one); an answer that does not
        validate is re-asked with the errors, at most ``max_reasks`` times, then fails
        as MALFORMED_OUTPUT keeping the last answer in ``raw_text``.

        Cancellation: the current attempt's process tree is stopped (shielded, bounded
        by ``graceful_shutdown`` plus a few seconds) before `trio.Cancelled` propagates.
        """
        cwd = _call_folder(cwd, scratch)
        return await ask(
            self._engine,
            prompt,
            output,
            max_reasks=max_reasks,
            system=system,
            cwd=cwd,
            adapt=adapt,
        )

    @asynccontextmanager
    async def stream(
        self,
        prompt: str,
        *,
        system: str | None = None,
        cwd: str | None = None,
        adapt: Callable[[CliSpec], CliSpec] | None = None,
        scratch: bool = False,
    ) -> AsyncIterator[ResponseStream]:
        """Stream one call's events: ``async with sup.stream(p) as events: async for ...``.

        A failed attempt is retried, or moved to a fallback CLI, only while no text has
        reached the reader. Leaving the block early stops the call and its process. After
        the block, ``events.result`` is the `Result` (see `ResponseStream.result`).
        ``system``, ``cwd``, ``adapt`` and ``scratch`` work as in `ask`.
        """
        cwd = _call_folder(cwd, scratch)
        send, receive = trio.open_memory_channel[Event | StreamEnd](EVENT_BUFFER)
        handle = await self._engine.host(
            pump_stream, self._engine, prompt, send, system, cwd, adapt
        )
        try:
            yield ResponseStream(receive)
        finally:
            await handle.cancel_and_wait()
            receive.close()

    async def map(
        self,
        prompts: Iterable[str],
        output: type[BaseModel] | None = None,
        *,
        system: str | None = None,
    ) -> list[Result | LLMError]:
        """Run every prompt; return one `Result` or `LLMError` per prompt, in input order.

        Concurrency is bounded by the supervisor's limit. One failure never cancels the
        others. Cancelling the map stops every process it started. With ``output``, each
        answer is validated as in `ask`; ``system`` and fallback work as in `ask`.
        """
        return await map_in_order(self._engine, prompts, output, system)

    def map_stream(
        self,
        prompts: Prompts,
        output: type[BaseModel] | None = None,
        *,
        system: str | None = None,
    ) -> contextlib.AbstractAsyncContextManager[MapStream]:
        """Stream outcomes in completion order: ``async with sup.map_stream(p) as results``.

        ``prompts`` may be any iterable or async iterable, of any length; it is read only
        as fast as work completes, so memory stays bounded. Each item is a `Completed`
        (``index``, ``prompt``, ``outcome``). Leaving the block early stops the rest.
        ``system`` and fallback work as in `ask`.
        """
        return map_stream(self._engine, prompts, output, system)

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

        ``system_prompt`` is passed natively on every turn when the spec has
        ``with_system`` (a resumed turn keeps it); otherwise it is replayed into the user
        text of the first turn of each session (and of every replayed prompt).

        ``mode="auto"`` keeps a warm process where the CLI allows it, else resumes its
        session per turn, else replays the trimmed history. ``history`` continues a
        conversation saved with ``export_history`` (its session id included).
        """
        manager = ConversationManager.load_history(history) if history else None
        return Conversation(
            self._engine,
            system_prompt=system_prompt,
            max_turns=max_turns,
            max_history=max_history,
            mode=mode,
            manager=manager,
        )

    def statistics(self) -> SupervisorStatistics:
        """A frozen snapshot of the counters and the breaker state."""
        return self._engine.statistics()

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
        return await self._engine.start_child(fn, name=name, restart=restart, backoff=backoff)

    # ------------------------------------------------------------------- tuning

    def add_spawn_listener(self, listener: Callable[[int], None]) -> None:
        """Call ``listener(pid)`` for every CLI process this supervisor starts.

        For monitoring (memory sampling, audit logs); it runs synchronously in the actor,
        so it must be quick and must not raise.
        """
        self._engine.add_spawn_listener(listener)

    def set_concurrency(self, concurrency: int) -> None:
        """Change how many CLI processes may run at once, effective for the next spawns."""
        self._engine.set_concurrency(concurrency)

    def set_process_limit(self, limit: int | None) -> None:
        """Bound the CLI processes alive at once, calls' and standby ones together (a
        memory budget's bound; None, the default, bounds only calls, by ``concurrency``).

        Standby processes are refilled only below the limit; a call that needs a new
        process when it is reached stops a standby process to make room, or waits.
        """
        self._engine.set_process_limit(limit)


def _call_folder(cwd: str | None, scratch: bool) -> str | None:
    if not scratch:
        return cwd
    if cwd is not None:
        raise ValueError("a call takes cwd= or scratch=True, not both")
    return SCRATCH


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
    fallback: Sequence[CliSpec] = (),
    standby: int = 0,
    standby_max_age: float = 600.0,
    standby_scratch: bool = False,
    retry_budget: RetryBudgetTracker | None = None,
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
        fallback: further CLIs, in order. A call on ``cli`` that fails with
            ``rate_limit``, ``auth_failure`` or ``circuit_open`` (after its retries) moves
            to the next one, for `ask`, `stream` (only before any text reached the
            reader), `map`/`map_stream` and structured calls; conversations stay on
            ``cli`` (a session belongs to one CLI). Each fallback has its own breaker: a
            fresh `CircuitBreaker` with ``breaker``'s configuration (none without one).
            ``statistics().fallbacks`` counts the calls that left each CLI.
        standby: how many processes of ``cli`` to keep started and waiting for their
            prompt (0, the default: none, behaviour unchanged). A call takes a ready one
            instead of spawning, so it does not pay the CLI's start-up, and the pool
            refills at once in the background. Each call still gets its own process.
            Only for CLIs that read the prompt from stdin: a ValueError names the CLI and
            the reason otherwise (`CliSpec.standby_refusal_reason`).

            Per argv: standby is for the plain call only, the spec ``cli`` as is (its
            argv, environment and ``cwd``). A call with another argv or folder spawns as
            usual: a structured call through the CLI's native schema option
            (``--json-schema``, ``--output-schema``), a system prompt passed natively, a
            resumed session, a per-call ``cwd=`` or ``adapt=``, a fallback CLI. (A
            structured call or system prompt that goes into the prompt text keeps the
            plain argv and takes a standby process.)

            Health: a standby process that exits or writes anything (stdout or stderr)
            before its prompt is discarded, counted (``statistics().standby_discarded``)
            and replaced, never handed out; each such death is a restart, counted
            against ``restart_intensity``, and past it no more are started (calls spawn
            as usual). While the breaker is open none is refilled. Standby processes
            count for `Supervisor.set_process_limit` (a memory budget), not for
            ``concurrency``.
        standby_max_age: seconds after which an unused standby process is stopped and
            replaced (``statistics().standby_recycled``), so that changed credentials
            and configuration are picked up. Default 600.
        standby_scratch: start each standby process in a fresh scratch folder of its own
            (removed with the process); such processes serve calls made with
            ``scratch=True`` (``llmsup serve``), and plain calls spawn as usual.
        retry_budget: the retry budget's running account to use instead of one built from
            ``retry.budget`` (None, the default: built from it, or no budget without one).
            When given, its own ``budget`` is the one every retry is checked against
            (``retry.budget`` is then not used) and its refusals are the ones
            ``statistics().retries_refused`` counts. A tracker shared by several
            supervisors gives them one budget (a fleet's, `supervisor.ray`).

    On exit, on error, on cancellation and on Ctrl+C every actor is stopped with the full
    stop sequence before this returns. Errors from the body come out as themselves, never
    wrapped in an exception group.
    """
    # Long because: the docstring is the reference of every argument.
    async with open_engine(
        cli,
        retry=retry,
        timeouts=timeouts,
        breaker=breaker,
        concurrency=concurrency,
        restart_intensity=restart_intensity,
        breaker_wait=breaker_wait,
        sweep_orphans=sweep_orphans,
        rng=rng,
        fallback=fallback,
        standby=standby,
        standby_max_age=standby_max_age,
        standby_scratch=standby_scratch,
        retry_budget=retry_budget,
    ) as engine:
        yield Supervisor(engine)
