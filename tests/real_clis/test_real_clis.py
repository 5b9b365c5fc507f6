"""End to end: the real claude, codex and gemini, through the supervisor, against the emulator.

Real processes, a real HTTP server on loopback, no mocks. Each CLI's scenarios run
concurrently under one supervisor to keep the suite short on two cores. The binaries come
from ``$LLMSUP_CLI_DIR`` (default ``.clis/node_modules/.bin``, installed by
``.ci/install-clis.sh``); without them these tests skip, saying how to enable them.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

import pytest
import trio

import actors
from actors._fakes._emulator import EmulatorRule, Fault, open_emulator
from actors._fakes._emulator._homes import cli_environment
from supervisor import (
    ErrorCategory,
    LLMError,
    Result,
    RetryConfig,
    Supervisor,
    TimeoutConfig,
    open_supervisor,
)
from supervisor._engine import open_engine

from ..helpers import MARKER_ENV, live_processes_with_env, marker
from .test_fast_failures import hang_guard_s

ROOT = Path(__file__).resolve().parents[2]
CLI_DIR = Path(os.environ.get("LLMSUP_CLI_DIR") or ROOT / ".clis" / "node_modules" / ".bin")
SKIP_REASON = "real CLIs not installed: run .ci/install-clis.sh (needs npm)"

CliName = Literal["claude", "codex", "gemini"]
FACTORIES: dict[CliName, Callable[..., actors.CliSpec]] = {
    "claude": actors.claude,
    "codex": actors.codex,
    "gemini": actors.gemini,
}

RULES = [
    EmulatorRule(match="please stream", reply="one two three four five six", chunks=4),
    EmulatorRule(match="ratelimited", fault=Fault(kind="status", status=429, retry_after=7)),
    EmulatorRule(match="badkey", fault=Fault(kind="status", status=401)),
    EmulatorRule(
        match="stallme",
        reply="alpha beta gamma",
        chunks=3,
        fault=Fault(kind="stall", stall_after_chunks=1),
    ),
]


def _installed(name: str) -> bool:
    path = CLI_DIR / name
    return path.is_file() and os.access(path, os.X_OK)


def _spec(name: CliName, env: dict[str, str], **options: Any) -> actors.CliSpec:
    return FACTORIES[name](str(CLI_DIR / name), env=env, **options)


# A marker, not pytest.skip() inside the test: under pytest-trio the latter loses its reason.
@pytest.mark.parametrize(
    "name",
    [
        pytest.param(n, marks=pytest.mark.skipif(not _installed(n), reason=SKIP_REASON))
        for n in sorted(FACTORIES)
    ],
)
async def test_real_cli_end_to_end(name: CliName, tmp_path: Path) -> None:
    token = marker()
    outcomes: dict[str, Any] = {}
    async with open_emulator(RULES) as emulator:

        def own_spec(label: str) -> actors.CliSpec:
            # A home and folder per scenario. gemini processes sharing a home queue on the
            # lock of ~/.gemini/projects.json, whose retries back off exponentially (one
            # start took 17 s), and concurrent runs sharing home and folder clobber each
            # other's stored sessions (see the README's gemini section).
            own = tmp_path / label
            own.mkdir()
            own_env = cli_environment(name, emulator.base_url, own / "home", inherit=os.environ)
            own_env[MARKER_ENV] = token
            return _spec(name, own_env, cwd=str(own))

        spec = own_spec("main")
        # The engine, not just the front: some calls run their own spec (home and folder).
        async with open_engine(
            spec,
            retry=RetryConfig(max_attempts=1),
            # A tight chunk_receive keeps the stall case short; six node CLIs starting at
            # once on two cores can take far longer than that to print their first line.
            timeouts=TimeoutConfig(
                total_execution=60, chunk_receive=8, first_output=45, graceful_shutdown=2
            ),
            concurrency=6,
        ) as engine:
            sup = Supervisor(engine)

            async def run(label: str, prompt: str) -> None:
                start = trio.current_time()
                try:
                    if label == "ok":  # the supervisor's own CLI, through the public ask()
                        outcomes[label] = await sup.ask(prompt)
                    else:
                        outcomes[label] = await engine.run_call(
                            prompt, _ignore, spec=own_spec(label)
                        )
                except LLMError as error:
                    outcomes[label] = error
                outcomes[label + " seconds"] = trio.current_time() - start

            async def streamed() -> None:
                deltas: list[str] = []
                try:
                    async with sup.stream("please stream the answer") as events:
                        async for event in events:
                            if isinstance(event, actors.TextDelta):
                                deltas.append(event.text)
                except LLMError as error:
                    outcomes["stream"] = error
                else:
                    outcomes["stream"] = (deltas, events.result)

            async def resumed() -> None:
                session_spec = own_spec("resume")
                first = await engine.run_call(
                    "remember the word pineapple", _ignore, spec=session_spec
                )
                outcomes["first turn"] = first
                assert first.session_id
                assert session_spec.session is not None
                again = await engine.run_call(
                    "what word did I ask you to remember?",
                    _ignore,
                    spec=session_spec.session.resume(first.session_id),
                )
                outcomes["second turn"] = again

            async with trio.open_nursery() as nursery:
                nursery.start_soon(run, "ok", "say hello")
                nursery.start_soon(streamed)
                nursery.start_soon(run, "rate", "ratelimited request")
                nursery.start_soon(run, "stall", "stallme please")
                nursery.start_soon(resumed)
            # Alone, so that the guard below is about the adapter (no waiting out the CLI's
            # own retries), not five other node CLIs starting on the same two cores.
            with trio.fail_after(hang_guard_s(name)):  # a hang guard, see test_fast_failures
                await run("auth", "badkey request")
        requests = list(emulator.requests)

    # Every outcome in the message: one failure often explains another.
    seen = "\n".join(f"  {label}: {value!r}" for label, value in outcomes.items())
    ok = outcomes["ok"]
    assert isinstance(ok, Result), f"{name} outcomes:\n{seen}"
    assert ok.text.strip() == "echo: say hello"
    assert ok.session_id
    assert ok.usage is not None and ok.usage.output_tokens > 0

    assert isinstance(outcomes["stream"], tuple), f"{name} outcomes:\n{seen}"
    deltas, streamed_result = outcomes["stream"]
    # codex exec --json has no token stream: one delta per complete agent message.
    assert len(deltas) >= (1 if name == "codex" else 2), f"{name} deltas: {deltas}"
    assert "".join(deltas) == streamed_result.text

    rate = outcomes["rate"]
    assert isinstance(rate, LLMError) and rate.category is ErrorCategory.RATE_LIMIT, rate
    if name != "codex":  # codex reports only "last status: 429", not the server's hint
        assert rate.retry_after == 7

    auth = outcomes["auth"]
    assert isinstance(auth, LLMError) and auth.category is ErrorCategory.AUTH_FAILURE, auth
    # Failed at the first 401, not after retries of the CLI's own.
    assert len([r for r in requests if r.prompt == "badkey request"]) == 1

    stall = outcomes["stall"]
    assert isinstance(stall, LLMError) and stall.category is ErrorCategory.TIMEOUT, stall
    assert live_processes_with_env(token) == []  # every tree is gone, the stalled one too

    first, second = outcomes["first turn"], outcomes["second turn"]
    assert isinstance(second, Result)
    assert second.session_id == first.session_id
    carried = [r for r in requests if "what word did I ask" in (r.prompt or "")]
    assert carried, f"{name}: the emulator never saw the second turn"
    history = " ".join(m.text for m in carried[-1].messages)
    assert "remember the word pineapple" in history  # the first turn travelled along


async def _ignore(_event: object) -> None:
    return None


@pytest.mark.skipif(not _installed("gemini"), reason=SKIP_REASON)
async def test_gemini_empty_prompt_is_bad_input_not_retried(tmp_path: Path) -> None:
    # gemini says "No input provided via stdin" both for an empty prompt and for a prompt
    # it lost to its 500 ms stdin window; only the latter (bytes were written) is retried.
    async with open_emulator([]) as emulator:
        env = cli_environment("gemini", emulator.base_url, tmp_path / "home", inherit=os.environ)
        spec = _spec("gemini", env, cwd=str(tmp_path))
        async with open_supervisor(spec, retry=RetryConfig(max_attempts=3)) as sup:
            with pytest.raises(LLMError) as info:
                await sup.ask("")
            stats = sup.statistics()
        requests = list(emulator.requests)
    assert info.value.category is ErrorCategory.PERMANENT
    assert "bad input" in info.value.message
    assert (stats.processes_spawned, stats.retries) == (1, 0)
    assert requests == []
