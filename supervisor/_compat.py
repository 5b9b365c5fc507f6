"""`LLMCliWrapper`: the reference document's entry point, as a thin layer over a supervisor.

Each call runs under a supervisor with the wrapper's retry, timeout and breaker settings;
the breaker is shared across calls. Inside ``async with wrapper:`` one supervisor serves
every call (cheaper, and its statistics add up); outside, each call opens its own.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager, suppress
from types import TracebackType
from typing import Any

import trio
from pydantic import BaseModel

from actors import CliSpec, LLMError, TextDelta, TimeoutConfig, command
from actors.lowlevel import OutputFormat

from ._policy._backoff import RetryConfig
from ._policy._breaker import CircuitBreaker
from ._supervisor import Supervisor, open_supervisor

logger = logging.getLogger("llmsup")


class _PumpControl:
    """Lets a stream's reader cancel the system task that feeds it, before or after it starts."""

    def __init__(self) -> None:
        self._scope: trio.CancelScope | None = None
        self._cancelled = False

    def attach(self, scope: trio.CancelScope) -> None:
        self._scope = scope
        if self._cancelled:
            scope.cancel()

    def cancel(self) -> None:
        self._cancelled = True
        if self._scope is not None:
            self._scope.cancel()


class LLMCliWrapper:
    """Run a CLI binary the way the reference document does, with supervision underneath.

    Args:
        binary: the program to run (``"claude"``), or a ready `CliSpec`.
        timeout_config / retry_config: per-call policies (defaults when None).
        circuit_breaker: a breaker shared by every call of this wrapper (None: none).
        env: extra environment for the child.
        output_format: how to read the binary's stdout: ``"text"`` (the answer) or
            ``"jsonl"`` (native event lines, as the fake CLI prints).
        concurrency: process limit while the wrapper is open as a context manager.
    """

    def __init__(
        self,
        binary: str | CliSpec,
        *,
        timeout_config: TimeoutConfig | None = None,
        retry_config: RetryConfig | None = None,
        circuit_breaker: CircuitBreaker | None = None,
        env: Mapping[str, str] | None = None,
        output_format: OutputFormat = "text",
        concurrency: int = 8,
    ) -> None:
        self.binary = binary
        self.output_format: OutputFormat = output_format
        self.timeout_config = timeout_config or TimeoutConfig()
        self.retry_config = retry_config or RetryConfig()
        self.circuit_breaker = circuit_breaker
        self.env = dict(env or {})
        self.concurrency = concurrency
        self._stack: AsyncExitStack | None = None
        self._shared: dict[CliSpec, Supervisor] = {}

    # --------------------------------------------------------------- context manager

    async def __aenter__(self) -> LLMCliWrapper:
        self._stack = AsyncExitStack()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        stack, self._stack = self._stack, None
        self._shared.clear()
        if stack is not None:
            await stack.aclose()

    # -------------------------------------------------------------------- the calls

    def spec_for(self, cmd_args: Sequence[str] = (), *, stdin: bool = True) -> CliSpec:
        """The spec of ``binary cmd_args...``; the input goes to stdin or as last argument."""
        if isinstance(self.binary, CliSpec):
            if cmd_args:
                raise ValueError("cmd_args cannot be combined with a CliSpec binary")
            return self.binary
        return command(
            [self.binary, *cmd_args],
            prompt_via="stdin" if stdin else "arg",
            output_format=self.output_format,
            env=self.env,
        )

    async def call_api_async(
        self,
        cmd_args: Sequence[str] = (),
        input_data: str | None = None,
        output_model: type[BaseModel] | None = None,
    ) -> Any:
        """Run ``binary *cmd_args`` with ``input_data`` on stdin; return its answer.

        Returns the answer text, or with ``output_model`` the validated answer as a dict
        (``Model(**result)`` works, as in the reference document): the schema goes into
        the prompt and a non-matching answer is re-asked, as with ``sup.ask(output=)``;
        past the re-asks it is MALFORMED_OUTPUT. With a `CliSpec` as ``binary``,
        ``cmd_args`` must be empty (the spec already says how to run the CLI).
        """
        spec = self.spec_for(cmd_args, stdin=True)
        async with self._supervisor(spec) as sup:
            # With a model: schema in the prompt, native schema option, re-asks (as sup.ask).
            result = await sup.ask(input_data or "", output=output_model)
        if output_model is None:
            return result.text
        assert isinstance(result.data, BaseModel)
        return result.data.model_dump()

    async def stream_response(
        self, prompt: str, cmd_args: Sequence[str] = ()
    ) -> AsyncIterator[str]:
        """Yield the answer's text chunks as the CLI prints them.

        The prompt goes as the last argument. Safe to abandon early: the CLI runs in a
        supervisor task (the wrapper's own, or a system task outside ``async with``) that
        stops the process as soon as this iterator is closed or collected.
        """
        spec = self.spec_for(cmd_args, stdin=False)
        send, receive = trio.open_memory_channel[str | LLMError](0)
        pump = _PumpControl()
        trio.lowlevel.spawn_system_task(self._pump_chunks, spec, prompt, send, pump)
        try:
            with receive:
                async for item in receive:
                    if isinstance(item, LLMError):
                        raise item
                    yield item
        finally:
            # Stop the CLI now, even if it is silent (it would not notice a closed channel
            # until its next chunk).
            pump.cancel()

    async def _pump_chunks(
        self,
        spec: CliSpec,
        prompt: str,
        send: trio.MemorySendChannel[str | LLMError],
        pump: _PumpControl,
    ) -> None:
        # Runs as a system task: it must never raise, and it ends when the reader leaves.
        with trio.CancelScope() as scope:
            pump.attach(scope)
            await self._pump_chunks_until_done(spec, prompt, send)

    async def _pump_chunks_until_done(
        self, spec: CliSpec, prompt: str, send: trio.MemorySendChannel[str | LLMError]
    ) -> None:
        async with send:
            try:
                async with (
                    open_supervisor(
                        spec,
                        retry=self.retry_config,
                        timeouts=self.timeout_config,
                        breaker=self.circuit_breaker,
                        concurrency=1,
                    ) as sup,
                    sup.stream(prompt) as events,
                ):
                    async for event in events:
                        if isinstance(event, TextDelta):
                            await send.send(event.text)
            except LLMError as error:
                with suppress(trio.BrokenResourceError, trio.ClosedResourceError):
                    await send.send(error)
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                pass  # the reader went away; the stream's exit stopped the process
            except Exception:
                logger.exception("stream_response failed internally")

    @asynccontextmanager
    async def _supervisor(self, spec: CliSpec) -> AsyncIterator[Supervisor]:
        if self._stack is not None:
            if spec not in self._shared:
                opened = self._open(spec, self.concurrency)
                self._shared[spec] = await self._stack.enter_async_context(opened)
            yield self._shared[spec]
            return
        async with self._open(spec, 1) as sup:
            yield sup

    def _open(self, spec: CliSpec, concurrency: int) -> AbstractAsyncContextManager[Supervisor]:
        return open_supervisor(
            spec,
            retry=self.retry_config,
            timeouts=self.timeout_config,
            breaker=self.circuit_breaker,
            concurrency=concurrency,
        )
